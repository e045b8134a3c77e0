#pragma once
// InferExchange: one inference request as a protocol adapter hands it to the
// pipeline, and the way its answer goes back. The adapter fills the context
// and the target, and implements decoding, encoding and delivery for its
// protocol; InferenceServer::Submit drives every stage (DESIGN.md section
// 1), so an adapter makes one call per request and gets one completion.
//
// The pipeline calls, in order and each at most once: body() and encoding()
// (the exact-repeat memo keys on them), Decode() (unless the memo answered),
// Encode() (on success), and then Complete() exactly once: with the encoded
// reply, or with the error. It then destroys the exchange.
//
// Threading: the calls come from the submitting thread or, after a wait
// (the cache's lower tiers, the model queue), from a worker thread; never
// two at once. Encode and Complete must not block; nothing may throw (the
// pipeline turns an escaped exception into a 500-class error anyway).

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "admission/admission.h"
#include "common/request_context.h"
#include "common/status.h"
#include "model/model_config.h"
#include "server/infer_types.h"

namespace inferd {

// A response encoded by its protocol adapter.
struct EncodedReply {
  std::string body;
  // Opaque to the pipeline, kept with the body in the memo: what the adapter
  // needs besides the body to answer (KServe: the JSON header's length).
  std::string framing;
  CacheStatus cache = CacheStatus::kNone;
  int64_t age_s = -1;  // of a cached response
};

class InferExchange {
 public:
  virtual ~InferExchange() = default;

  RequestContext context;
  std::string model;
  std::string version;    // empty: the model's default version
  bool no_cache = false;  // Cache-Control: no-cache (refresh; no lookup)
  bool no_store = false;  // Cache-Control: no-store
  // Set by the admission stage: the rate limits' state, for the answer's
  // RateLimit-Policy / RateLimit / Retry-After fields.
  AdmissionReport admission;

  // The request as received, and its encoding (protocol and framing, e.g.
  // "kserve-v2;json"): together the key of the exact-repeat memo. Valid
  // until Decode() is called. An empty encoding opts out of the memo.
  virtual std::string_view body() const = 0;
  virtual std::string_view encoding() const = 0;
  // Decodes the request for the resolved model's config.
  virtual StatusOr<InferRequest> Decode(const ModelConfig& config) = 0;
  // Encodes a successful response; `reply` is preset with its cache fields.
  virtual Status Encode(const InferResponse& response, EncodedReply* reply) = 0;
  // The one answer. For a stream: the end (OK) or its failure.
  virtual void Complete(StatusOr<EncodedReply> reply) = 0;

  // Streams (decoupled models): whether the client takes one, and its
  // chunks, each before Complete. Chunk follows ChunkSink's contract
  // (sched/task.h): false means wait for `resume`.
  virtual bool accepts_stream() const { return false; }
  virtual bool Chunk(const InferResponse& chunk, std::function<void()> resume) {
    (void)chunk;
    resume();
    return false;
  }
};

}  // namespace inferd
