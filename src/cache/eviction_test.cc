// Unit tests of what MemoryCache's eviction policy builds on: FrequencySketch
// and GhostList. (The policy: tinylfu_policy_test.cc; the shard's table and
// lock: shard_test.cc.) Deterministic: fixed seeds, no sleeps, no timing.

#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cache/cache_test_util.h"
#include "cache/eviction.h"
#include "cache/frequency_sketch.h"
#include "cache/ghost_list.h"
#include "cache/tinylfu_policy.h"

namespace inferd {
namespace {

using cache_test::Mix;

// --- FrequencySketch -----------------------------------------------------------

TEST(FrequencySketchTest, CountsAndSaturates) {
  FrequencySketch s(64);
  EXPECT_EQ(s.Frequency(42), 0u);
  for (unsigned i = 1; i <= 20; ++i) {
    s.Increment(42);
    EXPECT_EQ(s.Frequency(42), std::min(i, 15u)) << "after " << i << " increments";
  }
  EXPECT_EQ(s.Frequency(43), 0u);
  s.Increment(7, 3);
  EXPECT_EQ(s.Frequency(7), 3u);
  s.Increment(7, 5);
  EXPECT_EQ(s.Frequency(7), 8u);
  s.Increment(7, 100);
  EXPECT_EQ(s.Frequency(7), 15u);
  EXPECT_EQ(s.resets(), 0u);
}

TEST(FrequencySketchTest, DistinctIdsMostlyIndependent) {
  constexpr uint64_t kIds = 1024;
  FrequencySketch s(kIds);
  for (uint64_t id = 0; id < kIds; ++id) s.Increment(id);
  size_t at_most_two = 0, exact = 0;
  for (uint64_t id = 0; id < kIds; ++id) {
    const unsigned f = s.Frequency(id);
    EXPECT_GE(f, 1u) << "count-min never underestimates, id " << id;
    at_most_two += f <= 2;
    exact += f == 1;
  }
  EXPECT_GE(at_most_two, kIds * 95 / 100);
  EXPECT_GE(exact, kIds * 90 / 100);
  EXPECT_EQ(s.resets(), 0u);
}

TEST(FrequencySketchTest, AgingHalvesEveryCounterAfterSampleSize) {
  FrequencySketch s(64);
  const size_t sample = s.sample_size();
  ASSERT_GE(sample, 640u);  // at least 10 x the expected ids
  ASSERT_EQ(sample % 2, 0u);
  s.Increment(1, 15);  // 15 additions
  ASSERT_EQ(s.Frequency(1), 15u);
  s.Increment(2, static_cast<unsigned>(sample - 16));  // one short of the sample
  ASSERT_EQ(s.Frequency(2), 15u);
  EXPECT_EQ(s.resets(), 0u);
  s.Increment(3);  // the sample is reached: every counter is halved
  EXPECT_EQ(s.resets(), 1u);
  EXPECT_EQ(s.Frequency(1), 7u);
  EXPECT_EQ(s.Frequency(2), 7u);
  EXPECT_EQ(s.Frequency(3), 0u);  // 1 halved
  // The reset halves the additions too: sample / 2 more reach it again.
  s.Increment(4, static_cast<unsigned>(sample / 2 - 1));
  EXPECT_EQ(s.resets(), 1u);
  s.Increment(5);
  EXPECT_EQ(s.resets(), 2u);
  EXPECT_EQ(s.Frequency(1), 3u);
  EXPECT_EQ(s.Frequency(4), 7u);
}

TEST(FrequencySketchTest, AgingHalvesEveryEstimate) {
  FrequencySketch s(256);
  for (uint64_t id = 0; id < 200; ++id) s.Increment(id, 1 + id % 15);
  ASSERT_EQ(s.resets(), 0u);
  // Fresh ids until one of them triggers the reset; compare with the copy
  // taken just before it.
  std::optional<FrequencySketch> before;
  for (uint64_t id = 1000; s.resets() == 0; ++id) {
    before.emplace(s);
    s.Increment(id);
  }
  size_t exact = 0;
  for (uint64_t id = 0; id < 200; ++id) {
    const unsigned b = before->Frequency(id), a = s.Frequency(id);
    // Halved (rounded up at most: the triggering increment may share a
    // counter with this id).
    ASSERT_GE(a, b / 2) << "id " << id;
    ASSERT_LE(a, (b + 1) / 2) << "id " << id;
    exact += a == b / 2;
  }
  EXPECT_GE(exact, 190u);
}

TEST(FrequencySketchTest, GrowthKeepsEveryEstimateAndNeverShrinks) {
  for (bool stepwise : {false, true}) {
    SCOPED_TRACE(stepwise ? "stepwise growth" : "one growth");
    FrequencySketch s(64);
    const size_t sample = s.sample_size();
    std::mt19937_64 rng(7);
    for (uint64_t id = 0; id < 500; ++id) s.Increment(id * 7919, 1 + rng() % 6);
    std::vector<unsigned> before;
    for (uint64_t id = 0; id < 500; ++id) before.push_back(s.Frequency(id * 7919));
    const size_t resets = s.resets();
    if (stepwise) {
      for (size_t n = 128; n <= 4096; n *= 2) s.EnsureCapacity(n);
    } else {
      s.EnsureCapacity(4096);
    }
    EXPECT_EQ(s.sample_size(), 64 * sample);  // proportional to the expected ids
    EXPECT_EQ(s.resets(), resets);
    for (uint64_t id = 0; id < 500; ++id) {
      ASSERT_EQ(s.Frequency(id * 7919), before[id]) << "id " << id;
    }
    s.EnsureCapacity(64);  // never shrinks: same estimates, same sample
    EXPECT_EQ(s.sample_size(), 64 * sample);
    for (uint64_t id = 0; id < 500; ++id) ASSERT_EQ(s.Frequency(id * 7919), before[id]);
  }
}

// --- GhostList -----------------------------------------------------------------

// The reference: live records oldest first, and each id's charge.
class GhostModel {
 public:
  explicit GhostModel(size_t capacity) : capacity_(capacity) {}
  void Add(uint64_t id, size_t charge) {
    if (charge > capacity_) return;
    Take(id);
    order_.push_back(id);
    charges_[id] = charge;
    bytes_ += charge;
    Trim();
  }
  bool Take(uint64_t id) {
    auto it = charges_.find(id);
    if (it == charges_.end()) return false;
    bytes_ -= it->second;
    charges_.erase(it);
    order_.remove(id);
    return true;
  }
  void set_capacity(size_t capacity) {
    capacity_ = capacity;
    Trim();
  }
  size_t bytes() const { return bytes_; }
  size_t size() const { return charges_.size(); }

 private:
  void Trim() {
    while (bytes_ > capacity_) Take(order_.front());
  }
  size_t capacity_;
  std::list<uint64_t> order_;
  std::unordered_map<uint64_t, size_t> charges_;
  size_t bytes_ = 0;
};

TEST(GhostListTest, MatchesReferenceModelUnderRandomOps) {
  GhostList g(200);
  GhostModel m(200);
  std::mt19937_64 rng(2024);
  for (int op = 0; op < 200000; ++op) {
    const uint64_t id = rng() % 300;  // small universe: many re-adds
    const unsigned r = rng() % 16;
    if (r < 9) {
      const size_t charge = 1 + rng() % 20;  // <= every capacity below
      g.Add(id, charge);
      m.Add(id, charge);
    } else if (r < 15) {
      ASSERT_EQ(g.Take(id), m.Take(id)) << "op " << op << " id " << id;
    } else {
      const size_t capacity = 20 + rng() % 280;
      g.set_capacity(capacity);
      m.set_capacity(capacity);
    }
    ASSERT_EQ(g.bytes(), m.bytes()) << "op " << op;
    ASSERT_EQ(g.size(), m.size()) << "op " << op;
  }
  // bytes() was the charge of exactly the ids Take finds.
  for (uint64_t id = 0; id < 300; ++id) ASSERT_EQ(g.Take(id), m.Take(id)) << "id " << id;
  EXPECT_EQ(g.bytes(), 0u);
  EXPECT_EQ(g.size(), 0u);
}

TEST(GhostListTest, ForgetsOldestFirst) {
  GhostList g(10);
  for (uint64_t id = 1; id <= 10; ++id) g.Add(id, 1);
  g.Add(1, 1);  // re-added: now the newest
  g.Add(11, 1);
  EXPECT_EQ(g.size(), 10u);
  EXPECT_FALSE(g.Take(2));
  EXPECT_TRUE(g.Take(1));
  EXPECT_TRUE(g.Take(3));
  EXPECT_TRUE(g.Take(11));
  EXPECT_FALSE(g.Take(11));
  EXPECT_EQ(g.bytes(), 7u);

  GhostList c(10);  // by charge, not count
  c.Add(1, 4);
  c.Add(2, 4);
  c.Add(3, 4);
  EXPECT_EQ(c.bytes(), 8u);
  EXPECT_FALSE(c.Take(1));
  c.Add(2, 7);  // replaces its record: 3 (4) + 2 (7) > 10 forgets 3
  EXPECT_EQ(c.bytes(), 7u);
  EXPECT_FALSE(c.Take(3));
  c.set_capacity(5);  // shrinking forgets what no longer fits
  EXPECT_EQ(c.bytes(), 0u);
  EXPECT_EQ(c.size(), 0u);
}

TEST(GhostListTest, OversizeIdIsNotAdded) {
  GhostList g(10);
  g.Add(1, 3);
  g.Add(2, 11);
  EXPECT_EQ(g.bytes(), 3u);
  EXPECT_EQ(g.size(), 1u);
  EXPECT_FALSE(g.Take(2));
  EXPECT_TRUE(g.Take(1));  // and it did not push anything out
  g.Add(3, 10);            // exactly the capacity fits
  EXPECT_EQ(g.bytes(), 10u);
}

TEST(GhostListTest, MemoryStaysBoundedOverManyCycles) {
  const size_t heap_before = mallinfo2().uordblks;
  GhostList g(100);
  for (uint64_t i = 0; i < 1'000'000; ++i) {
    g.Add(i, 1);
    g.Take(i - 7);  // a recent id (present) or, early on, an absent one
    if (i % 3 == 0) g.Take(i);
    if (i % 4096 == 0) {
      ASSERT_LE(g.size(), 100u);
      ASSERT_LE(g.bytes(), 100u);
    }
  }
  EXPECT_LE(g.size(), 100u);
  EXPECT_EQ(g.bytes(), g.size());
  // Dead records are compacted away: a few KiB, not a record per Add.
  EXPECT_LT(mallinfo2().uordblks, heap_before + (1 << 20));
}

}  // namespace
}  // namespace inferd
