#include "sched/priority_fair_queue.h"

#include <gtest/gtest.h>

#include <string>

namespace inferd {
namespace {

// A task named by its shape signature, at `level` for `tenant`.
std::unique_ptr<Task> MakeTask(const std::string& name, int level = 1, uint32_t tenant = 0,
                               uint32_t weight = 1, int64_t items = 1) {
  auto t = std::make_unique<Task>(std::vector<Tensor>{}, items, name,
                                  [](StatusOr<std::vector<Tensor>>, const TaskTimings&) {});
  t->set_queue_key(QueueKey{tenant, weight, level});
  return t;
}

void Push(PriorityFairQueue& q, std::unique_ptr<Task> t) { ASSERT_TRUE(q.Push(t).ok()); }

// Takes the first task in service order, as a batch of one.
std::unique_ptr<Task> TakeOne(PriorityFairQueue& q) {
  std::vector<const Task*> view;
  std::vector<PriorityFairQueue::Ref> refs;
  q.View(1, &view, &refs);
  TaskBatch out;
  q.Take(refs, {0}, &out);
  return out.empty() ? nullptr : std::move(out[0]);
}

std::vector<std::string> ViewNames(const PriorityFairQueue& q) {
  std::vector<const Task*> view;
  std::vector<PriorityFairQueue::Ref> refs;
  q.View(100, &view, &refs);
  std::vector<std::string> names;
  for (const Task* t : view) names.push_back(t->shape_signature());
  return names;
}

PriorityFairQueue::Options Levels(int n, double share = 0.1) {
  PriorityFairQueue::Options o;
  o.levels = n;
  o.lower_level_share = share;
  o.max_size = 100000;
  return o;
}

TEST(PriorityFairQueueTest, OneLevelOneTenantIsFifo) {
  PriorityFairQueue q(Levels(1));
  for (int i = 0; i < 5; ++i) Push(q, MakeTask(std::to_string(i)));
  EXPECT_EQ(ViewNames(q), (std::vector<std::string>{"0", "1", "2", "3", "4"}));
  EXPECT_EQ(TakeOne(q)->shape_signature(), "0");
  EXPECT_EQ(q.size(), 4u);
}

TEST(PriorityFairQueueTest, HigherLevelsFirstAndLevelsClamped) {
  PriorityFairQueue q(Levels(2));
  Push(q, MakeTask("low", 2));
  Push(q, MakeTask("high", 1));
  Push(q, MakeTask("clamped", 9));  // beyond the last level: the last level
  EXPECT_EQ(ViewNames(q), (std::vector<std::string>{"high", "low", "clamped"}));
  EXPECT_EQ(q.level_size(2), 2u);
}

// The starvation bound: with a guaranteed share of 0.1 over 3 levels, a
// level-3 task waits at most ceil(1/0.1) * (3 - 1) = 20 batches while
// levels 1 and 2 never run dry; with share 0 it waits forever.
int BatchesUntilLowestServed(double share, int max_batches) {
  PriorityFairQueue q(Levels(3, share));
  Push(q, MakeTask("bottom", 3));
  Push(q, MakeTask("top", 1));
  Push(q, MakeTask("middle", 2));
  for (int batch = 1; batch <= max_batches; ++batch) {
    std::unique_ptr<Task> t = TakeOne(q);
    if (t->shape_signature() == "bottom") return batch;
    Push(q, MakeTask(t->shape_signature(), t->queue_key().level));  // refill
  }
  return -1;
}

TEST(PriorityFairQueueTest, GuaranteedShareBoundsTheWaitOfLowerLevels) {
  const int served_at = BatchesUntilLowestServed(0.1, 1000);
  EXPECT_GT(served_at, 0);
  EXPECT_LE(served_at, 20);
  EXPECT_EQ(BatchesUntilLowestServed(0.0, 1000), -1);  // strict priority starves
}

TEST(PriorityFairQueueTest, GuaranteedShareTakesAboutItsShare) {
  PriorityFairQueue q(Levels(2, 0.1));
  for (int i = 0; i < 300; ++i) {
    Push(q, MakeTask("hi", 1));
    Push(q, MakeTask("lo", 2));
  }
  int low = 0;
  for (int i = 0; i < 200; ++i) low += TakeOne(q)->shape_signature() == "lo";
  EXPECT_EQ(low, 20);  // every 10th batch
}

TEST(PriorityFairQueueTest, TenantsShareByWeight) {
  PriorityFairQueue q(Levels(1));
  for (int i = 0; i < 400; ++i) {
    Push(q, MakeTask("a", 1, /*tenant=*/1, /*weight=*/1));
    Push(q, MakeTask("b", 1, /*tenant=*/2, /*weight=*/3));
  }
  int a = 0;
  for (int i = 0; i < 400; ++i) a += TakeOne(q)->shape_signature() == "a";
  EXPECT_NEAR(a, 100, 1);
}

TEST(PriorityFairQueueTest, CostCountsItems) {
  PriorityFairQueue q(Levels(1));
  for (int i = 0; i < 100; ++i) {
    Push(q, MakeTask("big", 1, 1, 1, /*items=*/4));
    Push(q, MakeTask("small", 1, 2, 1, /*items=*/1));
  }
  int big = 0;
  for (int i = 0; i < 50; ++i) big += TakeOne(q)->shape_signature() == "big";
  EXPECT_NEAR(big, 10, 1);  // equal items: 10 x 4 against 40 x 1
}

TEST(PriorityFairQueueTest, APoliteTenantIsNotStuckBehindAFlooder) {
  PriorityFairQueue q(Levels(1));
  for (int i = 0; i < 1000; ++i) Push(q, MakeTask("flood", 1, 1));
  // One polite task per batch is served within two batches, every time:
  // it starts at the level's virtual time, not behind 1000 queued tasks.
  for (int round = 0; round < 50; ++round) {
    Push(q, MakeTask("polite", 1, 2));
    const std::string first = TakeOne(q)->shape_signature();
    const std::string second = TakeOne(q)->shape_signature();
    EXPECT_TRUE(first == "polite" || second == "polite") << round;
    EXPECT_NE(first, second) << round;
  }
}

TEST(PriorityFairQueueTest, AnIdleLevelForgetsWhoWasAhead) {
  PriorityFairQueue q(Levels(1));
  for (int i = 0; i < 10; ++i) Push(q, MakeTask("a", 1, 1));
  for (int i = 0; i < 10; ++i) TakeOne(q);
  // The queue ran dry: tenant 1's past use does not put it behind tenant 2.
  Push(q, MakeTask("a", 1, 1));
  Push(q, MakeTask("b", 1, 2));
  EXPECT_EQ(ViewNames(q), (std::vector<std::string>{"a", "b"}));
}

TEST(PriorityFairQueueTest, EvictsTheWorstRankedForABetterNewcomer) {
  PriorityFairQueue q(Levels(2));
  Push(q, MakeTask("high", 1));
  Push(q, MakeTask("low1", 2));
  Push(q, MakeTask("low2", 2));
  EXPECT_EQ(q.EvictWorseThan(QueueKey{0, 1, 2}), nullptr);  // same level and tenant: not worse
  auto victim = q.EvictWorseThan(QueueKey{0, 1, 1});
  ASSERT_NE(victim, nullptr);
  EXPECT_EQ(victim->shape_signature(), "low2");
  EXPECT_EQ(q.size(), 2u);

  PriorityFairQueue top(Levels(2));
  Push(top, MakeTask("high", 1));
  EXPECT_EQ(top.EvictWorseThan(QueueKey{0, 1, 2}), nullptr);  // never pushes out higher work
}

TEST(PriorityFairQueueTest, APoliteTenantEvictsTheFloodersNewestTask) {
  PriorityFairQueue q(Levels(1));
  for (int i = 0; i < 5; ++i) Push(q, MakeTask("flood" + std::to_string(i), 1, 1));
  auto victim = q.EvictWorseThan(QueueKey{2, 1, 1});
  ASSERT_NE(victim, nullptr);
  EXPECT_EQ(victim->shape_signature(), "flood4");
  // The flooder's finish tag rolled back: its next task takes the freed
  // place, and the flooder cannot evict its own tasks.
  EXPECT_EQ(q.EvictWorseThan(QueueKey{1, 1, 1}), nullptr);
}

TEST(PriorityFairQueueTest, DropsExpiredAndCancelledWork) {
  PriorityFairQueue q(Levels(1));
  const Time t0 = Time{} + std::chrono::seconds(100);
  auto expiring = MakeTask("expiring");
  expiring->set_deadline(t0 + std::chrono::seconds(1));
  auto cancelled = MakeTask("cancelled");
  auto cancel = std::make_shared<Cancellation>();
  cancelled->set_cancellation(cancel);
  Push(q, std::move(expiring));
  Push(q, std::move(cancelled));
  Push(q, MakeTask("kept"));
  TaskBatch dropped;
  EXPECT_EQ(q.TakeDropped(t0, &dropped), t0 + std::chrono::seconds(1));  // wakes at the deadline
  EXPECT_TRUE(dropped.empty());
  cancel->Cancel(CancelledError("client left"));
  q.TakeDropped(t0 + std::chrono::seconds(2), &dropped);
  ASSERT_EQ(dropped.size(), 2u);
  EXPECT_EQ(ViewNames(q), (std::vector<std::string>{"kept"}));
}

TEST(PriorityFairQueueTest, ADelayedTaskMovesBehindItsLevel) {
  PriorityFairQueue q(Levels(2));
  const Time t0 = Time{} + std::chrono::seconds(100);
  auto slow = MakeTask("slow", 1);
  slow->set_queue_timeout(t0 + std::chrono::milliseconds(5));
  Push(q, std::move(slow));
  Push(q, MakeTask("next", 1));
  Push(q, MakeTask("low", 2));
  TaskBatch dropped;
  EXPECT_EQ(q.TakeDropped(t0, &dropped), t0 + std::chrono::milliseconds(5));
  EXPECT_EQ(ViewNames(q), (std::vector<std::string>{"slow", "next", "low"}));
  EXPECT_EQ(q.TakeDropped(t0 + std::chrono::milliseconds(5), &dropped), Time::max());
  EXPECT_TRUE(dropped.empty());
  EXPECT_EQ(ViewNames(q), (std::vector<std::string>{"next", "slow", "low"}));
  // A delayed task is the first pushed out for a newcomer of its level.
  Push(q, MakeTask("more", 1));
  auto victim = q.EvictWorseThan(QueueKey{0, 1, 1});
  ASSERT_NE(victim, nullptr);
  EXPECT_EQ(victim->shape_signature(), "low");  // the lower level goes first
  victim = q.EvictWorseThan(QueueKey{0, 1, 1});
  ASSERT_NE(victim, nullptr);
  EXPECT_EQ(victim->shape_signature(), "slow");
}

TEST(PriorityFairQueueTest, BoundsTheQueueAndEachLevel) {
  PriorityFairQueue::Options o = Levels(2);
  o.max_size = 3;
  o.max_level_size = {0, 1};
  PriorityFairQueue q(o);
  Push(q, MakeTask("low", 2));
  auto second_low = MakeTask("low", 2);
  Status st = q.Push(second_low);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("priority 2"), std::string::npos) << st.message();
  ASSERT_NE(second_low, nullptr);  // the caller keeps a refused task
  Push(q, MakeTask("high", 1));
  Push(q, MakeTask("high", 1));
  auto one_more = MakeTask("high", 1);
  EXPECT_EQ(q.Push(one_more).code(), StatusCode::kResourceExhausted);
  std::vector<int64_t> by_tenant;
  q.CountByTenant(&by_tenant);
  EXPECT_EQ(by_tenant, (std::vector<int64_t>{3}));
}

}  // namespace
}  // namespace inferd
