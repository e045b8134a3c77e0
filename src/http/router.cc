#include "http/router.h"

#include <atomic>

namespace inferd::http {
namespace {

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

}  // namespace

struct Responder::State {
  Sink sink;
  std::atomic<bool> sent{false};
  ~State() {
    if (!sent.load()) sink(MakeErrorResponse(Status::internal_server_error, "request was dropped"));
  }
};

Responder::Responder(Sink sink) : state_(std::make_shared<State>()) {
  state_->sink = std::move(sink);
}

void Responder::Send(Response response) const {
  if (state_->sent.exchange(true)) return;
  state_->sink(std::move(response));
}

void AppendJsonEscaped(std::string* out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  for (char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          *out += "\\u00";
          *out += kHex[(c >> 4) & 0xf];
          *out += kHex[c & 0xf];
        } else {
          *out += c;
        }
    }
  }
}

Response MakeJsonResponse(Status status, std::string body, unsigned version) {
  Response res{status, version};
  res.set(beast_http::field::content_type, "application/json");
  res.body() = std::move(body);
  return res;
}

Response MakeErrorResponse(Status status, std::string_view message, unsigned version) {
  std::string body = "{\"error\":\"";
  AppendJsonEscaped(&body, message);
  body += "\"}";
  return MakeJsonResponse(status, std::move(body), version);
}

void Router::Add(Verb method, std::string pattern, Handler handler) {
  Route r{method, {}, std::move(handler)};
  for (auto s : Split(pattern)) r.segments.emplace_back(s);
  routes_.push_back(std::move(r));
}

Router::Match Router::Find(Verb method, std::string_view path) const {
  Match m;
  m.status = Status::not_found;
  size_t q = path.find('?');
  if (q != std::string_view::npos) path = path.substr(0, q);
  auto segs = Split(path);
  for (const Route& r : routes_) {
    if (r.segments.size() != segs.size()) continue;
    PathParams params;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      const std::string& p = r.segments[i];
      if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
        params.values.emplace_back(std::string_view(p).substr(1, p.size() - 2),
                                   std::string(segs[i]));
      } else {
        ok = p == segs[i];
      }
    }
    if (!ok) continue;
    if (r.method == method) {
      m.handler = &r.handler;
      m.params = std::move(params);
      m.status = Status::ok;
      return m;
    }
    m.status = Status::method_not_allowed;
    if (!m.allow.empty()) m.allow += ", ";
    m.allow += std::string(beast_http::to_string(r.method));
  }
  return m;
}

}  // namespace inferd::http
