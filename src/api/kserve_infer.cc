#include "api/kserve_infer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <memory>

#include "api/auth.h"
#include "api/kserve_codec.h"
#include "common/recycling.h"
#include "http/ascii.h"

namespace inferd::api {
namespace {

using http::Request;
using http::Responder;
using http::Response;
namespace bh = http::beast_http;

// Cache-Control request directives: no-cache (skip the lookup, refresh the
// entry) and no-store (keep the response out of the cache).
struct CacheControl {
  bool no_cache = false;
  bool no_store = false;
};

CacheControl ParseCacheControl(std::string_view value) {
  CacheControl cc;
  http::ForEachListElement(value, [&](std::string_view directive) {
    if (http::IEquals(directive, "no-cache")) cc.no_cache = true;
    if (http::IEquals(directive, "no-store")) cc.no_store = true;
  });
  return cc;
}

// Inference-Header-Content-Length, -1 when absent. Repeated fields must
// agree: which one a proxy or the server honours must never matter.
StatusOr<int64_t> JsonLength(const Request& req) {
  int64_t json_length = -1;
  std::string_view first;
  bool first_seen = false;
  for (std::string_view hdr : req.values("Inference-Header-Content-Length")) {
    if (first_seen) {
      if (hdr != first) {
        return InvalidArgumentError("conflicting Inference-Header-Content-Length headers ('" +
                                    std::string(first) + "' and '" + std::string(hdr) + "')");
      }
      continue;
    }
    first = hdr;
    first_seen = true;
    auto [p, ec] = std::from_chars(hdr.data(), hdr.data() + hdr.size(), json_length);
    if (ec != std::errc() || p != hdr.data() + hdr.size() || json_length < 0) {
      return InvalidArgumentError("invalid Inference-Header-Content-Length '" + std::string(hdr) +
                                  "'");
    }
  }
  return json_length;
}

std::string_view HeaderValue(const Request& req, std::string_view name) { return req[name]; }

// RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers:
// `"tenant";q=100;w=1;burst=20` and `"tenant";r=17;t=1`), and Retry-After
// on a refusal, when the request's tenant has a limit.
void SetRateLimitHeaders(const AdmissionReport& report, Response& res) {
  // Also admission's overload 503s, for tenants without limits.
  if (report.retry_after_s > 0)
    res.set(bh::field::retry_after, std::to_string(report.retry_after_s));
  if (report.count == 0) return;
  std::string policy, state;
  for (int i = 0; i < report.count; ++i) {
    const AdmissionReport::Limit& l = report.limits[i];
    // The window: 1 s, or long enough to hold one request at a low rate.
    const int64_t w = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(1 / l.rate_per_s)));
    // Rounded down: a client that paces itself to q is never refused.
    const int64_t q = std::max<int64_t>(
        1, static_cast<int64_t>(std::floor(l.rate_per_s * static_cast<double>(w) + 1e-9)));
    if (i > 0) {
      policy += ", ";
      state += ", ";
    }
    // Appended piece by piece: GCC 12 warns (-Wrestrict, falsely) on a chain of +.
    policy.append("\"").append(l.scope).append("\";q=").append(std::to_string(q));
    policy.append(";w=").append(std::to_string(w)).append(";burst=");
    policy.append(std::to_string(l.burst));
    state.append("\"").append(l.scope).append("\";r=").append(std::to_string(l.remaining));
    state.append(";t=").append(std::to_string(l.reset_s));
  }
  res.set("RateLimit-Policy", policy);
  res.set("RateLimit", state);
}

// One infer request on its way through the pipeline. The reply's framing
// is the binary extension's JSON header length, as text ("" for JSON).
// Its block is recycled: made and dropped once per request.
class KServeExchange final : public InferExchange, public Recycled<KServeExchange> {
 public:
  KServeExchange(Request&& req, int64_t json_length, Responder respond)
      : body_(std::move(req.body())), json_length_(json_length), respond_(std::move(respond)) {
    auto accept = req["Accept"];
    accepts_stream_ = std::string_view(accept.data(), accept.size()).find("text/event-stream") !=
                      std::string_view::npos;
    encoding_len_ = json_length < 0
                        ? std::snprintf(encoding_, sizeof(encoding_), "kserve-v2;json")
                        : std::snprintf(encoding_, sizeof(encoding_), "kserve-v2;binary;%lld",
                                        static_cast<long long>(json_length));
  }

  std::string_view body() const override { return body_; }
  std::string_view encoding() const override {
    return {encoding_, static_cast<size_t>(encoding_len_)};
  }

  StatusOr<InferRequest> Decode(const ModelConfig& config) override {
    decoupled_reply_ = config.decoupled;
    // Tensors borrow from the body: it moves into shared storage.
    auto shared = std::make_shared<const std::string>(std::move(body_));
    INFERD_ASSIGN_OR_RETURN(auto decoded,
                            kserve::DecodeInferRequest(shared, json_length_, &config));
    InferRequest request = std::move(decoded.request);
    decoded.request = InferRequest();
    prefs_ = std::move(decoded);  // output preferences, for Encode
    return request;
  }

  Status Encode(const InferResponse& response, EncodedReply* reply) override {
    kserve::EncodedResponse enc = kserve::EncodeInferResponse(response, prefs_);
    reply->body = std::move(enc.body);
    if (enc.json_length >= 0) reply->framing = std::to_string(enc.json_length);
    return Status::OK();
  }

  void Complete(StatusOr<EncodedReply> reply) override {
    if (streaming_ || (decoupled_reply_ && reply.ok())) {
      EndStream(reply.status());
      return;
    }
    Response res = reply.ok() ? ToHttp(std::move(reply).value()) : ErrorResponse(reply.status());
    SetContextHeaders(res);
    respond_.Send(std::move(res));
  }

  // Streams: Server-Sent Events, one `data:` event per chunk (a KServe v2
  // infer response in JSON), and an `error` event if the stream fails.
  bool accepts_stream() const override { return accepts_stream_; }
  bool Chunk(const InferResponse& chunk, std::function<void()> resume) override {
    if (!StartStream()) {
      resume();
      return false;
    }
    std::string event;
    try {
      kserve::EncodedResponse enc = kserve::EncodeInferResponse(chunk, prefs_);
      event.reserve(enc.body.size() + 8);
      event += "data: ";
      event += enc.body;
      event += "\n\n";
    } catch (const std::exception& e) {
      // On the backend's thread: nothing may escape. The producer is
      // stopped (its cancellation) and the client told.
      Status failed = InternalError(std::string("encoding a stream chunk failed: ") + e.what());
      context.cancel->Cancel(failed);
      EndStream(failed);
      resume();
      return false;
    }
    return writer_->Write(std::move(event), std::move(resume));
  }

 private:
  void SetContextHeaders(Response& res) const {
    // Fields no answer has yet (insert: no search for one to replace).
    res.insert("X-Request-Id", context.request_id);
    char traceparent[TraceContext::kTraceparentSize];
    res.insert("traceparent", context.trace.FormatTraceparent(traceparent));
    SetRateLimitHeaders(admission, res);
  }

  // Answers with the stream's head once; false if it cannot be written.
  bool StartStream() {
    if (!streaming_) {
      streaming_ = true;
      // Events are JSON: binary output framing does not apply.
      prefs_.binary_output_default = false;
      prefs_.binary_outputs.clear();
      Response head{bh::status::ok, 11};
      head.set(bh::field::content_type, "text/event-stream");
      head.set(bh::field::cache_control, "no-cache");
      SetContextHeaders(head);
      writer_ = respond_.StartStream(std::move(head));
    }
    return writer_ != nullptr;
  }

  void EndStream(const Status& status) {
    if (!StartStream()) return;
    if (!status.ok()) {
      std::string event = "event: error\ndata: {\"error\":\"";
      http::AppendJsonEscaped(&event, status.message());
      event += "\"}\n\n";
      writer_->Write(std::move(event), [] {});
    }
    writer_->Close();
  }

  // A new response: its fields are inserted, not searched for.
  static Response ToHttp(EncodedReply&& reply) {
    Response res{bh::status::ok, 11};
    if (!reply.framing.empty()) {
      res.insert("Content-Type", "application/octet-stream");
      res.insert("Inference-Header-Content-Length", reply.framing);
    } else {
      res.insert("Content-Type", "application/json");
    }
    res.body() = std::move(reply.body);
    if (reply.cache != CacheStatus::kNone) {
      res.insert("X-Inferd-Cache", CacheStatusName(reply.cache));
      if (reply.age_s >= 0) res.insert("Age", std::to_string(reply.age_s));
      if (reply.cache == CacheStatus::kStale)
        res.insert(bh::field::warning, "110 - \"Response is Stale\"");
    }
    return res;
  }

  std::string body_;
  const int64_t json_length_;
  Responder respond_;
  bool accepts_stream_ = false;
  bool decoupled_reply_ = false;  // the model streams: even an empty stream is one
  bool streaming_ = false;
  std::shared_ptr<http::StreamWriter> writer_;
  char encoding_[48];
  int encoding_len_ = 0;
  kserve::DecodedRequest prefs_;
};

}  // namespace

void HandleInfer(const ApiContext* ctx, Request&& req, std::string model, std::string version,
                 Responder respond) {
  TraceContext trace = TraceContext::Continue(HeaderValue(req, "traceparent"));
  const RequestId request_id = ChooseRequestId(HeaderValue(req, "X-Request-Id"), trace);
  auto json_length = JsonLength(req);
  // Credentials are read only when some tenant has a key.
  StatusOr<std::string> credential = std::string();
  if (ctx->admission != nullptr && ctx->admission->uses_keys()) credential = ReadCredential(req);
  StatusOr<int> priority = ReadPriority(req);
  if (!json_length.ok() || !credential.ok() || !priority.ok()) {
    Response res = ErrorResponse(!credential.ok() ? credential.status()
                                 : !priority.ok() ? priority.status()
                                                  : json_length.status());
    res.set("X-Request-Id", request_id);
    res.set("traceparent", trace.Traceparent());
    respond.Send(std::move(res));
    return;
  }
  const CacheControl cc = ParseCacheControl(req["Cache-Control"]);
  auto cancel = respond.cancellation();
  auto x = std::make_unique<KServeExchange>(std::move(req), *json_length, std::move(respond));
  x->model = std::move(model);
  x->version = std::move(version);
  x->no_cache = cc.no_cache;
  x->no_store = cc.no_store;
  x->context.cancel = std::move(cancel);
  x->context.credential = std::move(credential).value();
  x->context.priority = *priority;
  x->context.trace = trace;
  x->context.request_id = request_id;
  ctx->server->Submit(std::move(x));
}

}  // namespace inferd::api
