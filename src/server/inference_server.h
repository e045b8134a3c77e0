#pragma once
// InferenceServer: the one request pipeline of DESIGN.md section 1, without
// any protocol. Every request goes admission -> cache -> model -> schedule ->
// execute -> respond, in that order; a stage that does not apply (admission
// until tenants exist; the cache for models that do not enable it) is a
// no-op, not a branch elsewhere. The cache stage lives in inference_cache.cc.
//
// Guarantees: every submitted exchange is completed exactly once, from any
// thread (the caller's for early errors and memo hits, Options::post's
// after a global rate-limit decision or a model load, a cache or backend
// worker's
// otherwise); memo hits are counted and accounted like any other request.
//
// Threading: Infer is safe from any thread and never blocks on model
// execution.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "admission/admission.h"
#include "cache/response_cache.h"
#include "common/clock.h"
#include "model/model_manager.h"
#include "server/infer_exchange.h"
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
    // Who may ask (the first stage): null admits every request as the
    // default tenant.
    const Admission* admission = nullptr;
    Duration coalesce_timeout = std::chrono::seconds(30);  // longest wait for a coalesced answer
    // A request's deadline when it sets none (parameters.timeout); zero:
    // no deadline.
    Duration default_timeout{0};
    // Largest request (bytes as received) that the exact-repeat memo keys;
    // 0 turns the memo off.
    size_t encoded_max_bytes = 4096;
    // Runs a request's continuation after a global rate-limit decision
    // (Admission::CheckGlobal answers on the Redis thread) or its model's
    // load (on a loader thread), e.g. on the HTTP I/O threads; must not
    // block. Empty: inline, on whichever thread
    // the decision came.
    std::function<void(std::function<void()>)> post;
  };
  static StatusOr<std::unique_ptr<InferenceServer>> Create(const Options& options);

  // The one entry: runs the request through every stage and answers it
  // through exchange->Complete(), exactly once, from any thread.
  void Submit(std::unique_ptr<InferExchange> exchange);

  // The same path for in-process callers holding a decoded request (cache
  // warming, tests): an exchange whose Decode returns `request` and whose
  // answer is the decoded response. Not memoized (it has no bytes).
  // The context is trusted: its tenant (default "default") is not
  // authenticated again.
  void Infer(InferRequest request, InferCallback done, RequestContext context = {});

  // Refreshes gauges that are sampled rather than counted (queue depths).
  void CollectGauges();

  ModelManager* models() { return options_.models; }
  Clock* clock() { return options_.clock; }
  ResponseCache* cache() { return options_.cache; }

 private:
  struct Call;  // one request's state on its way through the pipeline
  // A request past its local rate limits, on its way to the rest of the
  // pipeline. Moved, never copied: the local-only path allocates nothing.
  struct Admitted {
    std::unique_ptr<InferExchange> x;
    VersionLease mv;                      // empty while its model loads
    std::optional<PendingModel> pending;  // the model to wait for, if not loaded
    ModelMetrics* mm = nullptr;
    Time start;
    const Tenant* tenant = nullptr;  // null: an in-process caller
    QueueKey queue_key;
    const ModelConfig& config() const { return mv ? mv->config() : *pending->config; }
  };
  // After the limits: AfterLimits, once the model is loaded (WaitForModel).
  void AfterAdmission(Admitted a);
  // 3'. a cold model: waits for its load off this thread (ModelManager::
  // WhenReady), then goes on through options_.post.
  void WaitForModel(Admitted a);
  // 1b'. the limits shared through Redis; then AfterGlobalLimits, through
  // options_.post: a 429, or AfterLimits.
  void CheckGlobalLimits(Admitted a);
  void AfterGlobalLimits(Admitted a, Status st);
  // 2a on: the memo, the overload gate, decoding, the cache, execution.
  void AfterLimits(Admitted a);
  // The cache namespace of a request: its tenant's, or the shared one
  // ("~" is not allowed in tenant names) for models whose scope is shared.
  static std::string_view CacheNamespace(const ModelConfig& config, const RequestContext& ctx) {
    return config.response_cache.shared ? std::string_view("~shared") : ctx.tenant;
  }
  explicit InferenceServer(const Options& options);
  // 4-5: schedule on the model's batcher and execute; then OnExecuted.
  void Execute(std::shared_ptr<Call> call);
  void OnExecuted(std::shared_ptr<Call> call, StatusOr<std::vector<Tensor>> outputs,
                  const TaskTimings& timings);
  // The response of `call` from its backend outputs (or a stream's chunk).
  InferResponse MakeResponse(const Call& call, std::vector<Tensor> outputs) const;
  class StreamToExchange;
  // 6: encoding, the memo, then Reply.
  void Finish(Call& call, StatusOr<InferResponse> result);
  // The one answer of every request: metrics, in-flight accounting, then
  // exchange.Complete(). `mm` is null when no model was resolved.
  void Reply(InferExchange& exchange, ModelMetrics* mm, Time start, StatusOr<EncodedReply> reply);
  // The cache stage (inference_cache.cc).
  void CacheStage(std::shared_ptr<Call> call);
  void JoinOrLead(std::shared_ptr<Call> call);
  // Counts what admission or the queue decided: the decision counter, and
  // the tenant's recent refusals (`tenant` null: an in-process caller).
  void Decide(ModelMetrics* mm, const Tenant* tenant, const QueueKey& key, Decision decision);
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

  // The exact-repeat memo (inference_memo.cc). A response, as its adapter
  // encoded it, kept in the cache's memory tier under the request's bytes
  // as received: a byte-identical repeat to the same model version is
  // answered without decoding or encoding. The entry shares the canonical
  // entry's TTL and creation time, the memory budget and the invalidation
  // by model; it is never served stale and never written to lower tiers.
  struct MemoProbe {
    std::optional<CacheKey> key;  // set when the request may be memoized
    uint64_t generation = 0;      // the cache's, before any lookup
    bool hit = false;             // a fresh memo entry answered: `reply` is the answer
    EncodedReply reply;           // copied out of the entry while the cache held it
  };
  MemoProbe ProbeMemo(const InferExchange& x, const ModelVersion& mv);
  // The reply a memo hit answers with; false if the entry is damaged.
  bool ReplyFromMemo(const CacheEntry& entry, EncodedReply* reply) const;
  // Whether to memoize `response`: only when it was answered from the
  // cache (a hit or coalesced, not stale) and these exact bytes were seen
  // before, so requests that never repeat byte for byte never take L1
  // space twice. Then stores `reply` (L1 only; dropped if the cache was
  // invalidated since `generation`).
  void MaybeMemoize(const CacheKey& key, uint64_t generation, const InferResponse& response,
                    const EncodedReply& reply);

  Options options_;
  // Exact-repeat doorkeeper: a direct-mapped table of recently seen memo
  // digests (MaybeMemoize); 512 KiB, allocated when the memo is on.
  static constexpr size_t kSeenSlots = size_t{1} << 16;
  std::unique_ptr<std::atomic<uint64_t>[]> seen_;
};

}  // namespace inferd
