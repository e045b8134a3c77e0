#include "cache/memory_cache.h"

#include <algorithm>
#include <new>
#include <random>
#include <string>
#include <utility>

#include "cache/record_table.h"
#include "cache/shard_lock.h"
#include "cache/tinylfu_policy.h"

namespace inferd {
namespace {

// One resident entry. A short check (at most MemoryCache::kInlineCheckMax
// bytes: a SHA-256 check, a small canonical request) is copied into the
// same allocation, so that a hit compares it without touching the entry
// (one cache miss less); a longer one (an exact-repeat memo's request body)
// is compared in the entry rather than stored twice.
struct Record : EvictionNode {
  Digest128 digest;
  int64_t expires_us = 0;  // entry->expires_us
  std::shared_ptr<const CacheEntry> entry;
  uint32_t check_size = 0;
  bool check_inline = false;
  bool is_copy = false;  // stored by PutCopy: counts against the copy share

  std::string_view check() const {
    if (!check_inline) return entry->check;
    return {reinterpret_cast<const char*>(this + 1), check_size};
  }
  static Record* New(std::string_view check) {
    const bool inline_copy = check.size() <= MemoryCache::kInlineCheckMax;
    void* p = ::operator new(sizeof(Record) + (inline_copy ? check.size() : 0));
    Record* r = new (p) Record;
    r->check_inline = inline_copy;
    if (inline_copy) {
      r->check_size = static_cast<uint32_t>(check.size());
      std::copy(check.begin(), check.end(), reinterpret_cast<char*>(r + 1));
    }
    return r;
  }
  static void Delete(Record* r) {
    r->~Record();
    ::operator delete(r);
  }
};

using Table = RecordTable<Record>;
using Garbage = std::vector<std::shared_ptr<const CacheEntry>>;

enum class Outcome { kHit, kStaleHit, kMiss, kCollision, kDrop, kExpired };

}  // namespace

// The record (its inline check is charged separately), its table slots
// (16 bytes each; up to 4 per entry just after the table doubled, load
// 1/4), the shared_ptr control block and allocator headers: an upper
// estimate.
const size_t MemoryCache::kEntryOverhead = sizeof(Record) + 4 * 16 + 48;

// One lock domain. Counters of reads live in the lock's reader slots;
// those written under the exclusive lock are atomics too, so GetStats
// reads them without locking.
struct alignas(64) MemoryCache::Shard {
  Shard(size_t budget, uint64_t seed, const Options::PolicyTuning& tuning)
      : table(seed), policy(PolicyOptions(budget, seed, tuning)) {}

  static TinyLfuPolicy::Options PolicyOptions(size_t budget, uint64_t seed,
                                              const Options::PolicyTuning& tuning) {
    TinyLfuPolicy::Options o;
    o.capacity = budget;
    o.seed = seed;
    o.adaptive = tuning.adaptive_window;
    o.ghost_fraction = tuning.ghost_fraction;
    o.sketch.conservative = tuning.conservative_sketch;
    o.sketch.sample_per_id = tuning.sketch_sample_per_id;
    return o;
  }

  // Looks `key` up; on kHit / kStaleHit sets *out. A hit adds to the
  // record's pending hits (see TinyLfuPolicy::OnHit) and, the first time
  // since the policy last saw it, records it in the reader's buffer.
  Outcome Lookup(const CacheKey& key, int64_t now, bool allow_stale, int64_t max_stale,
                 ShardLock::Slot& slot, const std::shared_ptr<const CacheEntry>** out)
      REQUIRES_SHARED(mu) {
    Record* r = table.Find(key.digest);
    if (r == nullptr) return Outcome::kMiss;
    if (r->check() != key.check) return Outcome::kCollision;
    if (now <= r->expires_us) {
      if (TinyLfuPolicy::OnHit(r)) RecordTouch(slot, r);
      *out = &r->entry;
      return Outcome::kHit;
    }
    if (now - r->expires_us > max_stale) return Outcome::kDrop;
    if (!allow_stale) return Outcome::kExpired;
    *out = &r->entry;
    return Outcome::kStaleHit;
  }

  // Replays the hits buffered under the shared lock; first in every
  // exclusive section, before any record can go away.
  void DrainLocked() REQUIRES(mu) { mu.DrainTouchedInto(policy); }

  // Unlinks and frees `r`, moving its entry to `garbage` (freed unlocked).
  void RemoveLocked(Record* r, Garbage* garbage) REQUIRES(mu) {
    policy.Remove(r);
    FreeLocked(r, garbage);
  }

  // Frees `r`, already out of the policy.
  void FreeLocked(Record* r, Garbage* garbage) REQUIRES(mu) {
    if (r->is_copy) copy_bytes -= r->charge;
    table.Erase(r->digest);
    garbage->push_back(std::move(r->entry));
    Record::Delete(r);
  }

  void PublishSizeLocked() REQUIRES(mu) {
    entries.store(table.size(), std::memory_order_relaxed);
    bytes.store(policy.charge(), std::memory_order_relaxed);
  }

  static void Bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }

  ShardLock mu;
  Table table GUARDED_BY(mu);
  TinyLfuPolicy policy GUARDED_BY(mu);
  size_t copy_bytes GUARDED_BY(mu) = 0;  // charged by records with is_copy

  std::atomic<uint64_t> inserts{0}, evictions{0}, expirations{0}, rejected{0};
  std::atomic<uint64_t> entries{0}, bytes{0};
};

size_t MemoryCache::ShardCount(const Options& options) {
  const size_t by_size =
      std::max<size_t>(1, options.max_bytes / std::max<size_t>(1, options.min_shard_bytes));
  return std::min(static_cast<size_t>(options.shards), by_size);
}

StatusOr<std::unique_ptr<MemoryCache>> MemoryCache::Create(const Options& options) {
  if (options.shards < 1 || options.shards > 1024) {
    return InvalidArgumentError("memory cache: shards must be in [1, 1024], got " +
                                std::to_string(options.shards));
  }
  if (!(options.copy_share >= 0 && options.copy_share <= 1)) {
    return InvalidArgumentError(
        "memory cache: the copy share (cache.exact_repeat_share) must be in [0, 1]");
  }
  if (!(options.policy.ghost_fraction >= 0 && options.policy.ghost_fraction <= 1) ||
      options.policy.sketch_sample_per_id < 1) {
    return InvalidArgumentError("memory cache: bad policy tuning");
  }
  if (options.max_stale_us < 0) {
    return InvalidArgumentError(
        "memory cache: the stale window (cache.memory.max_stale_s) must be >= 0");
  }
  if (options.max_bytes / ShardCount(options) <= kEntryOverhead) {
    return InvalidArgumentError("memory cache: max_bytes " + std::to_string(options.max_bytes) +
                                " is too small for " + std::to_string(ShardCount(options)) +
                                " shards");
  }
  return std::unique_ptr<MemoryCache>(new MemoryCache(options, options.clock));
}

MemoryCache::MemoryCache(const Options& options, Clock* clock)
    : options_(options),
      clock_(clock),
      shard_budget_(options.max_bytes / ShardCount(options)),
      copy_budget_(static_cast<size_t>(options.copy_share * static_cast<double>(shard_budget_))) {
  uint64_t seed = options.seed;
  if (seed == 0) {
    std::random_device rd;
    seed = (static_cast<uint64_t>(rd()) << 32) | rd();
  }
  const size_t n = ShardCount(options);
  shards_.reserve(n);
  for (size_t i = 0; i < n; ++i)
    shards_.push_back(std::make_unique<Shard>(shard_budget_, seed + i, options.policy));
}

MemoryCache::~MemoryCache() {
  for (auto& shard : shards_) {
    Shard& s = *shard;
    ShardWriterLock l(&s.mu);
    s.table.ForEach([](Record* r) { Record::Delete(r); });
  }
}

// For expiry, the kernel's last tick (1-4 ms behind, plenty for TTLs of
// seconds), read without a TSC access: 11 ns instead of 34 on this VM.
int64_t MemoryCache::WallNow() const {
  return (clock_ != nullptr ? clock_ : Clock::System())->CoarseWallMicros();
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

bool MemoryCache::Probe(const CacheKey& key, Visit visit, void* arg) {
  return GetImpl(key, /*allow_stale=*/false, /*count_miss=*/false, visit, arg).has_value();
}

std::optional<MemoryCache::Hit> MemoryCache::GetImpl(const CacheKey& key, bool allow_stale,
                                                     bool count_miss, Visit visit, void* arg) {
  Shard& s = ShardFor(key.digest);
  ShardLock::Slot& slot = s.mu.ReaderSlot();
  const int64_t now = WallNow();
  std::shared_ptr<const CacheEntry> entry;
  Outcome outcome;
  // A visit reads the entry under the lock: no copy of its shared_ptr, whose
  // count would otherwise be one more line that the threads hitting a hot
  // entry all write.
  auto take = [&](const std::shared_ptr<const CacheEntry>* found) {
    if (found == nullptr) return;
    if (visit != nullptr) {
      visit(*found, arg);
    } else {
      entry = *found;
    }
  };
  const std::shared_ptr<const CacheEntry>* found = nullptr;
  if (options_.exclusive_reads) {
    ShardWriterLock l(&s.mu);
    outcome = s.Lookup(key, now, allow_stale, options_.max_stale_us, slot, &found);
    take(found);
  } else {
    ShardReaderLock l(&s.mu, &slot);
    outcome = s.Lookup(key, now, allow_stale, options_.max_stale_us, slot, &found);
    take(found);
  }
  switch (outcome) {
    case Outcome::kHit:
      Shard::Bump(slot.hits);
      return Hit{std::move(entry), false};
    case Outcome::kStaleHit:
      Shard::Bump(slot.stale_hits);
      return Hit{std::move(entry), true};
    case Outcome::kCollision:
      if (count_miss) Shard::Bump(slot.collisions);  // a subset of misses
      break;
    case Outcome::kDrop: {
      Garbage garbage;
      ShardWriterLock l(&s.mu);
      s.DrainLocked();
      Record* r = s.table.Find(key.digest);
      // Re-check: another thread may have replaced it meanwhile.
      if (r != nullptr && now - r->expires_us > options_.max_stale_us) {
        s.RemoveLocked(r, &garbage);
        s.PublishSizeLocked();
        Shard::Bump(s.expirations);
      }
      break;
    }
    case Outcome::kMiss:
    case Outcome::kExpired:
      break;
  }
  if (count_miss) Shard::Bump(slot.misses);
  return std::nullopt;
}

void MemoryCache::Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry) {
  PutImpl(key, std::move(entry), 0, nullptr, false);
}

bool MemoryCache::PutImpl(const CacheKey& key, std::shared_ptr<const CacheEntry> entry,
                          unsigned inherit, const uint64_t* policy_id, bool copy) {
  Shard& s = ShardFor(key.digest);
  const bool valid = entry != nullptr && entry->check == key.check;
  const size_t charge = valid ? Charge(*entry) : 0;
  Garbage garbage;  // declared before the lock: freed after unlocking
  ShardWriterLock l(&s.mu);
  s.DrainLocked();
  if (Record* old = s.table.Find(key.digest)) s.RemoveLocked(old, &garbage);
  if (!valid || charge > shard_budget_ || (copy && s.copy_bytes + charge > copy_budget_)) {
    Shard::Bump(s.rejected);
    s.PublishSizeLocked();
    return false;
  }
  Record* r = Record::New(key.check);
  r->is_copy = copy;
  if (copy) s.copy_bytes += charge;
  // The policy's id for the key (its sketch counters, its ghost records):
  // the table's seeded hash of both halves, so that crafted digests that
  // share a half do not share counters.
  r->id = policy_id != nullptr ? *policy_id : s.table.HashOf(key.digest);
  r->charge = charge;
  r->digest = key.digest;
  r->expires_us = entry->expires_us;
  r->entry = std::move(entry);
  s.table.Insert(r);
  s.policy.Inherit(r, inherit);
  s.policy.Insert(r);
  bool admitted = true;
  uint64_t evicted = 0;
  while (s.policy.charge() > shard_budget_) {
    auto* victim = static_cast<Record*>(s.policy.EvictOne());
    if (victim == nullptr) break;  // unreachable: charge <= budget
    if (victim == r) {
      admitted = false;  // lost its admission contest at once
    } else {
      ++evicted;
    }
    s.FreeLocked(victim, &garbage);
  }
  s.PublishSizeLocked();
  Shard::Bump(admitted ? s.inserts : s.rejected);
  if (evicted > 0) Shard::Bump(s.evictions, evicted);
  return admitted;
}

bool MemoryCache::Erase(const CacheKey& key) {
  Shard& s = ShardFor(key.digest);
  Garbage garbage;
  ShardWriterLock l(&s.mu);
  s.DrainLocked();
  Record* r = s.table.Find(key.digest);
  if (r == nullptr) return false;
  s.RemoveLocked(r, &garbage);
  s.PublishSizeLocked();
  return true;
}

void MemoryCache::PutCopy(const CacheKey& key, std::shared_ptr<const CacheEntry> entry,
                          const Digest128& original) {
  Shard& home = ShardFor(original);
  Shard& target = ShardFor(key.digest);
  if (entry == nullptr) return Put(key, std::move(entry));  // counted as rejected
  {
    // No room left for copies in the copy's shard: leave the original be
    // (PutImpl checks again under its lock; this spares the demotion).
    ShardWriterLock l(&target.mu);
    if (target.copy_bytes + Charge(*entry) > copy_budget_) {
      Shard::Bump(target.rejected);
      return;
    }
  }
  bool demoted = false;
  uint64_t id = 0;
  unsigned frequency = 0;
  {
    ShardWriterLock l(&home.mu);
    home.DrainLocked();
    if (Record* r = home.table.Find(original)) {
      // Demoted before the copy goes in, so that the copy's insertion
      // evicts the original rather than another entry.
      frequency = home.policy.Frequency(r);
      id = r->id;
      home.policy.Demote(r);
      demoted = true;
    }
  }
  if (!demoted) {  // nothing to stand in for; still a copy, within the share
    PutImpl(key, std::move(entry), 0, nullptr, true);
    return;
  }
  // The copy takes the original's policy id: to the sketch and the ghost
  // lists they are one key. In another shard (another sketch), it also
  // inherits the original's count. One lock at a time.
  if (PutImpl(key, std::move(entry), &target == &home ? 0 : frequency, &id, true)) return;
  // The copy was not stored: the original is not to go first after all.
  ShardWriterLock l(&home.mu);
  home.DrainLocked();
  if (Record* r = home.table.Find(original); r != nullptr && r->id == id) home.policy.Restore(r);
}

size_t MemoryCache::EraseModel(std::string_view model) {
  size_t removed = 0;
  for (auto& shard : shards_) {
    Shard& s = *shard;
    Garbage garbage;
    std::vector<Record*> doomed;
    ShardWriterLock l(&s.mu);
    s.DrainLocked();
    s.table.ForEach([&](Record* r) {
      if (r->entry->model == model) doomed.push_back(r);
    });
    for (Record* r : doomed) s.RemoveLocked(r, &garbage);
    removed += doomed.size();
    s.PublishSizeLocked();
  }
  return removed;
}

void MemoryCache::Clear() {
  for (auto& shard : shards_) {
    Shard& s = *shard;
    Garbage garbage;
    ShardWriterLock l(&s.mu);
    s.DrainLocked();
    std::vector<Record*> all;
    all.reserve(s.table.size());
    s.table.ForEach([&](Record* r) { all.push_back(r); });
    for (Record* r : all) {
      s.policy.Remove(r);
      garbage.push_back(std::move(r->entry));
      Record::Delete(r);
    }
    s.table.Clear();
    s.copy_bytes = 0;
    s.PublishSizeLocked();
  }
}

MemoryCache::Stats MemoryCache::GetStats() const {
  Stats st;
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  for (const auto& shard : shards_) {
    const Shard& s = *shard;
    for (unsigned i = 0; i < ShardLock::kSlots; ++i) {
      const ShardLock::Slot& slot = s.mu.slots()[i];
      st.hits += get(slot.hits);
      st.misses += get(slot.misses);
      st.stale_hits += get(slot.stale_hits);
      st.collisions += get(slot.collisions);
    }
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
