// The exact-repeat memo of InferenceServer: step 2 of the pipeline, taken
// first (see MemoProbe in inference_server.h and docs/architecture.md).

#include <algorithm>
#include <charconv>

#include "cache/cache_key.h"
#include "server/inference_server.h"

namespace inferd {

InferenceServer::MemoProbe InferenceServer::ProbeMemo(const InferExchange& x,
                                                      const ModelVersion& mv) {
  MemoProbe out;
  ResponseCache* cache = options_.cache;
  if (!cache) return out;
  out.generation = cache->generation();
  const ModelConfig& config = mv.config();
  const std::string_view bytes = x.body();
  if (!config.response_cache.enabled || options_.encoded_max_bytes == 0 || x.encoding().empty() ||
      bytes.size() > options_.encoded_max_bytes) {
    return out;
  }
  // The whole request stays the check (no SHA-256 over it): at most
  // encoded_max_bytes plus the short parts.
  out.key = EncodedRequestKey(CacheNamespace(config, x.context), config.name, mv.version(),
                              x.encoding(), bytes, options_.encoded_max_bytes + 512, mv.revision());
  if (x.no_cache) {
    // A refresh: the memo must not keep answering with what it replaces.
    cache->EraseMemory(*out.key);
    return out;
  }
  // A small reply is copied out under the cache's shard lock, so that the
  // entry's reference count is not written (see ResponseCache::ProbeWith);
  // a large one is held by its pointer and copied after the lock.
  constexpr size_t kCopyUnderLock = 16 << 10;
  std::shared_ptr<const CacheEntry> held;
  auto visit = [&](const std::shared_ptr<const CacheEntry>& entry) {
    if (entry->payload.size() <= kCopyUnderLock) {
      out.hit = ReplyFromMemo(*entry, &out.reply);
    } else {
      held = entry;
    }
  };
  cache->ProbeWith(*out.key, visit);
  if (held) out.hit = ReplyFromMemo(*held, &out.reply);
  return out;
}

// A memo entry's payload is "<framing length>\n<framing><body>".
bool InferenceServer::ReplyFromMemo(const CacheEntry& entry, EncodedReply* reply) const {
  std::string_view p = entry.payload;
  size_t nl = p.find('\n');
  if (nl == std::string_view::npos) return false;
  size_t framing = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + nl, framing);
  if (ec != std::errc() || end != p.data() + nl || framing > p.size() - nl - 1) return false;
  reply->framing.assign(p.substr(nl + 1, framing));
  reply->body.assign(p.substr(nl + 1 + framing));
  reply->cache = CacheStatus::kHitMemory;
  // In whole seconds: the coarse wall clock (a few ms behind) is enough.
  reply->age_s =
      std::max<int64_t>(0, (options_.clock->CoarseWallMicros() - entry.created_us) / 1000000);
  return true;
}

void InferenceServer::MaybeMemoize(const CacheKey& key, uint64_t generation,
                                   const InferResponse& response, const EncodedReply& reply) {
  if (!options_.cache || !seen_) return;
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
      return;
  }
  if (!seen_before || response.cache_expires_us <= options_.clock->WallMicros()) return;
  auto entry = std::make_shared<CacheEntry>();
  entry->check = key.check;
  entry->model = key.model;
  entry->created_us = response.cache_created_us;
  entry->expires_us = response.cache_expires_us;
  entry->payload.reserve(24 + reply.framing.size() + reply.body.size());
  entry->payload = std::to_string(reply.framing.size());
  entry->payload += '\n';
  entry->payload += reply.framing;
  entry->payload += reply.body;
  // A copy of the canonical entry: the pair takes the room of one.
  options_.cache->StoreMemory(key, std::move(entry), generation, &response.cache_digest);
}

}  // namespace inferd
