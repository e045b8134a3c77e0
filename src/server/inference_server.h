#pragma once
// InferenceServer: the one request pipeline of DESIGN.md section 1, without
// any protocol. Every request goes admission -> cache -> model -> schedule ->
// execute -> respond, in that order; a stage that does not apply (admission
// until tenants exist; the cache for models that do not enable it) is a
// no-op, not a branch elsewhere. The cache stage lives in inference_cache.cc.
//
// Guarantees: `done` is called exactly once per Infer() call, from any
// thread (the caller's for early errors, a backend worker's otherwise).
//
// Threading: Infer is safe from any thread and never blocks on model
// execution.

#include <atomic>
#include <memory>
#include <optional>
#include <string_view>

#include "cache/response_cache.h"
#include "common/clock.h"
#include "model/model_manager.h"
#include "server/infer_types.h"
#include "server/server_metrics.h"

namespace inferd {

class InferenceServer {
 public:
  struct Options {
    ModelManager* models = nullptr;    // required, outlives the server
    ServerMetrics* metrics = nullptr;  // required, outlives the server
    Clock* clock = nullptr;            // default: Clock::System()
    // Optional response cache; used for models whose config enables it.
    ResponseCache* cache = nullptr;
    std::string cache_namespace = "default";               // the tenant, once tenants exist
    Duration coalesce_timeout = std::chrono::seconds(30);  // when the request sets none
    // Largest request (bytes as received) that LookupEncoded keys; 0
    // turns the encoded-response memo off.
    size_t encoded_max_bytes = 4096;
  };
  static StatusOr<std::unique_ptr<InferenceServer>> Create(const Options& options);

  // `resolved`: the model version the caller already resolved for this
  // request (LookupEncoded's), so that it is not looked up twice; null:
  // resolved here from request.model and request.version.
  void Infer(InferRequest request, InferCallback done,
             std::shared_ptr<ModelVersion> resolved = nullptr);

  // Exact repeats (inference_encoded.cc). A protocol adapter may keep its
  // encoded response to a request, keyed by the request's bytes as received,
  // in the cache's memory tier; a byte-identical repeat to the same model
  // version is then answered without decoding the request or encoding the
  // response. The entry shares the canonical entry's TTL and creation time,
  // the memory budget and the invalidation by model; it is never served
  // stale and never written to the lower tiers.
  struct EncodedRequest {
    std::string_view model;
    std::string_view version;   // as requested; empty: the default version
    std::string_view encoding;  // protocol and framing, e.g. "kserve-v2;json"
    std::string_view bytes;     // the request body as received
    bool no_cache = false;      // Cache-Control: no-cache (no lookup)
  };
  struct EncodedLookup {
    std::shared_ptr<ModelVersion> version;  // the resolved model version
    std::optional<CacheKey> key;            // set when the request may be memoized
    uint64_t generation = 0;                // the cache's, before any lookup
    std::shared_ptr<const CacheEntry> hit;  // the stored encoded response
    int64_t age_s = 0;                      // of a hit
  };
  // NotFound for an unknown model. A hit is counted as a served request
  // (metrics) and an L1 hit; otherwise the caller goes on with Infer. This
  // is the cache stage taken early: admission (tenants, rate limits), once
  // it exists, must run before it as it does before Infer's.
  StatusOr<EncodedLookup> LookupEncoded(const EncodedRequest& request);
  // Whether to memoize the encoded `response` to the request keyed `key`
  // (then build the encoding and call StoreEncoded). Yes only when the
  // response was answered from the cache (a hit or coalesced, not stale)
  // and these exact bytes were seen before: so the memo starts at a
  // request's first byte-identical repeat, and requests that never repeat
  // byte for byte (a fresh "id" each time) never take L1 space twice.
  bool AdmitEncoded(const CacheKey& key, const InferResponse& response);
  // L1 only; dropped if the cache was invalidated since `generation`
  // (EncodedLookup::generation) was read.
  void StoreEncoded(const CacheKey& key, uint64_t generation, const InferResponse& response,
                    std::string encoded);

  // Refreshes gauges that are sampled rather than counted (queue depths).
  void CollectGauges();

  ModelManager* models() { return options_.models; }
  ResponseCache* cache() { return options_.cache; }

 private:
  struct Call;  // one request's state on its way through the pipeline
  explicit InferenceServer(const Options& options);
  // 4-5: schedule on the model's batcher and execute; then OnExecuted.
  void Execute(std::shared_ptr<Call> call);
  void OnExecuted(std::shared_ptr<Call> call, StatusOr<std::vector<Tensor>> outputs,
                  const TaskTimings& timings);
  // 6: metrics and the one answer.
  void Finish(Call& call, StatusOr<InferResponse> result);
  // The cache stage (inference_cache.cc).
  void CacheStage(std::shared_ptr<Call> call);
  void JoinOrLead(std::shared_ptr<Call> call);
  void FinishFromEntry(Call& call, std::shared_ptr<const CacheEntry> entry, CacheStatus status);
  StatusOr<InferResponse> FromEntry(const Call& call, std::shared_ptr<const CacheEntry> entry,
                                    CacheStatus status);
  // After execution: fills the cache and wakes coalesced waiters. May turn
  // an error into a stale response (stale-if-error).
  void AfterExecution(Call& call, StatusOr<InferResponse>* result);
  // Checks the request against the model config and orders the inputs as
  // the model declares them. Sets *batch and *signature.
  Status Validate(const ModelConfig& config, InferRequest& request, std::vector<Tensor>* inputs,
                  int64_t* batch, std::string* signature) const;

  Options options_;
  // Exact-repeat doorkeeper: a direct-mapped table of recently seen memo
  // digests (AdmitEncoded); 512 KiB, allocated when the memo is on.
  static constexpr size_t kSeenSlots = size_t{1} << 16;
  std::unique_ptr<std::atomic<uint64_t>[]> seen_;
};

}  // namespace inferd
