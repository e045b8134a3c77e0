// The cache stage of the pipeline (DESIGN.md section 1, step 2 and 6):
// lookup through the tiers, coalescing of identical requests in flight, and
// filling the cache after execution. Part of InferenceServer.

#include <algorithm>

#include "cache/cache_key.h"
#include "server/call.h"
#include "server/inference_server.h"
#include "server/response_codec.h"

namespace inferd {

namespace {

CacheStatus HitStatus(ResponseCache::Source s) {
  switch (s) {
    case ResponseCache::Source::kMemory:
      return CacheStatus::kHitMemory;
    case ResponseCache::Source::kDisk:
      return CacheStatus::kHitDisk;
    case ResponseCache::Source::kRedis:
      return CacheStatus::kHitRedis;
  }
  return CacheStatus::kMiss;
}

}  // namespace

void InferenceServer::CacheStage(std::shared_ptr<Call> call) {
  const ModelConfig& config = call->mv->config();
  if (!options_.cache || !config.response_cache.enabled) {
    Execute(std::move(call));
    return;
  }
  call->cached = true;
  // The canonical key: namespace, model, resolved version, inputs in the
  // model's declared order (whatever order the request used), and the
  // requested outputs sorted. The request id is not part of it.
  CacheKeyBuilder kb(CacheNamespace(config, call->x->context), config.name, call->mv->version(),
                     call->mv->revision());
  for (size_t i = 0; i < config.inputs.size(); ++i)
    kb.AddInput(config.inputs[i].name, call->inputs[i]);
  std::vector<std::string> outputs = call->request.outputs;
  std::sort(outputs.begin(), outputs.end());
  outputs.erase(std::unique(outputs.begin(), outputs.end()), outputs.end());
  for (const auto& o : outputs) kb.AddOutput(o);
  call->key = kb.Finish();

  if (call->request.no_cache) {  // refresh: execute and store, no lookup, no waiting
    Execute(std::move(call));
    return;
  }
  options_.cache->Lookup(call->key, [this, call](std::optional<ResponseCache::Hit> hit) {
    if (hit) {
      FinishFromEntry(*call, std::move(hit->entry), HitStatus(hit->source));
    } else {
      JoinOrLead(call);
    }
  });
}

void InferenceServer::JoinOrLead(std::shared_ptr<Call> call) {
  // A waiter waits until its deadline, and never longer than
  // coalesce_timeout for one leader.
  Time until =
      std::min(call->x->context.deadline, options_.clock->Now() + options_.coalesce_timeout);
  // A follower waits on the leader's work, not the model: its slot goes
  // back here. Taken out before Join, since once it is registered another
  // thread may finish the call (and release its slot) at any time.
  OverloadSlot slot = std::move(call->slot);
  bool leader =
      options_.cache->coalescer().Join(call->key, until, [this, call](Coalescer::Result r) {
        if (r.ok()) {
          // A leader that failed may pass on an expired entry (stale-if-error).
          bool expired = (*r)->expires_us <= options_.clock->WallMicros();
          FinishFromEntry(*call, std::move(r).value(),
                          expired ? CacheStatus::kStale : CacheStatus::kCoalesced);
        } else {
          Finish(*call, r.status());
        }
      });
  if (!leader) return;  // `slot` is given back here
  call->slot = std::move(slot);
  call->leader = true;
  Execute(std::move(call));
}

StatusOr<InferResponse> InferenceServer::FromEntry(const Call& call,
                                                   std::shared_ptr<const CacheEntry> entry,
                                                   CacheStatus status) {
  int64_t created = entry->created_us;
  int64_t entry_expires = entry->expires_us;
  INFERD_ASSIGN_OR_RETURN(auto outputs, DecodeOutputs(std::move(entry)));
  InferResponse r;
  r.model = call.mv->config().name;
  r.version = call.mv->version();
  r.id = call.request.id;
  r.outputs = std::move(outputs);
  r.cache = status;
  r.cache_created_us = created;
  r.cache_expires_us = entry_expires;
  r.cache_digest = call.key.digest;
  if (status != CacheStatus::kCoalesced) {
    r.age_s = std::max<int64_t>(0, (options_.clock->WallMicros() - created) / 1000000);
  }
  return r;
}

void InferenceServer::FinishFromEntry(Call& call, std::shared_ptr<const CacheEntry> entry,
                                      CacheStatus status) {
  Finish(call, FromEntry(call, std::move(entry), status));
}

void InferenceServer::AfterExecution(Call& call, StatusOr<InferResponse>* result) {
  ResponseCache* cache = options_.cache;
  const ResponseCacheConfig& rc = call.mv->config().response_cache;
  if (result->ok()) {
    (*result)->cache = CacheStatus::kMiss;
    auto entry = std::make_shared<CacheEntry>();
    entry->check = call.key.check;
    entry->model = call.key.model;
    entry->created_us = options_.clock->WallMicros();
    entry->expires_us = entry->created_us + rc.ttl_s * 1000000;
    entry->payload = EncodeOutputs((*result)->outputs);
    (*result)->cache_created_us = entry->created_us;
    (*result)->cache_expires_us = entry->expires_us;
    (*result)->cache_digest = call.key.digest;
    std::shared_ptr<const CacheEntry> shared = std::move(entry);
    if (!call.request.no_store) cache->Store(call.key, shared);
    if (call.leader) cache->coalescer().Complete(call.key, shared);
    return;
  }
  // Errors are never cached. Stale-if-error: an expired entry within
  // max_stale_s answers the leader and its waiters (marked stale);
  // otherwise the error reaches every waiter.
  std::shared_ptr<const CacheEntry> stale_entry;
  if (rc.max_stale_s > 0) {
    auto found = cache->LookupStale(call.key);
    if (found &&
        options_.clock->WallMicros() <= found->entry->expires_us + rc.max_stale_s * 1000000) {
      auto r = FromEntry(call, found->entry,
                         found->stale ? CacheStatus::kStale : CacheStatus::kHitMemory);
      if (r.ok()) {
        *result = std::move(r);
        stale_entry = std::move(found->entry);
      }
    }
  }
  if (!call.leader) return;
  if (stale_entry) {
    cache->coalescer().Complete(call.key, std::move(stale_entry));
  } else {
    cache->coalescer().Complete(call.key, result->status());
  }
}

}  // namespace inferd
