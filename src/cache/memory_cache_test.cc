#include "cache/memory_cache.h"
#include "cache/cache_test_util.h"

#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cache/eviction.h"
#include "common/clock.h"

namespace inferd {
namespace {

using std::chrono::seconds;

constexpr int64_t kSecond = 1'000'000;

using cache_test::Key;
using cache_test::Mix;

std::shared_ptr<const CacheEntry> Entry(const CacheKey& k, size_t payload_bytes, int64_t expires_us,
                                        const std::string& payload_tag = "") {
  auto e = std::make_shared<CacheEntry>();
  e->check = k.check;
  e->model = k.model;
  e->expires_us = expires_us;
  e->payload = payload_tag + std::string(payload_bytes, 'x');
  return e;
}

class MemoryCacheTest : public ::testing::Test {
 protected:
  std::unique_ptr<MemoryCache> Make(MemoryCache::Options o = {}) {
    o.clock = &clock_;
    auto c = MemoryCache::Create(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(c).value();
  }
  int64_t Later(int64_t us) { return clock_.WallMicros() + us; }

  FakeClock clock_;
};

TEST_F(MemoryCacheTest, RejectsInvalidOptions) {
  MemoryCache::Options o;
  o.shards = 0;
  EXPECT_FALSE(MemoryCache::Create(o).ok());
  o = {};
  o.max_stale_us = -1;
  EXPECT_FALSE(MemoryCache::Create(o).ok());
  o = {};
  o.max_bytes = 100;
  EXPECT_FALSE(MemoryCache::Create(o).ok());
}

TEST_F(MemoryCacheTest, HitAndMiss) {
  auto cache = Make();
  CacheKey a = Key(1), b = Key(2);
  auto e = Entry(a, 100, Later(60 * kSecond));
  cache->Put(a, e);
  auto hit = cache->Get(a);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->entry, e);
  EXPECT_FALSE(hit->stale);
  EXPECT_FALSE(cache->Get(b).has_value());
  MemoryCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.inserts, 1u);
  EXPECT_EQ(st.entries, 1u);
  EXPECT_EQ(st.bytes, MemoryCache::Charge(*e));
}

TEST_F(MemoryCacheTest, CheckMismatchIsMissAndCollision) {
  auto cache = Make();
  CacheKey a = Key(1);
  cache->Put(a, Entry(a, 10, Later(60 * kSecond)));
  CacheKey forged = a;  // same digest, different request
  forged.check = "another request";
  EXPECT_FALSE(cache->Get(forged).has_value());
  MemoryCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.collisions, 1u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_TRUE(cache->Get(a).has_value());

  // An entry whose check is not its key's is never stored.
  cache->Put(forged, Entry(a, 10, Later(60 * kSecond)));
  EXPECT_EQ(cache->GetStats().rejected, 1u);
  EXPECT_FALSE(cache->Get(forged).has_value());
  cache->Put(a, nullptr);
  EXPECT_EQ(cache->GetStats().rejected, 2u);
}

TEST_F(MemoryCacheTest, ReplaceKeepsOneEntry) {
  auto cache = Make();
  CacheKey a = Key(1);
  cache->Put(a, Entry(a, 10, Later(60 * kSecond), "old"));
  auto fresh = Entry(a, 20, Later(60 * kSecond), "new");
  cache->Put(a, fresh);
  EXPECT_EQ(cache->Get(a)->entry, fresh);
  MemoryCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.entries, 1u);
  EXPECT_EQ(st.bytes, MemoryCache::Charge(*fresh));
}

TEST_F(MemoryCacheTest, EntryExpiresAfterTtl) {
  auto cache = Make();
  CacheKey a = Key(1);
  cache->Put(a, Entry(a, 10, Later(10 * kSecond)));
  clock_.Advance(seconds(10));
  EXPECT_TRUE(cache->Get(a).has_value());  // at expires_us: still fresh
  clock_.Advance(seconds(1));
  EXPECT_FALSE(cache->Get(a).has_value());
  EXPECT_FALSE(cache->Get(a, /*allow_stale=*/true).has_value());  // max_stale_us = 0
  MemoryCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.expirations, 1u);
  EXPECT_EQ(st.entries, 0u);
  EXPECT_EQ(st.bytes, 0u);
}

TEST_F(MemoryCacheTest, StaleServedOnlyWhenAllowedAndWithinWindow) {
  MemoryCache::Options o;
  o.max_stale_us = 60 * kSecond;
  auto cache = Make(o);
  CacheKey a = Key(1);
  cache->Put(a, Entry(a, 10, Later(10 * kSecond)));
  clock_.Advance(seconds(30));
  EXPECT_FALSE(cache->Get(a).has_value());
  auto stale = cache->Get(a, /*allow_stale=*/true);
  ASSERT_TRUE(stale.has_value());
  EXPECT_TRUE(stale->stale);
  clock_.Advance(seconds(41));  // 71 s past expiry
  EXPECT_FALSE(cache->Get(a, true).has_value());
  MemoryCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.stale_hits, 1u);
  EXPECT_EQ(st.misses, 2u);
  EXPECT_EQ(st.hits, 0u);
  EXPECT_EQ(st.expirations, 1u);
  EXPECT_EQ(st.entries, 0u);
}

TEST_F(MemoryCacheTest, OversizeEntryIsRejected) {
  MemoryCache::Options o;
  o.max_bytes = 64 << 10;
  o.shards = 4;
  o.min_shard_bytes = 1;
  auto cache = Make(o);
  CacheKey a = Key(1);
  cache->Put(a, Entry(a, 10, Later(kSecond)));
  cache->Put(a, Entry(a, 16 << 10, Later(kSecond)));  // > 16 KiB shard budget
  MemoryCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.rejected, 1u);
  EXPECT_EQ(st.entries, 0u);  // the old one was superseded, not kept
  EXPECT_FALSE(cache->Get(a).has_value());
}

TEST_F(MemoryCacheTest, BudgetNeverExceededUnderRandomPuts) {
  MemoryCache::Options o;
  o.max_bytes = 256 << 10;
  o.shards = 4;
  o.min_shard_bytes = 1;
  auto cache = Make(o);
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    CacheKey k = Key(rng() % 3000);
    switch (rng() % 8) {
      case 0:
        cache->Erase(k);
        break;
      case 1:
      case 2:
        cache->Get(k);
        break;
      default: {
        size_t size = (rng() % 4 == 0) ? rng() % (80 << 10) : rng() % 2000;
        cache->Put(k, Entry(k, size, Later(kSecond)));
      }
    }
    ASSERT_LE(cache->GetStats().bytes, o.max_bytes) << "after op " << i;
  }
  MemoryCache::Stats st = cache->GetStats();
  EXPECT_GT(st.evictions, 0u);
  EXPECT_GT(st.rejected, 0u);
}

TEST_F(MemoryCacheTest, FrequentKeysSurviveOneOffScan) {
  CacheKey probe = Key(0);
  size_t charge = MemoryCache::Charge(*Entry(probe, 100, 0));
  MemoryCache::Options o;
  o.shards = 1;
  o.max_bytes = 100 * charge;  // 100 entries
  auto cache = Make(o);
  const int64_t exp = Later(3600 * kSecond);
  for (int i = 0; i < 20; ++i) cache->Put(Key(i), Entry(Key(i), 100, exp));
  // 20 hot keys read once per 150 one-off keys: their reuse distance (170
  // distinct keys) exceeds the cache, so an LRU would lose every one of
  // them; frequency-aware admission keeps them all.
  for (int i = 1000; i < 6000; ++i) {
    if (i % 150 == 0) {
      for (int k = 0; k < 20; ++k) cache->Get(Key(k));
    }
    cache->Put(Key(i), Entry(Key(i), 100, exp));
  }
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(cache->Get(Key(i)).has_value()) << "hot key " << i;
  EXPECT_LE(cache->GetStats().entries, 100u);
}

TEST_F(MemoryCacheTest, PutCopyMakesTheOriginalTheFirstToGo) {
  const size_t charge = MemoryCache::Charge(*Entry(Key(0), 100, 0));
  MemoryCache::Options o;
  o.shards = 1;
  o.max_bytes = 10 * charge + charge / 2;  // 10 entries (ids differ in length)
  auto cache = Make(o);
  const int64_t exp = Later(3600 * kSecond);
  for (int i = 0; i < 9; ++i) cache->Put(Key(i), Entry(Key(i), 100, exp));
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(cache->Get(Key(i)).has_value());
  const CacheKey original = Key(0), copy = Key(100);
  cache->PutCopy(copy, Entry(copy, 100, exp), original.digest);
  EXPECT_EQ(cache->GetStats().entries, 10u);  // room: nothing evicted yet
  cache->Put(Key(50), Entry(Key(50), 100, exp));
  EXPECT_FALSE(cache->Get(original).has_value()) << "the demoted original goes first";
  EXPECT_TRUE(cache->Get(copy).has_value());
  for (int i = 1; i < 9; ++i) EXPECT_TRUE(cache->Get(Key(i)).has_value()) << i;
  EXPECT_EQ(cache->GetStats().evictions, 1u);

  // Without a resident original, PutCopy is a Put.
  auto empty = Make(o);
  empty->PutCopy(Key(200), Entry(Key(200), 100, exp), Key(999).digest);
  EXPECT_TRUE(empty->Get(Key(200)).has_value());
}

TEST_F(MemoryCacheTest, PutCopyThatIsNotStoredLeavesTheOriginalInPlace) {
  const size_t charge = MemoryCache::Charge(*Entry(Key(0), 100, 0));
  MemoryCache::Options o;
  o.shards = 1;
  o.max_bytes = 10 * charge + charge / 2;  // 10 entries
  auto cache = Make(o);
  const int64_t exp = Later(3600 * kSecond);
  for (int i = 0; i < 10; ++i) cache->Put(Key(i), Entry(Key(i), 100, exp));
  for (int round = 0; round < 3; ++round) ASSERT_TRUE(cache->Get(Key(0)).has_value());
  // A copy too large for the shard is refused: the original must not stay
  // the first to go.
  cache->PutCopy(Key(100), Entry(Key(100), o.max_bytes, exp), Key(0).digest);
  EXPECT_FALSE(cache->Get(Key(100)).has_value());
  for (int i = 20; i < 22; ++i) cache->Put(Key(i), Entry(Key(i), 100, exp));
  EXPECT_TRUE(cache->Get(Key(0)).has_value()) << "the frequent original was evicted";
}

TEST_F(MemoryCacheTest, CopiesBeyondTheirShareAreNotStored) {
  const size_t charge = MemoryCache::Charge(*Entry(Key(0), 100, 0));
  MemoryCache::Options o;
  o.shards = 1;
  o.max_bytes = 20 * charge;
  o.copy_share = 0.25;  // room for 5 copies
  auto cache = Make(o);
  const int64_t exp = Later(3600 * kSecond);
  for (int i = 0; i < 10; ++i) cache->Put(Key(i), Entry(Key(i), 100, exp));
  for (int i = 0; i < 10; ++i) {
    cache->PutCopy(Key(100 + i), Entry(Key(100 + i), 100, exp), Key(i).digest);
  }
  int copies = 0;
  for (int i = 0; i < 10; ++i) copies += cache->Get(Key(100 + i)).has_value() ? 1 : 0;
  EXPECT_GE(copies, 4);
  EXPECT_LE(copies, 5);
  EXPECT_EQ(cache->GetStats().rejected, static_cast<uint64_t>(10 - copies));
  // An original whose copy was refused is untouched: still resident, and
  // not first in line (nothing was evicted: there is room).
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(cache->Get(Key(i)).has_value()) << i;
  EXPECT_EQ(cache->GetStats().evictions, 0u);
}

TEST_F(MemoryCacheTest, LongChecksAreComparedInTheEntry) {
  auto cache = Make();
  CacheKey a = Key(1);
  a.check = "C" + std::string(300, 'q');  // longer than kInlineCheckMax
  auto e = Entry(a, 10, Later(60 * kSecond));
  cache->Put(a, e);
  ASSERT_TRUE(cache->Get(a).has_value());
  EXPECT_EQ(cache->GetStats().bytes, e->charge() + MemoryCache::kEntryOverhead);  // not twice
  CacheKey forged = a;
  forged.check.back() = 'r';
  EXPECT_FALSE(cache->Get(forged).has_value());
  EXPECT_EQ(cache->GetStats().collisions, 1u);
  // A probe (the memo's) that collides is not a counted lookup: no miss,
  // so no collision either (collisions are a subset of misses).
  EXPECT_EQ(cache->Probe(forged), nullptr);
  EXPECT_EQ(cache->GetStats().collisions, 1u);
  EXPECT_EQ(cache->GetStats().misses, 1u);
}

// A probe with a visit reads the entry in place: called once on a fresh
// hit with the stored entry itself (no copy of it is shared), never on a
// miss, a collision or an expired entry, and counted like Probe.
TEST_F(MemoryCacheTest, ProbeWithVisitReadsTheEntryInPlace) {
  auto cache = Make();
  CacheKey a = Key(1);
  auto e = Entry(a, 10, Later(10 * kSecond), "tag");
  cache->Put(a, e);
  struct Seen {
    int calls = 0;
    const CacheEntry* entry = nullptr;
    std::string payload;
  } seen;
  auto visit = [](const std::shared_ptr<const CacheEntry>& entry, void* arg) {
    auto* s = static_cast<Seen*>(arg);
    ++s->calls;
    s->entry = entry.get();
    s->payload = entry->payload;
  };
  EXPECT_TRUE(cache->Probe(a, visit, &seen));
  EXPECT_EQ(seen.calls, 1);
  EXPECT_EQ(seen.entry, e.get());
  EXPECT_EQ(seen.payload, e->payload);
  EXPECT_EQ(e.use_count(), 2);  // the test's and the cache's: the probe kept none
  EXPECT_EQ(cache->GetStats().hits, 1u);

  CacheKey forged = a;
  forged.check.back() ^= 1;
  EXPECT_FALSE(cache->Probe(forged, visit, &seen));
  EXPECT_FALSE(cache->Probe(Key(2), visit, &seen));
  clock_.Advance(seconds(11));
  EXPECT_FALSE(cache->Probe(a, visit, &seen));
  EXPECT_EQ(seen.calls, 1);
  EXPECT_EQ(cache->GetStats().misses, 0u);  // probes count no misses
}

TEST_F(MemoryCacheTest, EraseEraseModelAndClear) {
  auto cache = Make();
  const int64_t exp = Later(60 * kSecond);
  for (int i = 0; i < 100; ++i) {
    CacheKey k = Key(i, i % 2 == 0 ? "even" : "odd");
    cache->Put(k, Entry(k, 50, exp));
  }
  EXPECT_TRUE(cache->Erase(Key(1, "odd")));
  EXPECT_FALSE(cache->Erase(Key(1, "odd")));
  EXPECT_EQ(cache->EraseModel("even"), 50u);
  EXPECT_EQ(cache->EraseModel("even"), 0u);
  EXPECT_FALSE(cache->Get(Key(2, "even")).has_value());
  EXPECT_TRUE(cache->Get(Key(3, "odd")).has_value());
  EXPECT_EQ(cache->GetStats().entries, 49u);
  cache->Clear();
  MemoryCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.entries, 0u);
  EXPECT_EQ(st.bytes, 0u);
  EXPECT_FALSE(cache->Get(Key(3, "odd")).has_value());
  cache->Put(Key(3, "odd"), Entry(Key(3, "odd"), 50, exp));  // usable after Clear
  EXPECT_TRUE(cache->Get(Key(3, "odd")).has_value());
}

TEST_F(MemoryCacheTest, ConcurrentStressKeepsInvariants) {
  MemoryCache::Options o;
  o.max_bytes = 512 << 10;
  o.shards = 4;
  o.min_shard_bytes = 1;
  o.max_stale_us = 5 * kSecond;
  auto cache = Make(o);
  const int64_t exp = Later(3600 * kSecond);
  constexpr int kThreads = 4, kOps = 100000, kKeys = 2000;
  std::atomic<uint64_t> gets{0}, wrong{0}, over_budget{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < kOps; ++i) {
        uint64_t id = rng() % kKeys;
        CacheKey k = Key(id);
        // Same digest, two different requests: a collision must stay a miss.
        if (id % 7 == 0) k.check += (rng() & 1) ? "-a" : "-b";
        uint64_t op = rng() % 16;
        if (op < 10) {
          gets.fetch_add(1);
          auto hit = cache->Get(k, op == 0);
          if (hit && (hit->entry->check != k.check ||
                      hit->entry->payload.compare(0, k.check.size(), k.check) != 0)) {
            wrong.fetch_add(1);
          }
        } else if (op < 14) {
          cache->Put(k, Entry(k, rng() % 3000, exp, k.check));
        } else if (op < 15) {
          cache->Erase(k);
        } else if (i % 1000 == 0) {
          cache->EraseModel("m");
        } else {
          if (cache->GetStats().bytes > o.max_bytes) over_budget.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(over_budget.load(), 0u);
  MemoryCache::Stats st = cache->GetStats();
  EXPECT_LE(st.bytes, o.max_bytes);
  EXPECT_EQ(st.hits + st.stale_hits + st.misses, gets.load());
  EXPECT_GT(st.hits, 0u);
  EXPECT_GT(st.evictions, 0u);
  // Resident entries are exactly those a Get can find.
  uint64_t found = 0;
  for (uint64_t id = 0; id < kKeys; ++id) {
    const CacheKey k = Key(id);
    for (const char* suffix : {"-a", "-b"}) {
      CacheKey variant = k;
      if (id % 7 == 0) variant.check += suffix;
      found += cache->Get(variant).has_value() ? 1 : 0;
      if (id % 7 != 0) break;
    }
  }
  EXPECT_EQ(found, cache->GetStats().entries);
}

// --- The policies directly ---------------------------------------------------

TEST(S3FifoPolicyTest, GhostSendsReturningIdToMain) {
  S3FifoPolicy::Options o;
  o.capacity = 10;
  S3FifoPolicy p(o);
  std::vector<std::unique_ptr<EvictionNode>> nodes;
  auto make = [&](uint64_t id) {
    nodes.push_back(std::make_unique<EvictionNode>());
    nodes.back()->id = id;
    nodes.back()->charge = 1;
    return nodes.back().get();
  };
  for (uint64_t i = 0; i < 10; ++i) p.Insert(make(i));
  EvictionNode* first = p.EvictOne();  // one-off: leaves S, id into G
  EXPECT_EQ(first->id, 0u);
  EXPECT_EQ(p.ghost_size(), 1u);
  EvictionNode* again = make(0);
  p.Insert(again);                // returning: straight to M
  EXPECT_EQ(p.ghost_size(), 1u);  // record stays until it ages out
  // Evicting the 9 others from S (none was hit) never picks the M node.
  for (int i = 0; i < 9; ++i) EXPECT_NE(p.EvictOne(), again);
  EXPECT_EQ(p.EvictOne(), again);
  EXPECT_EQ(p.EvictOne(), nullptr);
  EXPECT_EQ(p.charge(), 0u);
}

TEST(LruPolicyTest, EvictsLeastRecentlyUsed) {
  LruPolicy p;
  EvictionNode a, b, c;
  for (EvictionNode* n : {&a, &b, &c}) {
    n->charge = 1;
    p.Insert(n);
  }
  p.OnHit(&a);
  EXPECT_EQ(p.EvictOne(), &b);
  EXPECT_EQ(p.EvictOne(), &c);
  EXPECT_EQ(p.EvictOne(), &a);
  EXPECT_EQ(p.size(), 0u);
}

}  // namespace
}  // namespace inferd
