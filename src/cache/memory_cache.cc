#include "cache/memory_cache.h"

#include <time.h>

#include <random>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "cache/eviction.h"
#include "common/mutex.h"

#define ACQUIRE_SHARED(...) INFERD_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) INFERD_TSA(release_shared_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) INFERD_TSA(requires_shared_capability(__VA_ARGS__))

namespace inferd {
namespace {

// std::shared_mutex with clang thread-safety annotations (common/mutex.h
// has only exclusive locks; libstdc++'s std::shared_mutex is unannotated).
class CAPABILITY("mutex") SharedMutex {
 public:
  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  void LockShared() ACQUIRE_SHARED() { mu_.lock_shared(); }
  void UnlockShared() RELEASE_SHARED() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
};

class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~WriterLock() RELEASE() { mu_->Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex* mu_;
};

class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex* mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_->LockShared(); }
  ~ReaderLock() RELEASE() { mu_->UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex* mu_;
};

// One resident entry. Lives in its shard's hash table node (stable address).
struct Record : EvictionNode {
  Digest128 digest;
  int64_t expires_us = 0;  // entry->expires_us, kept here to spare a cache miss
  std::shared_ptr<const CacheEntry> entry;
};

// The digest is already uniform; the seeded mix keeps crafted partial
// collisions (equal `lo`) from piling into one bucket.
struct DigestHash {
  uint64_t seed = 0;
  size_t operator()(const Digest128& d) const noexcept {
    uint64_t x = (d.lo ^ seed) * 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>((x ^ (x >> 32)) + d.hi);
  }
};

using Table = std::unordered_map<Digest128, Record, DigestHash>;
using Garbage = std::vector<std::shared_ptr<const CacheEntry>>;

// Wall time from CLOCK_REALTIME_COARSE: the kernel's last tick (1-4 ms
// resolution, plenty for TTLs of seconds) read without a TSC access, a few
// ns instead of ~25 ns for CLOCK_REALTIME on this kind of VM.
int64_t CoarseWallMicros() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

enum class Outcome { kHit, kStaleHit, kMiss, kCollision, kDrop, kExpired };

}  // namespace

// Hash node (pair + next pointer), a bucket slot (load factor <= 1), the
// shared_ptr control block and allocator headers: an upper estimate.
const size_t MemoryCache::kEntryOverhead = sizeof(Table::value_type) + 3 * sizeof(void*) + 48;

// One lock domain. Counters written under the exclusive lock (entries,
// bytes, ...) are atomics too, so GetStats reads them without locking.
struct alignas(64) MemoryCache::Shard {
  Shard(const S3FifoPolicy::Options& policy_options, uint64_t seed)
      : hasher{seed}, map(16, hasher), policy(policy_options) {}

  // Looks `key` up; on kHit / kStaleHit sets *out.
  Outcome Lookup(const CacheKey& key, int64_t now, bool allow_stale, int64_t max_stale,
                 std::shared_ptr<const CacheEntry>* out) REQUIRES_SHARED(mu) {
    auto it = map.find(key.digest);
    if (it == map.end()) return Outcome::kMiss;
    Record& r = it->second;
    if (r.entry->check != key.check) return Outcome::kCollision;
    if (now <= r.expires_us) {
      S3FifoPolicy::OnHit(&r);
      *out = r.entry;
      return Outcome::kHit;
    }
    if (now - r.expires_us > max_stale) return Outcome::kDrop;
    if (!allow_stale) return Outcome::kExpired;
    *out = r.entry;
    return Outcome::kStaleHit;
  }

  // Unlinks and erases `r`, moving its entry to `garbage` (freed unlocked).
  void RemoveLocked(Record* r, bool remember, Garbage* garbage) REQUIRES(mu) {
    policy.Remove(r, remember);
    garbage->push_back(std::move(r->entry));
    map.erase(r->digest);
  }

  void PublishSizeLocked() REQUIRES(mu) {
    entries.store(map.size(), std::memory_order_relaxed);
    bytes.store(policy.charge(), std::memory_order_relaxed);
  }

  static void Bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }

  const DigestHash hasher;
  SharedMutex mu;
  Table map GUARDED_BY(mu);
  S3FifoPolicy policy GUARDED_BY(mu);

  std::atomic<uint64_t> hits{0}, misses{0}, stale_hits{0}, collisions{0};
  std::atomic<uint64_t> inserts{0}, evictions{0}, expirations{0}, rejected{0};
  std::atomic<uint64_t> entries{0}, bytes{0};
};

StatusOr<std::unique_ptr<MemoryCache>> MemoryCache::Create(const Options& options) {
  if (options.shards < 1 || options.shards > 1024) {
    return InvalidArgumentError("memory cache: shards must be in [1, 1024], got " +
                                std::to_string(options.shards));
  }
  if (!(options.small_queue_fraction > 0 && options.small_queue_fraction < 1)) {
    return InvalidArgumentError("memory cache: small_queue_fraction must be in (0, 1)");
  }
  if (options.max_stale_us < 0) {
    return InvalidArgumentError(
        "memory cache: the stale window (cache.memory.max_stale_s) must be >= 0");
  }
  if (options.max_bytes / static_cast<size_t>(options.shards) <= kEntryOverhead) {
    return InvalidArgumentError("memory cache: max_bytes " + std::to_string(options.max_bytes) +
                                " is too small for " + std::to_string(options.shards) + " shards");
  }
  return std::unique_ptr<MemoryCache>(new MemoryCache(options, options.clock));
}

MemoryCache::MemoryCache(const Options& options, Clock* clock)
    : options_(options),
      clock_(clock),
      shard_budget_(options.max_bytes / static_cast<size_t>(options.shards)) {
  S3FifoPolicy::Options policy;
  policy.capacity = shard_budget_;
  policy.small_fraction = options.small_queue_fraction;
  std::random_device rd;
  const uint64_t seed = (static_cast<uint64_t>(rd()) << 32) | rd();
  shards_.reserve(static_cast<size_t>(options.shards));
  for (int i = 0; i < options.shards; ++i) {
    shards_.push_back(std::make_unique<Shard>(policy, seed));
  }
}

MemoryCache::~MemoryCache() = default;

int64_t MemoryCache::WallNow() const {
  return clock_ != nullptr ? clock_->WallMicros() : CoarseWallMicros();
}

MemoryCache::Shard& MemoryCache::ShardFor(const Digest128& d) const {
  // Multiply-shift range reduction of the high half (the table hashes `lo`).
  const auto idx =
      static_cast<size_t>((static_cast<unsigned __int128>(d.hi) * shards_.size()) >> 64);
  return *shards_[idx];
}

std::optional<MemoryCache::Hit> MemoryCache::Get(const CacheKey& key, bool allow_stale) {
  return GetImpl(key, allow_stale, /*count_miss=*/true);
}

std::shared_ptr<const CacheEntry> MemoryCache::Probe(const CacheKey& key) {
  auto hit = GetImpl(key, /*allow_stale=*/false, /*count_miss=*/false);
  return hit ? std::move(hit->entry) : nullptr;
}

std::optional<MemoryCache::Hit> MemoryCache::GetImpl(const CacheKey& key, bool allow_stale,
                                                     bool count_miss) {
  Shard& s = ShardFor(key.digest);
  const int64_t now = WallNow();
  std::shared_ptr<const CacheEntry> entry;
  Outcome outcome;
  if (options_.exclusive_reads) {
    WriterLock l(&s.mu);
    outcome = s.Lookup(key, now, allow_stale, options_.max_stale_us, &entry);
  } else {
    ReaderLock l(&s.mu);
    outcome = s.Lookup(key, now, allow_stale, options_.max_stale_us, &entry);
  }
  switch (outcome) {
    case Outcome::kHit:
      Shard::Bump(s.hits);
      return Hit{std::move(entry), false};
    case Outcome::kStaleHit:
      Shard::Bump(s.stale_hits);
      return Hit{std::move(entry), true};
    case Outcome::kCollision:
      Shard::Bump(s.collisions);
      break;
    case Outcome::kDrop: {
      Garbage garbage;
      WriterLock l(&s.mu);
      auto it = s.map.find(key.digest);
      // Re-check: another thread may have replaced it meanwhile.
      if (it != s.map.end() && now - it->second.expires_us > options_.max_stale_us) {
        s.RemoveLocked(&it->second, /*remember=*/false, &garbage);
        s.PublishSizeLocked();
        Shard::Bump(s.expirations);
      }
      break;
    }
    case Outcome::kMiss:
    case Outcome::kExpired:
      break;
  }
  if (count_miss) Shard::Bump(s.misses);
  return std::nullopt;
}

void MemoryCache::Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry) {
  Shard& s = ShardFor(key.digest);
  const bool valid = entry != nullptr && entry->check == key.check;
  const size_t charge = valid ? entry->charge() + kEntryOverhead : 0;
  Garbage garbage;  // declared before the lock: freed after unlocking
  WriterLock l(&s.mu);
  auto it = s.map.find(key.digest);
  if (it != s.map.end()) {
    // A replaced entry was evidently wanted again: remembering its id sends
    // the new one straight to the main queue.
    s.RemoveLocked(&it->second, /*remember=*/true, &garbage);
  }
  if (!valid || charge > shard_budget_) {
    Shard::Bump(s.rejected);
    s.PublishSizeLocked();
    return;
  }
  uint64_t evicted = 0;
  while (s.policy.charge() + charge > shard_budget_) {
    EvictionNode* victim = s.policy.EvictOne();
    if (victim == nullptr) break;  // unreachable: charge <= budget
    Record* r = static_cast<Record*>(victim);
    garbage.push_back(std::move(r->entry));
    s.map.erase(r->digest);
    ++evicted;
  }
  auto [pos, inserted] = s.map.try_emplace(key.digest);
  Record& r = pos->second;
  r.id = key.digest.lo;
  r.charge = charge;
  r.digest = key.digest;
  r.expires_us = entry->expires_us;
  r.entry = std::move(entry);
  s.policy.Insert(&r);
  s.PublishSizeLocked();
  Shard::Bump(s.inserts);
  if (evicted > 0) Shard::Bump(s.evictions, evicted);
}

bool MemoryCache::Erase(const CacheKey& key) {
  Shard& s = ShardFor(key.digest);
  Garbage garbage;
  WriterLock l(&s.mu);
  auto it = s.map.find(key.digest);
  if (it == s.map.end()) return false;
  s.RemoveLocked(&it->second, /*remember=*/false, &garbage);
  s.PublishSizeLocked();
  return true;
}

size_t MemoryCache::EraseModel(std::string_view model) {
  size_t removed = 0;
  for (auto& shard : shards_) {
    Shard& s = *shard;
    Garbage garbage;
    WriterLock l(&s.mu);
    for (auto it = s.map.begin(); it != s.map.end();) {
      Record& r = it->second;
      ++it;  // RemoveLocked erases r's node
      if (r.entry->model == model) {
        s.RemoveLocked(&r, /*remember=*/false, &garbage);
        ++removed;
      }
    }
    s.PublishSizeLocked();
  }
  return removed;
}

void MemoryCache::Clear() {
  for (auto& shard : shards_) {
    Shard& s = *shard;
    Table old(0, s.hasher);  // destroyed after unlocking
    WriterLock l(&s.mu);
    for (auto& [digest, r] : s.map) s.policy.Remove(&r);
    old.swap(s.map);
    s.PublishSizeLocked();
  }
}

MemoryCache::Stats MemoryCache::GetStats() const {
  Stats st;
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  for (const auto& shard : shards_) {
    const Shard& s = *shard;
    st.hits += get(s.hits);
    st.misses += get(s.misses);
    st.stale_hits += get(s.stale_hits);
    st.collisions += get(s.collisions);
    st.inserts += get(s.inserts);
    st.evictions += get(s.evictions);
    st.expirations += get(s.expirations);
    st.rejected += get(s.rejected);
    st.entries += get(s.entries);
    st.bytes += get(s.bytes);
  }
  return st;
}

}  // namespace inferd
