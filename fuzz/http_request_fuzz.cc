// Fuzz target: the HTTP request reader, bytes -> requests, with pipelining,
// chunked and compressed bodies, delivered in pieces of a fuzzed size.
// Invariants: the reader consumes no more than it is given; an error is a
// 4xx/5xx with a message; a finished request respects the limits and
// re-serializes (with Content-Length) to bytes that parse back to the same
// method, target and body; routing its target never fails but with a
// status, and every error body built from it is valid UTF-8 JSON.
#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_check.h"
#include "http/ascii.h"
#include "http/request_reader.h"
#include "http/router.h"

namespace {

using namespace inferd::http;

RequestReader::Options Limits() {
  RequestReader::Options o;
  o.max_body_bytes = 1 << 16;
  o.max_header_bytes = 4096;
  return o;
}

const Router& Routes() {
  static Router* router = [] {
    auto* r = new Router;
    Handler h = [](Request&&, const PathParams&, Responder) {};
    r->Add(Verb::get, "/v2", h);
    r->Add(Verb::get, "/v2/models/{model}", h);
    r->Add(Verb::post, "/v2/models/{model}/infer", h);
    r->Add(Verb::post, "/v2/models/{model}/versions/{version}/infer", h);
    r->Add(Verb::delete_, "/v2/cache/models/{model}", h);
    return r;
  }();
  return *router;
}

void CheckJson(const std::string& body) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  FUZZ_CHECK(parser.parse(body).get(doc) == simdjson::SUCCESS);
}

void CheckRequest(Request& req) {
  FUZZ_CHECK(req.body().size() <= Limits().max_body_bytes);
  std::string_view target(req.target().data(), req.target().size());
  Router::Match m = Routes().Find(req.method(), target);
  if (!m.handler) {
    FUZZ_CHECK(m.status == Status::not_found || m.status == Status::method_not_allowed ||
               m.status == Status::bad_request);
    if (m.status == Status::bad_request) FUZZ_CHECK(!m.error.empty());
  }
  CheckJson(MakeErrorResponse(Status::not_found, "no such path: " + std::string(target)).body());
  for (const auto& [k, v] : m.params.values) {
    CheckJson(MakeErrorResponse(Status::not_found, "unknown model '" + v + "'").body());
  }

  // Round trip with Content-Length framing.
  std::string wire = std::string(req.method_string()) + " " + std::string(target) + " HTTP/1.1\r\n";
  size_t kept = 0;
  auto framing = [](std::string_view name) {
    return IEquals(name, "Content-Length") || IEquals(name, "Transfer-Encoding") ||
           IEquals(name, "Content-Encoding");
  };
  req.ForEachField([&](std::string_view name, std::string_view value) {
    if (framing(name)) return;
    wire += std::string(name) + ": " + std::string(value) + "\r\n";
    ++kept;
  });
  wire += "Content-Length: " + std::to_string(req.body().size()) + "\r\n\r\n" + req.body();
  RequestReader::Options big;
  big.max_body_bytes = 1 << 20;
  big.max_header_bytes = 1 << 20;
  RequestReader again(big);
  size_t n = again.Feed(wire);
  FUZZ_CHECK(again.done());
  FUZZ_CHECK(n == wire.size());
  Request copy = again.Release();
  FUZZ_CHECK(copy.method_string() == req.method_string());
  FUZZ_CHECK(copy.target() == req.target());
  FUZZ_CHECK(copy.body() == req.body());
  FUZZ_CHECK(copy.version() == 11);
  // The fields come back in order, names and values as they were.
  std::vector<std::pair<std::string, std::string>> fields;
  req.ForEachField([&](std::string_view name, std::string_view value) {
    if (!framing(name)) fields.emplace_back(name, value);
  });
  FUZZ_CHECK(fields.size() == kept);
  size_t i = 0;
  copy.ForEachField([&](std::string_view name, std::string_view value) {
    if (framing(name)) return;
    FUZZ_CHECK(i < fields.size() && fields[i].first == name && fields[i].second == value);
    FUZZ_CHECK(copy[name] == req[name]);
    ++i;
  });
  FUZZ_CHECK(i == kept);
}

// What one reader made of one request: an error, or the request.
struct Outcome {
  bool error = false;
  unsigned status = 0;
  std::string message;
  std::string method, target, body;
  unsigned version = 0;
  std::vector<std::pair<std::string, std::string>> fields;
};

// Reads `in` delivered `step` bytes at a time, request after request (at
// most 32), as the server does; checks each request and returns what each
// reader made of it, and in *rest the bytes no reader consumed.
std::vector<Outcome> ReadAll(std::string_view in, size_t step, bool fast_path, std::string* rest) {
  std::vector<Outcome> outcomes;
  RequestReader::Options limits = Limits();
  limits.fast_path = fast_path;
  std::string pending;
  size_t pos = 0;
  for (int requests = 0; requests < 32; ++requests) {
    RequestReader reader(limits);
    for (;;) {
      size_t n = reader.Feed(pending);
      FUZZ_CHECK(n <= pending.size());
      pending.erase(0, n);
      if (reader.done() || reader.error() || pos >= in.size()) break;
      pending.append(in.substr(pos, step));
      pos += step;
    }
    Outcome o;
    if (reader.error()) {
      unsigned code = static_cast<unsigned>(reader.error()->status);
      FUZZ_CHECK(code >= 400 && code < 600);
      FUZZ_CHECK(!reader.error()->message.empty());
      CheckJson(MakeErrorResponse(reader.error()->status, reader.error()->message).body());
      o.error = true;
      o.status = code;
      o.message = reader.error()->message;
      outcomes.push_back(std::move(o));
      break;  // the connection closes
    }
    if (!reader.done()) break;  // the input ended inside a request
    Request req = reader.Release();
    CheckRequest(req);
    o.method = std::string(req.method_string());
    o.target = std::string(req.target());
    o.body = req.body();
    o.version = req.version();
    req.ForEachField(
        [&](std::string_view name, std::string_view value) { o.fields.emplace_back(name, value); });
    outcomes.push_back(std::move(o));
  }
  *rest = pending + std::string(in.substr(std::min(pos, in.size())));
  return outcomes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t step = 1 + data[0] % 97;  // how the bytes arrive
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  // The fast path reads what Beast reads, request for request.
  std::string fast_rest, beast_rest;
  const std::vector<Outcome> fast = ReadAll(in, step, true, &fast_rest);
  const std::vector<Outcome> beast = ReadAll(in, step, false, &beast_rest);
  FUZZ_CHECK(fast.size() == beast.size());
  FUZZ_CHECK(fast_rest == beast_rest);
  for (size_t i = 0; i < fast.size(); ++i) {
    const Outcome& f = fast[i];
    const Outcome& b = beast[i];
    FUZZ_CHECK(f.error == b.error && f.status == b.status && f.message == b.message);
    FUZZ_CHECK(f.method == b.method && f.target == b.target && f.version == b.version);
    FUZZ_CHECK(f.body == b.body && f.fields == b.fields);
  }
  return 0;
}
