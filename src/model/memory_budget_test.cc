// PlanLoad, the memory budget's arithmetic: when a load starts, waits,
// evicts (least recently used idle versions, never pinned or busy ones) or
// is refused; and, over seeded random situations, that a plan followed
// through never takes the budget past its bytes.

#include "model/memory_budget.h"

#include <gtest/gtest.h>

#include <random>

namespace inferd {
namespace {

using Action = BudgetPlan::Action;

BudgetResident R(uint64_t id, int64_t bytes, int64_t last_use, bool idle = true,
                 bool pinned = false) {
  return BudgetResident{id, bytes, last_use, idle, pinned};
}

TEST(MemoryBudgetTest, NoBudgetOrRoomStartsAtOnce) {
  EXPECT_EQ(PlanLoad(0, 1000, 0, 0, 1'000'000, {}, true).action, Action::kStart);
  EXPECT_EQ(PlanLoad(300, 200, 0, 0, 100, {R(1, 200, 5)}, true).action, Action::kStart);
}

TEST(MemoryBudgetTest, MemoryBeingFreedIsWaitedFor) {
  // 250 used, 100 of it by a version being destroyed: 100 more fit once it is.
  BudgetPlan p = PlanLoad(300, 250, 100, 0, 100, {R(1, 150, 5)}, true);
  EXPECT_EQ(p.action, Action::kWait);
  EXPECT_TRUE(p.evict.empty());
}

TEST(MemoryBudgetTest, EvictsTheLeastRecentlyUsedIdleVersionsFirst) {
  std::vector<BudgetResident> rs = {R(1, 100, 30), R(2, 100, 10), R(3, 100, 20),
                                    R(4, 100, 5, /*idle=*/false),
                                    R(5, 100, 1, true, /*pinned=*/true)};
  BudgetPlan p = PlanLoad(500, 500, 0, 0, 200, rs, true);
  EXPECT_EQ(p.action, Action::kEvict);
  EXPECT_EQ(p.evict, (std::vector<uint64_t>{2, 3}));  // oldest idle, unpinned
}

TEST(MemoryBudgetTest, BusyVersionsAreWaitedForAndPinnedOnesNever) {
  std::vector<BudgetResident> rs = {R(1, 100, 1, /*idle=*/false), R(2, 100, 2, true, true)};
  EXPECT_EQ(PlanLoad(200, 200, 0, 0, 100, rs, true).action, Action::kWaitIdle);
  EXPECT_EQ(PlanLoad(200, 200, 0, 0, 150, rs, true).action, Action::kRefuse);
  EXPECT_EQ(PlanLoad(200, 0, 0, 0, 300, {}, true).action,
            Action::kRefuse);  // larger than the budget
}

TEST(MemoryBudgetTest, LoadsInProgressAreWaitedFor) {
  // 100 resident (pinned) + 100 reserved by another load of an unpinned
  // model: a third fits once that one is loaded and idle.
  std::vector<BudgetResident> rs = {R(1, 100, 1, true, /*pinned=*/true)};
  EXPECT_EQ(PlanLoad(250, 200, 0, 100, 100, rs, true).action, Action::kWaitIdle);
  EXPECT_EQ(PlanLoad(250, 200, 0, 0, 100, rs, true).action, Action::kRefuse);
}

TEST(MemoryBudgetTest, WithoutEvictionsOnlyWhatFitsNowStarts) {
  std::vector<BudgetResident> rs = {R(1, 100, 1)};
  EXPECT_EQ(PlanLoad(150, 100, 0, 0, 100, rs, false).action, Action::kRefuse);
  EXPECT_EQ(PlanLoad(250, 100, 0, 0, 100, rs, false).action, Action::kStart);
  // Memory being freed is waited for even without evictions.
  EXPECT_EQ(PlanLoad(150, 150, 100, 0, 100, rs, false).action, Action::kWait);
}

TEST(MemoryBudgetTest, FollowingAPlanNeverExceedsTheBudget) {
  std::mt19937_64 rng(20261130);
  for (int trial = 0; trial < 10000; ++trial) {
    const int64_t budget = 100 + static_cast<int64_t>(rng() % 1000);
    std::vector<BudgetResident> rs;
    int64_t used = 0;
    const int n = static_cast<int>(rng() % 6);
    for (int i = 0; i < n; ++i) {
      const int64_t bytes = 1 + static_cast<int64_t>(rng() % 300);
      if (used + bytes > budget) break;
      rs.push_back(R(static_cast<uint64_t>(i), bytes, static_cast<int64_t>(rng() % 100),
                     rng() % 3 != 0, rng() % 5 == 0));
      used += bytes;
    }
    const int64_t freeing =
        used > 0 ? static_cast<int64_t>(rng() % static_cast<uint64_t>(used + 1)) : 0;
    const int64_t need = 1 + static_cast<int64_t>(rng() % 600);
    BudgetPlan p = PlanLoad(budget, used, freeing, 0, need, rs, rng() % 2 == 0);
    int64_t after = used - freeing;  // what stays once freeing versions are gone
    for (uint64_t id : p.evict) {
      for (const auto& r : rs) {
        if (r.id == id) {
          EXPECT_TRUE(r.idle && !r.pinned);
          after -= r.bytes;
        }
      }
    }
    switch (p.action) {
      case Action::kStart:
        EXPECT_LE(used + need, budget);
        break;
      case Action::kWait:
      case Action::kEvict:
        EXPECT_LE(after + need, budget) << trial;
        break;
      case Action::kWaitIdle:
      case Action::kRefuse:
        EXPECT_TRUE(p.evict.empty());
        break;
    }
  }
}

}  // namespace
}  // namespace inferd
