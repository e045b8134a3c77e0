// Exact repeats: the encoded-response memo of InferenceServer (see
// LookupEncoded in inference_server.h and docs/architecture.md).

#include <algorithm>

#include "cache/cache_key.h"
#include "server/inference_server.h"

namespace inferd {

StatusOr<InferenceServer::EncodedLookup> InferenceServer::LookupEncoded(
    const EncodedRequest& request) {
  Time start = options_.clock->Now();
  INFERD_ASSIGN_OR_RETURN(auto mv, options_.models->Get(request.model, request.version));
  EncodedLookup out;
  out.version = mv;
  if (options_.cache) out.generation = options_.cache->generation();
  const ModelConfig& config = mv->config();
  if (!options_.cache || !config.response_cache.enabled || options_.encoded_max_bytes == 0 ||
      request.bytes.size() > options_.encoded_max_bytes) {
    return out;
  }
  // The whole request stays the check (no SHA-256 over it): at most
  // encoded_max_bytes plus the short parts.
  out.key = EncodedRequestKey(options_.cache_namespace, config.name, mv->version(),
                              request.encoding, request.bytes, options_.encoded_max_bytes + 512);
  if (request.no_cache) {
    // A refresh: the memo must not keep answering with what it replaces.
    options_.cache->EraseMemory(*out.key);
    return out;
  }
  out.hit = options_.cache->Probe(*out.key);
  if (!out.hit) return out;
  out.age_s = std::max<int64_t>(0, (options_.clock->WallMicros() - out.hit->created_us) / 1000000);
  ModelMetrics* mm = options_.metrics->For(config.name, mv->version());
  mm->outcomes[static_cast<int>(Outcome::kSuccess)]->Increment();
  mm->request_duration->Observe(Seconds(options_.clock->Now() - start));
  return out;
}

bool InferenceServer::AdmitEncoded(const CacheKey& key, const InferResponse& response) {
  if (!options_.cache || !seen_) return false;
  // Record the sighting whatever the outcome; tags are never 0 (empty slot).
  std::atomic<uint64_t>& slot = seen_[key.digest.lo & (kSeenSlots - 1)];
  const uint64_t tag = key.digest.hi | 1;
  const bool seen_before = slot.load(std::memory_order_relaxed) == tag;
  if (!seen_before) slot.store(tag, std::memory_order_relaxed);
  switch (response.cache) {
    case CacheStatus::kHitMemory:  // a repeat: worth a second entry
    case CacheStatus::kHitDisk:
    case CacheStatus::kHitRedis:
    case CacheStatus::kCoalesced:
      break;
    case CacheStatus::kMiss:   // maybe a one-off: the canonical entry is enough
    case CacheStatus::kNone:   // the model does not cache
    case CacheStatus::kStale:  // served past its TTL: nothing to keep
      return false;
  }
  return seen_before && response.cache_expires_us > options_.clock->WallMicros();
}

void InferenceServer::StoreEncoded(const CacheKey& key, uint64_t generation,
                                   const InferResponse& response, std::string encoded) {
  if (!options_.cache) return;
  auto entry = std::make_shared<CacheEntry>();
  entry->check = key.check;
  entry->model = key.model;
  entry->created_us = response.cache_created_us;
  entry->expires_us = response.cache_expires_us;
  entry->payload = std::move(encoded);
  // A copy of the canonical entry: the pair takes the room of one.
  options_.cache->StoreMemory(key, std::move(entry), generation, &response.cache_digest);
}

}  // namespace inferd
