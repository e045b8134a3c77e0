// Unit tests of a MemoryCache shard's index and lock: RecordTable (open
// addressing with backward-shift deletion) and ShardLock (reader slots,
// touched-record buffers). Deterministic: fixed seeds and iteration counts,
// no sleeps, no timing.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cache/cache_entry.h"
#include "cache/cache_test_util.h"
#include "cache/eviction.h"
#include "cache/record_table.h"
#include "cache/shard_lock.h"
#include "common/mutex.h"

namespace inferd {
namespace {

using cache_test::Mix;

// --- RecordTable ---------------------------------------------------------------

struct TestRecord {
  Digest128 digest;
};

// The inverse of RecordTable's odd multiplier modulo 2^64 (Newton's method),
// to craft low halves with a chosen home slot.
constexpr uint64_t kTableMultiplier = 0x9E3779B97F4A7C15ull;
uint64_t InverseMod64(uint64_t a) {
  uint64_t x = a;  // correct to 3 bits for odd a
  for (int i = 0; i < 5; ++i) x *= 2 - a * x;
  return x;
}

// Checks the table against `model` (digest -> record) through Find and ForEach.
void ExpectSameContents(const RecordTable<TestRecord>& t,
                        const std::map<std::pair<uint64_t, uint64_t>, TestRecord*>& model) {
  ASSERT_EQ(t.size(), model.size());
  for (const auto& [key, record] : model) {
    ASSERT_EQ(t.Find(Digest128{key.second, key.first}), record);
  }
  std::set<TestRecord*> seen;
  t.ForEach([&](TestRecord* r) {
    EXPECT_TRUE(seen.insert(r).second) << "visited twice";
    EXPECT_EQ(model.count({r->digest.lo, r->digest.hi}), 1u);
  });
  EXPECT_EQ(seen.size(), model.size());
}

TEST(RecordTableTest, MatchesMapUnderRandomOps) {
  constexpr uint64_t kKeys = 40000;
  // Key k: a quarter of them share 16 low halves (hi tells them apart).
  std::vector<TestRecord> records(kKeys);
  for (uint64_t k = 0; k < kKeys; ++k) {
    records[k].digest.lo = k % 4 == 0 ? k % 64 : Mix(k);
    records[k].digest.hi = Mix(k ^ 0x5555);
  }
  RecordTable<TestRecord> t(/*seed=*/99);
  std::map<std::pair<uint64_t, uint64_t>, TestRecord*> model;
  auto key = [](const TestRecord& r) { return std::make_pair(r.digest.lo, r.digest.hi); };
  std::mt19937_64 rng(5);
  size_t max_size = 0;
  for (int op = 0; op < 200000; ++op) {
    // Grow for the first half, then erase as often as insert.
    const uint64_t k = rng() % (op < 100000 ? kKeys : kKeys / 2);
    TestRecord& r = records[k];
    const bool present = model.count(key(r)) > 0;
    const unsigned kind = rng() % (op < 100000 ? 4 : 2);
    if (kind == 0) {
      ASSERT_EQ(t.Erase(r.digest), present ? &r : nullptr) << "op " << op;
      model.erase(key(r));
    } else if (present) {
      ASSERT_EQ(t.Find(r.digest), &r) << "op " << op;
    } else {
      ASSERT_EQ(t.Find(r.digest), nullptr) << "op " << op;
      t.Insert(&r);
      model[key(r)] = &r;
    }
    ASSERT_EQ(t.size(), model.size());
    ASSERT_LE(2 * t.size(), t.slot_count());
    max_size = std::max(max_size, t.size());
    if (op % 20000 == 0) ExpectSameContents(t, model);
  }
  EXPECT_GE(max_size, 20000u);  // 16 slots grew past 2^15: 12 doublings
  EXPECT_GE(t.slot_count(), size_t{1} << 15);
  ExpectSameContents(t, model);
  t.Clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.Find(records[1].digest), nullptr);
  size_t visits = 0;
  t.ForEach([&](TestRecord*) { ++visits; });
  EXPECT_EQ(visits, 0u);
  t.Insert(&records[1]);  // usable after Clear
  EXPECT_EQ(t.Find(records[1].digest), &records[1]);
}

// Inserts `lo(i)` for i < 1000, erases every other one, checks the rest.
template <typename Lo>
void CheckClusteredKeys(uint64_t seed, Lo lo) {
  std::vector<TestRecord> records(1000);
  RecordTable<TestRecord> t(seed);
  for (uint64_t i = 0; i < records.size(); ++i) {
    records[i].digest = {/*hi=*/i, /*lo=*/lo(i)};
    t.Insert(&records[i]);
  }
  for (uint64_t i = 0; i < records.size(); ++i) ASSERT_EQ(t.Find(records[i].digest), &records[i]);
  for (uint64_t i = 0; i < records.size(); i += 2) {
    ASSERT_EQ(t.Erase(records[i].digest), &records[i]) << "i " << i;
    ASSERT_EQ(t.Erase(records[i].digest), nullptr) << "i " << i;
  }
  EXPECT_EQ(t.size(), 500u);
  for (uint64_t i = 0; i < records.size(); ++i) {
    ASSERT_EQ(t.Find(records[i].digest), i % 2 == 1 ? &records[i] : nullptr) << "i " << i;
  }
  for (uint64_t i = 1; i < records.size(); i += 2)
    ASSERT_EQ(t.Erase(records[i].digest), &records[i]);
  EXPECT_EQ(t.size(), 0u);
}

TEST(RecordTableTest, ClusteredKeysSurviveBackwardShiftDeletion) {
  const uint64_t inverse = InverseMod64(kTableMultiplier);
  ASSERT_EQ(inverse * kTableMultiplier, 1u);
  for (uint64_t seed : {0ull, 0x5EEDull, ~0ull}) {
    SCOPED_TRACE(seed);
    // Low halves differing in the top bits only: 16 values, runs of ~62.
    CheckClusteredKeys(seed, [](uint64_t i) { return i * (1ull << 60); });
    // One low half for all: one run of 1000.
    CheckClusteredKeys(seed, [](uint64_t) { return 77ull; });
    // Homes crafted at the last slot (at every table size) and at slot 0,
    // alternating: one run that wraps around the end of the table.
    CheckClusteredKeys(seed, [&](uint64_t i) {
      const uint64_t product = i % 2 == 0 ? ~0ull - i : i;
      return (product * inverse) ^ seed;
    });
  }
}

// Digests are XXH3-128 of client bytes, not collision-resistant: crafted
// digests sharing one half must spread over the table like any others.
TEST(RecordTableTest, DigestsSharingAHalfDoNotCluster) {
  for (int shared_half = 0; shared_half < 2; ++shared_half) {
    SCOPED_TRACE(shared_half == 0 ? "equal lo" : "equal hi");
    RecordTable<TestRecord> table(0x5EED);
    std::vector<TestRecord> records(4096);
    for (uint64_t i = 0; i < records.size(); ++i) {
      records[i].digest = shared_half == 0 ? Digest128{Mix(i), 77} : Digest128{77, Mix(i)};
      table.Insert(&records[i]);
    }
    // At load <= 1/2, random placement gives runs of a few dozen at most;
    // hashing one half only would give one run of 4096.
    EXPECT_LT(table.LongestRun(), 64u);
    for (const TestRecord& r : records) ASSERT_EQ(table.Find(r.digest), &r);
  }
}

// --- ShardLock -----------------------------------------------------------------

TEST(ShardLockTest, ReadersNeverSeeAHalfWrite) {
  ShardLock mu;
  // Plain ints that writers always change together (a = data[..] = b):
  // only the lock keeps a reader from seeing them differ.
  int a = 0, b = 0, data[32] = {};
  int writes = 0;
  constexpr int kThreads = 4, kWrites = 50000, kReads = 200000;
  std::atomic<int> ready{0}, torn{0}, reads{0};
  auto start = [&] {  // a latch, so that the threads overlap
    ready.fetch_add(1);
    while (ready.load() < kThreads) std::this_thread::yield();
  };
  auto writer = [&]() NO_THREAD_SAFETY_ANALYSIS {
    start();
    for (int i = 0; i < kWrites; ++i) {
      ShardWriterLock l(&mu);
      const int v = ++writes;
      a = v;
      for (int& d : data) d = v;
      b = v;
    }
  };
  auto reader = [&]() NO_THREAD_SAFETY_ANALYSIS {
    ShardLock::Slot* slot = &mu.ReaderSlot();
    start();
    for (int i = 0; i < kReads; ++i) {
      ShardReaderLock l(&mu, slot);
      bool same = a == b;
      for (int d : data) same &= d == a;
      if (!same) torn.fetch_add(1, std::memory_order_relaxed);
      reads.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads / 2; ++t) {
    threads.emplace_back(writer);
    threads.emplace_back(reader);
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(reads.load(), 2 * kReads);
  EXPECT_EQ(writes, 2 * kWrites);  // writers excluded each other too
  EXPECT_EQ(a, 2 * kWrites);
  EXPECT_EQ(b, 2 * kWrites);
  for (unsigned i = 0; i < ShardLock::kSlots; ++i) EXPECT_EQ(mu.slots()[i].readers.load(), 0u);
}

std::vector<EvictionNode*> Drain(ShardLock& mu) NO_THREAD_SAFETY_ANALYSIS {
  struct Recorder {
    void Touch(EvictionNode* n) { drained.push_back(n); }
    std::vector<EvictionNode*> drained;
  } recorder;
  ShardWriterLock l(&mu);
  mu.DrainTouchedInto(recorder);
  return recorder.drained;
}

TEST(ShardLockTest, TouchedRecordsDrainInOrderAndAreBounded) {
  ShardLock mu;
  ShardLock::Slot& slot = mu.ReaderSlot();
  std::vector<EvictionNode> nodes(100);
  {
    ShardReaderLock l(&mu, &slot);
    for (EvictionNode& n : nodes) RecordTouch(slot, &n);
  }
  EXPECT_EQ(slot.touched_count.load(), ShardLock::kTouchCapacity);
  std::vector<EvictionNode*> drained = Drain(mu);
  ASSERT_EQ(drained.size(), ShardLock::kTouchCapacity);  // lossy beyond
  for (unsigned i = 0; i < drained.size(); ++i) EXPECT_EQ(drained[i], &nodes[i]);
  EXPECT_EQ(slot.touched_count.load(), 0u);
  EXPECT_TRUE(Drain(mu).empty());
  {
    ShardReaderLock l(&mu, &slot);  // room again after draining
    RecordTouch(slot, &nodes[99]);
  }
  EXPECT_EQ(Drain(mu), std::vector<EvictionNode*>{&nodes[99]});
}

TEST(ShardLockTest, DrainKeepsEachReadersOrder) {
  ShardLock mu;
  std::vector<EvictionNode> nodes(20);
  for (int t = 0; t < 2; ++t) {  // one after the other: whatever their slots
    std::thread([&, t]() NO_THREAD_SAFETY_ANALYSIS {
      ShardLock::Slot& slot = mu.ReaderSlot();
      ShardReaderLock l(&mu, &slot);
      for (int i = 0; i < 10; ++i) RecordTouch(slot, &nodes[10 * t + i]);
    }).join();
  }
  std::vector<EvictionNode*> drained = Drain(mu);
  ASSERT_EQ(drained.size(), 20u);
  for (int t = 0; t < 2; ++t) {
    std::vector<EvictionNode*> mine;
    for (EvictionNode* n : drained) {
      if (n >= &nodes[10 * t] && n < &nodes[10 * t] + 10) mine.push_back(n);
    }
    ASSERT_EQ(mine.size(), 10u);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(mine[i], &nodes[10 * t + i]);
  }
}

}  // namespace
}  // namespace inferd
