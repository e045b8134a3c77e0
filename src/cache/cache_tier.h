#pragma once
// The tiers of the response cache and the interface of a lower one.
//
// CacheTier names a tier (L1 memory, L2 disk, L3 Redis): in lookup hits, in
// the stats JSON (GET /v2/cache/stats), in the `tier` label of the
// inferd_cache_* metrics and in error messages.
//
// LowerTier is what ResponseCache needs of a tier below memory. DiskCache
// and RedisCache are adapted to it by disk_tier.cc and redis_tier.cc
// (factories in lower_tiers.h); ResponseCache holds an ordered list of them
// and loops over it.

#include <cstdint>
#include <memory>
#include <string_view>

#include "cache/cache_entry.h"
#include "common/status.h"

namespace inferd {

enum class CacheTier { kMemory = 0, kDisk = 1, kRedis = 2 };
inline constexpr int kCacheTierCount = 3;

// "memory", "disk", "redis": the stats JSON keys and metric label values.
inline const char* CacheTierName(CacheTier tier) {
  switch (tier) {
    case CacheTier::kMemory:
      return "memory";
    case CacheTier::kDisk:
      return "disk";
    case CacheTier::kRedis:
      return "redis";
  }
  return "?";
}

// A lower (below memory) tier of the response cache.
//
// Results: every operation that can fail returns the Status of the work it
// did itself, never one inferred from counters that other calls also move.
// Put is the exception: it is write-behind and reports nothing (see below).
//
// Threading: every method may be called from any thread, concurrently.
class LowerTier {
 public:
  // Cumulative figures, read for the stats JSON and the metrics.
  struct Stats {
    uint64_t hits = 0, misses = 0, errors = 0, evictions = 0, writes = 0, dropped_writes = 0;
    int64_t entries = -1, bytes = -1;  // -1: unknown
    int circuit_open = -1;             // 1 open, 0 closed, -1: the tier has no circuit
  };

  virtual ~LowerTier() = default;

  // Which tier this is: kDisk or kRedis (never kMemory); constant.
  virtual CacheTier tier() const = 0;

  // Blocking (call it off the request path). The entry on a hit; NotFound
  // on a miss; any other error is a tier failure (already counted in the
  // tier's Stats), which the caller treats as a miss.
  virtual StatusOr<std::shared_ptr<const CacheEntry>> Get(const CacheKey& key) = 0;

  // Never blocks: write-behind, fire-and-forget. The write is queued for
  // the tier's writer, or refused at once (queue full, circuit open, entry
  // not storable); either way the caller learns nothing: a refusal, like a
  // later failed write, is counted by the tier in Stats::dropped_writes
  // (and errors), and a cache miss is the only consequence.
  virtual void Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry) = 0;

  // Blocking. Deletes every entry of `model`, stored or still queued for
  // writing. OK only when every command the tier issued for it succeeded;
  // otherwise the first error they returned (Unavailable, DeadlineExceeded,
  // ...), and the model's entries may then still be served by this tier.
  virtual Status EraseModel(std::string_view model) = 0;
  // Blocking. Deletes every entry of this tier; results as for EraseModel.
  virtual Status Clear() = 0;

  // Waits until every Put accepted before the call was written, failed or
  // dropped by an erase.
  virtual void Flush() = 0;

  virtual Stats GetStats() = 0;
};

}  // namespace inferd
