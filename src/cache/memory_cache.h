#pragma once
// MemoryCache: the L1 response cache, in process memory.
//
// Purpose: serve repeated requests without touching the model, at close to
// memory speed, within a hard byte budget.
//
// Design:
//   - Sharded by digest (the high half picks the shard). Each shard has its
//     own lock (cache/shard_lock.h), open-addressing table (digest ->
//     record, cache/record_table.h), eviction policy (an adaptive W-TinyLFU,
//     cache/tinylfu_policy.h) and counters. The budget `max_bytes` is split
//     evenly: each shard keeps at most max_bytes / shards bytes, so the
//     total is never exceeded. `shards` is an upper bound: every shard gets
//     at least `min_shard_bytes`, so a small cache has fewer, larger shards
//     (an entry up to the shard budget fits, and the policy sees enough
//     entries to rank them).
//   - A record charges Charge(entry): CacheEntry::charge(), a second copy of
//     a check of at most 128 bytes (kept in the record so that a hit does not
//     touch the entry) and kEntryOverhead (record, table slots, shared_ptr
//     control block).
//     An entry whose charge exceeds a shard's budget is not stored (counted
//     as `rejected`), nor is one that loses its admission contest at once.
//     The policy's metadata outside the budget: a 4-bit frequency sketch
//     (8 bytes per resident entry, rounded up to a power of two) and two
//     ghost lists of evicted ids, each bounded by 10% of the shard budget
//     in charge (about 70 bytes per id).
//   - Hits: Get takes the shard lock *shared*. A reader writes only its own
//     thread's slot of the lock (its count, its hit counters, its buffer of
//     touched records) and the record's 4-bit pending-hit count (skipped
//     once saturated), so concurrent hits, even on one key, write no shared
//     cache line but the returned entry's reference count. The policy
//     replays the buffered hits at the next exclusive section (Put, Erase,
//     eviction, dropping expired entries), as Caffeine replays its read
//     buffers.
//   - Correctness: a record is found by digest, but served only if its
//     check equals the key's `check`; a mismatch is a miss and is counted
//     as a collision. A Put whose entry->check differs from the key's is
//     rejected.
//   - Time: entries carry wall-clock `expires_us`; Get compares it with
//     the wall time of Options::clock (by default a coarse system clock,
//     see Options::clock). Past it, the entry is stale: a miss,
//     unless the caller allows stale responses (stale-if-error) and it is at
//     most `max_stale_us` past; beyond that, Get drops it.
//
// Counting: every Get adds exactly one of hits, stale_hits, misses
// (collisions are a subset of misses). Counters are per shard and reader
// slot, relaxed atomics, summed by GetStats (so a snapshot may be slightly
// torn).
//
// Threading: every method is safe from any thread. Returned entries are
// immutable and shared; they stay valid after eviction.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "cache/cache_entry.h"
#include "common/clock.h"
#include "common/status.h"

namespace inferd {

class MemoryCache {
 public:
  struct Options {
    // Byte budget over all shards (cache.memory.max_bytes); never exceeded.
    size_t max_bytes = 256 << 20;
    // At most this many independent locks; 1..1024. More shards, less
    // contention among writers (readers do not contend), but a smaller
    // per-shard budget (the largest storable entry).
    int shards = 16;
    // Fewer shards when the budget is small: each gets at least this much.
    size_t min_shard_bytes = 1 << 20;
    // Keep expired entries up to this long for stale-if-error; >= 0.
    int64_t max_stale_us = 0;
    // Source of wall time for TTLs, read with CoarseWallMicros (for
    // Clock::System(), CLOCK_REALTIME_COARSE: 1-4 ms resolution, 11 ns a
    // read instead of 34 here; TTLs are seconds). nullptr: Clock::System().
    Clock* clock = nullptr;
    // At most this share of each shard's budget holds copies (PutCopy: the
    // exact-repeat memo's encoded responses); a copy beyond it is not
    // stored. Bounds what the copies, larger than the entries they copy,
    // can take from the cache's hit ratio.
    double copy_share = 0.1;
    // Seeds the table hashes and the admission lottery. 0 (the default): a
    // random seed, so that clients cannot aim collisions; simulations set
    // one to be repeatable.
    uint64_t seed = 0;
    // Benchmark knob: take the shard lock exclusively in Get too (to
    // measure what shared locking buys). Leave false.
    bool exclusive_reads = false;
    // Benchmark knobs: the policy's alternatives, to measure what the
    // served choices buy (bench/hit_ratio_sim --variant). Leave them.
    struct PolicyTuning {
      bool adaptive_window = true;  // false: the window stays at 1%
      double ghost_fraction = 0.1;  // each ghost list, of a shard's budget
      bool conservative_sketch = true;
      size_t sketch_sample_per_id = 20;
    };
    PolicyTuning policy;
  };

  struct Hit {
    std::shared_ptr<const CacheEntry> entry;
    bool stale = false;  // expired, served only because allow_stale
  };

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t stale_hits = 0;
    uint64_t collisions = 0;   // digest found, check differed (also a miss)
    uint64_t inserts = 0;      // Puts stored (replacements included)
    uint64_t evictions = 0;    // removed by the policy to make room
    uint64_t expirations = 0;  // dropped past expires_us + max_stale_us
    uint64_t rejected = 0;     // Puts not stored (too large, bad entry)
    uint64_t entries = 0;      // resident now
    uint64_t bytes = 0;        // charged now; <= max_bytes
  };

  // Bytes charged per entry on top of CacheEntry::charge() and the check.
  static const size_t kEntryOverhead;
  // A check up to this long is copied into the index record (charged).
  static constexpr size_t kInlineCheckMax = 128;
  // What an entry costs in the budget.
  static size_t Charge(const CacheEntry& e) {
    return e.charge() + (e.check.size() <= kInlineCheckMax ? e.check.size() : 0) + kEntryOverhead;
  }

  static StatusOr<std::unique_ptr<MemoryCache>> Create(const Options& options);
  ~MemoryCache();
  MemoryCache(const MemoryCache&) = delete;
  MemoryCache& operator=(const MemoryCache&) = delete;

  std::optional<Hit> Get(const CacheKey& key, bool allow_stale = false);
  // A fresh entry or null, for a probe that is not the request's own lookup
  // (an API's exact-repeat memo, which falls back to the canonical lookup):
  // a hit counts as a hit, a miss is not counted.
  std::shared_ptr<const CacheEntry> Probe(const CacheKey& key);
  // The same, but calls visit(entry, arg) on a fresh entry, under the
  // shard's reader lock, instead of returning a copy of its pointer (whose
  // count every thread hitting a hot entry would write). The visit must be
  // short and must not call back into the cache; it may copy the pointer
  // (for a large entry it would rather not copy under the lock). Returns
  // whether it was a hit.
  using Visit = void (*)(const std::shared_ptr<const CacheEntry>& entry, void* arg);
  bool Probe(const CacheKey& key, Visit visit, void* arg);
  // Stores `entry` under `key` (entry->check must equal key.check), replacing
  // any entry with the same digest, evicting others as needed.
  void Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry);
  // Returns true if an entry with key's digest was removed.
  bool Erase(const CacheKey& key);
  // Put for an entry that copies the resident entry with digest `original`
  // in another form (the exact-repeat memo stores a request's encoded
  // response beside its canonical entry). So that the pair does not take
  // twice the room of one, the original first becomes the first entry
  // evicted when room is needed (until a hit takes it back; and not at all
  // if the copy is not stored), and the copy takes the original's identity
  // in the admission policy (its frequency, its ghost records). Without a
  // resident original, a Put of a copy (still within the copies' share).
  void PutCopy(const CacheKey& key, std::shared_ptr<const CacheEntry> entry,
               const Digest128& original);
  // Removes every entry of `model`; returns how many.
  size_t EraseModel(std::string_view model);
  void Clear();

  Stats GetStats() const;
  // Largest Charge(entry) a Put can store.
  size_t max_entry_charge() const { return shard_budget_; }
  size_t shard_count() const { return shards_.size(); }

 private:
  struct Shard;
  MemoryCache(const Options& options, Clock* clock);
  static size_t ShardCount(const Options& options);
  Shard& ShardFor(const Digest128& d) const;
  int64_t WallNow() const;
  std::optional<Hit> GetImpl(const CacheKey& key, bool allow_stale, bool count_miss,
                             Visit visit = nullptr, void* arg = nullptr);
  // Returns whether the entry was stored. `inherit`: sightings to add to
  // the sketch; `policy_id`: the policy's id for it (null: its own);
  // `copy`: stored by PutCopy, within the copies' share.
  bool PutImpl(const CacheKey& key, std::shared_ptr<const CacheEntry> entry, unsigned inherit,
               const uint64_t* policy_id, bool copy);

  const Options options_;
  Clock* const clock_;  // nullptr: coarse system wall clock
  const size_t shard_budget_;
  const size_t copy_budget_;  // per shard, for PutCopy's copies
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace inferd
