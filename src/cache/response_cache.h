#pragma once
// ResponseCache: the tiers of the response cache behind one interface, in
// lookup order L1 memory -> L2 disk -> L3 Redis, plus the coalescer.
//
//  - Lookup checks L1 inline (a hit costs a hash lookup); on an L1 miss with
//    lower tiers enabled, L2 and then L3 are read on the cache's own lookup
//    threads, never on an I/O thread, and the callback runs there. A lower
//    tier hit is promoted upward (L3 -> L2, L1; L2 -> L1).
//  - Store writes L1 at once and hands L2/L3 to their write-behind queues.
//  - A tier that fails to start (unwritable directory, bad URL) is disabled
//    and logged; the cache keeps working with the others.
//
// Threading: all methods safe from any thread.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cache/cache_entry.h"
#include "cache/coalescer.h"
#include "cache/memory_cache.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "metrics/metrics.h"

namespace inferd {

// What the response cache needs of a lower (disk, Redis) tier.
class LowerTier {
 public:
  struct Stats {
    uint64_t hits = 0, misses = 0, errors = 0, evictions = 0, writes = 0, dropped_writes = 0;
    int64_t entries = -1, bytes = -1;  // -1: unknown
    int circuit_open = -1;             // 1 open, 0 closed, -1: the tier has no circuit
  };
  virtual ~LowerTier() = default;
  // Blocking; NotFound on a miss; any other error counts as a tier error.
  virtual StatusOr<std::shared_ptr<const CacheEntry>> Get(const CacheKey& key) = 0;
  virtual void Put(const CacheKey& key,
                   std::shared_ptr<const CacheEntry> entry) = 0;  // never blocks
  // Unavailable when the tier could not delete (e.g. Redis is down): its
  // entries may then still be served once it is back.
  virtual Status EraseModel(std::string_view model) = 0;
  virtual Status Clear() = 0;
  virtual void Flush() = 0;  // waits for queued writes
  virtual Stats GetStats() = 0;
};

class ResponseCache {
 public:
  enum class Source { kMemory = 0, kDisk = 1, kRedis = 2 };
  static const char* SourceName(Source s);  // "memory", "disk", "redis"

  struct Options {
    MemoryCache::Options memory;
    std::unique_ptr<LowerTier> disk;    // optional
    std::unique_ptr<LowerTier> redis;   // optional
    int lookup_threads = 2;             // for L2/L3 reads
    size_t max_pending_lookups = 4096;  // beyond it, lower tiers are skipped (a miss)
    Clock* clock = nullptr;
    Registry* registry = nullptr;  // optional: inferd_cache_* metrics
  };
  static StatusOr<std::unique_ptr<ResponseCache>> Create(Options options);
  ~ResponseCache();

  struct Hit {
    std::shared_ptr<const CacheEntry> entry;
    Source source = Source::kMemory;
    bool stale = false;
  };
  using LookupCallback = std::function<void(std::optional<Hit>)>;

  // Calls `done` exactly once, inline for an L1 hit or when no lower tier is
  // enabled, otherwise from a lookup thread.
  void Lookup(const CacheKey& key, LookupCallback done) EXCLUDES(mu_);
  // L1 only, expired entries within max_stale included (stale-if-error).
  std::optional<Hit> LookupStale(const CacheKey& key);
  void Store(const CacheKey& key, std::shared_ptr<const CacheEntry> entry);
  // L1 only, for entries derived from others that the lower tiers need not
  // hold (an API's encoded responses to exact repeats, see
  // InferenceServer::LookupEncoded). Probe returns a fresh entry or null; a
  // hit counts as an L1 hit, a miss is not counted (the request goes on to
  // its own Lookup, which counts it).
  std::shared_ptr<const CacheEntry> Probe(const CacheKey& key);
  // Stores in L1 unless an invalidation (InvalidateModel, Clear) ran since
  // `generation` was read: an entry derived from one read before an
  // invalidation must not outlive it. A store that races an invalidation is
  // undone. `copy_of`: the digest of the entry this one copies in another
  // form (see MemoryCache::PutCopy), or null.
  void StoreMemory(const CacheKey& key, std::shared_ptr<const CacheEntry> entry,
                   uint64_t generation, const Digest128* copy_of = nullptr);
  void EraseMemory(const CacheKey& key);
  // Moves when an invalidation starts and when it ends.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // L1 always succeeds; a lower tier that cannot delete makes the result
  // Unavailable (naming the tier), after the other tiers were cleared.
  Status InvalidateModel(std::string_view model);
  Status Clear();
  // The same off the caller's thread (they may block on RocksDB and Redis):
  // run on a lookup thread, which then calls `done` exactly once.
  void InvalidateModelAsync(std::string model, std::function<void(Status)> done) EXCLUDES(mu_);
  void ClearAsync(std::function<void(Status)> done) EXCLUDES(mu_);
  void Flush();  // waits for the lower tiers' write queues

  Coalescer& coalescer() { return coalescer_; }
  bool has_disk() const { return disk_ != nullptr; }
  bool has_redis() const { return redis_ != nullptr; }

  // JSON for GET /v2/cache/stats: per tier hits, misses, hit ratio, entries,
  // bytes, evictions, errors, lookup latency percentiles.
  std::string StatsJson();

 private:
  explicit ResponseCache(Options options);
  void LookupLoop() EXCLUDES(mu_);
  std::optional<Hit> LookupLower(const CacheKey& key);
  void Observe(Source s, Time start);
  void RefreshMetrics();
  LowerTier::Stats MemoryStats();  // L1's figures in the common shape

  Clock* clock_;
  std::unique_ptr<MemoryCache> memory_;
  std::unique_ptr<LowerTier> disk_;
  std::unique_ptr<LowerTier> redis_;
  Coalescer coalescer_;
  std::atomic<uint64_t> generation_{0};
  size_t max_pending_;
  Histogram* lookup_latency_[3] = {};       // per tier, seconds
  std::unique_ptr<Registry> own_registry_;  // when none is given

  struct Pending {
    CacheKey key;
    LookupCallback done;
    std::function<void()> job;  // instead of a lookup when set
  };
  void RunOnLookupThread(std::function<void()> job) EXCLUDES(mu_);
  Mutex mu_;
  CondVar cv_;
  std::vector<Pending> pending_ GUARDED_BY(mu_);  // FIFO via head index
  size_t pending_head_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;

  // Last values exported as counters (metrics read cumulative tier stats).
  Mutex metrics_mu_;
  struct Exported {
    Counter *hits, *misses, *errors, *evictions, *writes, *dropped;
    Gauge *entries, *bytes;
    uint64_t last_hits = 0, last_misses = 0, last_errors = 0, last_evictions = 0;
    uint64_t last_writes = 0, last_dropped = 0;
  };
  Exported exported_[3] GUARDED_BY(metrics_mu_) = {};
  Counter* coalesced_ = nullptr;
  Gauge* redis_circuit_open_ = nullptr;
  int64_t last_coalesced_ GUARDED_BY(metrics_mu_) = 0;
};

}  // namespace inferd
