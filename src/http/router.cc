#include "http/router.h"

#include <atomic>
#include <cstring>

#include <boost/container/small_vector.hpp>

#include "http/request_reader.h"

namespace inferd::http {
namespace {

// Most paths have a handful of segments: no allocation for those.
using Segments = boost::container::small_vector<std::string_view, 8>;

Segments Split(std::string_view path) {
  Segments out;
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

namespace {

// A Responder made of functions (tests, in-process callers).
class FunctionTarget final : public Responder::Target {
 public:
  FunctionTarget(Responder::Sink sink, Responder::StreamSink stream_sink)
      : sink_(std::move(sink)), stream_sink_(std::move(stream_sink)) {}

 private:
  void Deliver(Response&& response) override { sink_(std::move(response)); }
  std::shared_ptr<StreamWriter> DeliverStream(Response head) override {
    if (!stream_sink_) {
      sink_(MakeErrorResponse(Status::internal_server_error, "streaming is not supported"));
      return nullptr;
    }
    return stream_sink_(std::move(head));
  }
  Responder::Sink sink_;
  Responder::StreamSink stream_sink_;
};

}  // namespace

Responder::Responder(std::shared_ptr<Target> target) : target_(std::move(target)) {
  target_->copies_.fetch_add(1, std::memory_order_relaxed);
}

Responder::Responder(Sink sink, StreamSink stream_sink)
    : Responder(std::make_shared<FunctionTarget>(std::move(sink), std::move(stream_sink))) {}

Responder::Responder(const Responder& other) : target_(other.target_) {
  if (target_) target_->copies_.fetch_add(1, std::memory_order_relaxed);
}

Responder::Responder(Responder&& other) noexcept : target_(std::move(other.target_)) {}

Responder& Responder::operator=(const Responder& other) {
  if (this != &other) *this = Responder(other);
  return *this;
}

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    Release();
    target_ = std::move(other.target_);
  }
  return *this;
}

Responder::~Responder() { Release(); }

void Responder::Release() noexcept {
  if (!target_) return;
  // acq_rel: the last copy sees every other copy's Send.
  if (target_->copies_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
      !target_->sent_.exchange(true)) {
    target_->Deliver(MakeErrorResponse(Status::internal_server_error, "request was dropped"));
  }
  target_.reset();
}

std::shared_ptr<StreamWriter> Responder::StartStream(Response head) const {
  if (target_->sent_.exchange(true)) return nullptr;
  return target_->DeliverStream(std::move(head));
}

void Responder::Send(Response&& response) const {
  if (target_->sent_.exchange(true)) return;
  target_->Deliver(std::move(response));
}

std::shared_ptr<Cancellation> Responder::cancellation() const {
  return std::shared_ptr<Cancellation>(target_, &target_->cancel_);
}

namespace {

// The length of the well-formed UTF-8 sequence at the start of `s`, or 0
// (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
size_t Utf8SequenceLength(std::string_view s) {
  auto at = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char c = at(0);
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < n || at(1) < lo || at(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (at(i) < 0x80 || at(i) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

void AppendJsonEscaped(std::string* out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      // Only valid UTF-8 goes into JSON; anything else becomes U+FFFD.
      size_t n = Utf8SequenceLength(s.substr(i));
      if (n == 0) {
        *out += "\\ufffd";
      } else {
        out->append(s.data() + i, n);
        i += n - 1;
      }
      continue;
    }
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
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
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

uint64_t Router::NewId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void Router::Add(Verb method, std::string pattern, Handler handler) {
  id_ = NewId();  // what a thread remembers of this router no longer holds
  Route r{method, {}, std::move(handler)};
  for (auto s : Split(pattern)) {
    const bool param = s.size() > 2 && s.front() == '{' && s.back() == '}';
    r.segments.push_back({std::string(param ? s.substr(1, s.size() - 2) : s), param});
  }
  if (by_count_.size() <= r.segments.size()) by_count_.resize(r.segments.size() + 1);
  by_count_[r.segments.size()].push_back(routes_.size());
  routes_.push_back(std::move(r));
}

namespace {

// A thread's last route found (Router::Find): the path, and the segment
// index, offset and size of each parameter in it.
struct LastFound {
  static constexpr size_t kMaxPath = 128, kMaxParams = 4;
  uint64_t router = 0;  // Router::id_; 0: nothing remembered
  Verb method = Verb::unknown;
  uint32_t route = 0;
  uint32_t path_size = 0;
  uint32_t n_params = 0;
  struct Param {
    uint32_t segment, offset, size;
  } params[kMaxParams];
  char path[kMaxPath];
};
thread_local LastFound t_last_found;

// `pattern` has as many segments as `segs`. From the last segment back:
// routes of one length share their first segments ("v2", "models") and
// differ at the end ("infer", "ready"), so a route that does not match
// mostly fails at the first comparison.
template <typename Pattern>
bool Matches(const Pattern& pattern, const Segments& segs) {
  for (size_t i = segs.size(); i-- > 0;) {
    const auto& p = pattern[i];
    if (p.param) continue;
    // Segments are short: compared here, not through a call to memcmp.
    const std::string_view text = p.text, seg = segs[i];
    if (text.size() != seg.size()) return false;
    for (size_t k = 0; k < seg.size(); ++k) {
      if (text[k] != seg[k]) return false;
    }
  }
  return true;
}

template <typename Pattern>
PathParams ParamsOf(const Pattern& pattern, const Segments& segs) {
  PathParams params;
  for (size_t i = 0; i < segs.size(); ++i) {
    if (pattern[i].param) params.values.emplace_back(pattern[i].text, segs[i]);
  }
  return params;
}

// Keeps route `index` of router `router_id` as this thread's last found for
// `path` (whose segments `segs` point into it), when it fits.
template <typename Pattern>
void Remember(uint64_t router_id, size_t index, Verb method, std::string_view path,
              const Pattern& pattern, const Segments& segs) {
  LastFound& last = t_last_found;
  last.router = 0;
  if (path.size() > LastFound::kMaxPath) return;
  uint32_t n = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    if (!pattern[i].param) continue;
    if (n == LastFound::kMaxParams) return;
    last.params[n++] = {static_cast<uint32_t>(i),
                        static_cast<uint32_t>(segs[i].data() - path.data()),
                        static_cast<uint32_t>(segs[i].size())};
  }
  last.n_params = n;
  last.method = method;
  last.route = static_cast<uint32_t>(index);
  last.path_size = static_cast<uint32_t>(path.size());
  if (!path.empty()) std::memcpy(last.path, path.data(), path.size());
  last.router = router_id;
}

}  // namespace

Router::Match Router::Find(Verb method, std::string_view path) const {
  Match m;
  m.status = Status::not_found;
  size_t q = path.find('?');
  if (q != std::string_view::npos) path = path.substr(0, q);
  LastFound& last = t_last_found;
  if (last.router == id_ && last.method == method && last.path_size == path.size() &&
      std::memcmp(last.path, path.data(), path.size()) == 0) {
    const Route& r = routes_[last.route];
    m.handler = &r.handler;
    m.status = Status::ok;
    for (uint32_t i = 0; i < last.n_params; ++i) {
      const LastFound::Param& p = last.params[i];
      m.params.values.emplace_back(r.segments[p.segment].text, path.substr(p.offset, p.size));
    }
    return m;
  }
  Segments segs = Split(path);
  // Segments borrow from the path unless percent-encoded: then from here.
  std::vector<std::string> decoded;
  const bool encoded = path.find('%') != std::string_view::npos;
  if (encoded) {
    decoded.reserve(segs.size());
    for (std::string_view& seg : segs) {
      auto d = PercentDecode(seg);
      if (!d) {
        m.status = Status::bad_request;
        m.error = "malformed percent-encoding in path segment '" + std::string(seg) + "'";
        return m;
      }
      decoded.push_back(std::move(*d));
      seg = decoded.back();
    }
  }
  // HEAD takes the GET route unless a HEAD route exists.
  const Route* head_fallback = nullptr;
  if (segs.size() >= by_count_.size()) return m;
  for (size_t index : by_count_[segs.size()]) {
    const Route& r = routes_[index];
    if (!Matches(r.segments, segs)) continue;
    if (r.method == method) {
      m.handler = &r.handler;
      m.params = ParamsOf(r.segments, segs);
      m.status = Status::ok;
      m.allow.clear();
      if (!encoded) Remember(id_, index, method, path, r.segments, segs);
      return m;
    }
    if (method == Verb::head && r.method == Verb::get && !head_fallback) head_fallback = &r;
    m.status = Status::method_not_allowed;
    if (!m.allow.empty()) m.allow += ", ";
    m.allow += std::string(beast_http::to_string(r.method));
  }
  if (head_fallback) {
    m.handler = &head_fallback->handler;
    m.params = ParamsOf(head_fallback->segments, segs);
    m.status = Status::ok;
    m.allow.clear();
  }
  return m;
}

}  // namespace inferd::http
