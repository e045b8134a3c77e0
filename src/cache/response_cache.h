#pragma once
// ResponseCache: the tiers of the response cache behind one interface, in
// lookup order L1 memory, then the lower tiers in the order given (L2 disk,
// L3 Redis in production; see cache_tier.h), plus the coalescer.
//
//  - Lookup checks L1 inline (a hit costs a hash lookup); on an L1 miss with
//    lower tiers enabled, they are read in order on the cache's own lookup
//    threads, never on an I/O thread, and the callback runs there. A lower
//    tier hit is promoted into every tier above it (L3 -> L2, L1; L2 -> L1).
//  - Store writes L1 at once and hands the lower tiers their write-behind
//    Puts.
//  - InvalidateModel and Clear call every tier, and their result is made of
//    those calls' results only (see below).
//  - A tier that fails to start (unwritable directory, bad URL) is left out
//    by whoever builds the Options (app/cache_wiring.cc); the cache keeps
//    working with the others.
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
#include "cache/cache_tier.h"
#include "cache/coalescer.h"
#include "cache/memory_cache.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "metrics/metrics.h"

namespace inferd {

class ResponseCache {
 public:
  // The tier a hit came from.
  using Source = CacheTier;
  static const char* SourceName(Source s) { return CacheTierName(s); }

  struct Options {
    MemoryCache::Options memory;
    // The tiers below memory, in lookup order (L2 first). Each non-null, of
    // a different tier() and not kMemory (else Create fails). Empty: L1 only.
    std::vector<std::unique_ptr<LowerTier>> lower_tiers;
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
  // InferenceServer::ProbeMemo). Probe returns a fresh entry or null; a
  // hit counts as an L1 hit, a miss is not counted (the request goes on to
  // its own Lookup, which counts it).
  std::shared_ptr<const CacheEntry> Probe(const CacheKey& key);
  // The same, calling visit(entry) on a hit while the entry is held
  // (MemoryCache::Probe with a visit: short, no calls back into the cache)
  // instead of sharing it. Returns whether it was a hit.
  template <typename F>
  bool ProbeWith(const CacheKey& key, F& visit) {
    return ProbeVisit(
        key, [](const std::shared_ptr<const CacheEntry>& e, void* f) { (*static_cast<F*>(f))(e); },
        &visit);
  }
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
  // Erase from L1 (which always succeeds), then call every lower tier's
  // EraseModel / Clear in order, each even if one before it failed. OK only
  // if every tier's call succeeded; otherwise Unavailable (retry later),
  // naming the first tier that failed and carrying its error message. The
  // result depends only on the calls this invalidation made.
  Status InvalidateModel(std::string_view model);
  Status Clear();
  // The same off the caller's thread (they may block on RocksDB and Redis):
  // run on a lookup thread, which then calls `done` exactly once.
  void InvalidateModelAsync(std::string model, std::function<void(Status)> done) EXCLUDES(mu_);
  void ClearAsync(std::function<void(Status)> done) EXCLUDES(mu_);
  void Flush();  // waits for the lower tiers' write queues

  Coalescer& coalescer() { return coalescer_; }
  bool has_tier(Source s) const { return FindTier(s) != nullptr; }
  bool has_disk() const { return has_tier(Source::kDisk); }
  bool has_redis() const { return has_tier(Source::kRedis); }

  // JSON for GET /v2/cache/stats: per tier hits, misses, hit ratio, entries,
  // bytes, evictions, errors, lookup latency percentiles.
  std::string StatsJson();

 private:
  bool ProbeVisit(const CacheKey& key, MemoryCache::Visit visit, void* arg);
  explicit ResponseCache(Options options);
  void LookupLoop() EXCLUDES(mu_);
  std::optional<Hit> LookupLower(const CacheKey& key);
  // The lower tier that is `s`, or null.
  LowerTier* FindTier(Source s) const;
  // Runs `op` on every lower tier; the first failure, named (see Clear).
  Status ForEachTier(std::string_view what, const std::function<Status(LowerTier&)>& op);
  void Observe(Source s, Time start);
  void RefreshMetrics();
  LowerTier::Stats MemoryStats();  // L1's figures in the common shape

  Clock* clock_;
  std::unique_ptr<MemoryCache> memory_;
  const std::vector<std::unique_ptr<LowerTier>> lower_;  // lookup order
  Coalescer coalescer_;
  std::atomic<uint64_t> generation_{0};
  size_t max_pending_;
  Histogram* lookup_latency_[kCacheTierCount] = {};  // per tier, seconds
  std::unique_ptr<Registry> own_registry_;           // when none is given

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
  Exported exported_[kCacheTierCount] GUARDED_BY(metrics_mu_) = {};
  Counter* coalesced_ = nullptr;
  Gauge* redis_circuit_open_ = nullptr;
  int64_t last_coalesced_ GUARDED_BY(metrics_mu_) = 0;
};

}  // namespace inferd
