#include "sched/batch_policy.h"

#include <gtest/gtest.h>

namespace inferd {
namespace {

using std::chrono::microseconds;

class BatchPolicyTest : public ::testing::Test {
 protected:
  // Queues a task of `items` with `signature`, enqueued `age_us` before now.
  void Add(int64_t items, std::string signature = "s", int64_t age_us = 0) {
    auto t = std::make_unique<Task>(std::vector<Tensor>{}, items, std::move(signature),
                                    [](StatusOr<std::vector<Tensor>>, const TaskTimings&) {});
    t->timings().enqueued = now_ - microseconds(age_us);
    queue_.push_back(std::move(t));
  }
  BatchChoice Choose(int idle = 1, bool flush = false) {
    return ChooseBatch(queue_, now_, policy_, idle, flush);
  }

  Time now_ = Time{} + std::chrono::hours(1);
  BatchPolicy policy_{true, 8, microseconds(1000), {}};
  std::deque<std::unique_ptr<Task>> queue_;
};

using Picked = std::vector<size_t>;

TEST_F(BatchPolicyTest, EmptyQueueWaitsForArrivals) {
  BatchChoice c = Choose();
  EXPECT_TRUE(c.picked.empty());
  EXPECT_EQ(c.wake_at, Time::max());
}

TEST_F(BatchPolicyTest, WithoutBatchingTakesTheOldestAlone) {
  policy_.batching = false;
  Add(1);
  Add(1);
  EXPECT_EQ(Choose().picked, Picked{0});
}

TEST_F(BatchPolicyTest, WaitsUntilTheOldestTaskIsDue) {
  Add(1, "s", 400);
  Add(1, "s", 100);
  BatchChoice c = Choose();
  EXPECT_TRUE(c.picked.empty());
  EXPECT_EQ(c.wake_at, now_ + microseconds(600));
  now_ += microseconds(600);
  EXPECT_EQ(Choose().picked, (Picked{0, 1}));
}

TEST_F(BatchPolicyTest, FullBatchGoesAtOnceAndLeavesTheRest) {
  for (int i = 0; i < 10; ++i) Add(1);
  EXPECT_EQ(Choose().picked, (Picked{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST_F(BatchPolicyTest, ItemsCountNotTasks) {
  Add(5);
  Add(4);  // 5 + 4 > 8
  Add(3);  // FIFO: never jumps ahead of the task that did not fit
  now_ += microseconds(1000);
  EXPECT_EQ(Choose().picked, Picked{0});
}

TEST_F(BatchPolicyTest, LargestPreferredPrefixGoesEarly) {
  policy_.preferred_batch_sizes = {2, 4};
  for (int i = 0; i < 5; ++i) Add(1);
  EXPECT_EQ(Choose().picked, (Picked{0, 1, 2, 3}));
}

TEST_F(BatchPolicyTest, OnlyTheOldestTasksShapeIsBatched) {
  Add(1, "a", 1000);
  Add(1, "b");
  Add(1, "a");
  EXPECT_EQ(Choose().picked, (Picked{0, 2}));
}

TEST_F(BatchPolicyTest, FlushIgnoresTheDelay) {
  Add(1);
  EXPECT_EQ(Choose(1, /*flush=*/true).picked, Picked{0});
}

TEST_F(BatchPolicyTest, IdleWorkersShareTheQueue) {
  for (int i = 0; i < 4; ++i) Add(1);
  EXPECT_EQ(Choose(/*idle=*/2).picked, (Picked{0, 1}));  // its share, at once
  EXPECT_EQ(Choose(/*idle=*/4).picked, Picked{0});
}

TEST_F(BatchPolicyTest, AShareCutSaysWhatIsLeftForTheOthers) {
  for (int i = 0; i < 6; ++i) Add(1);
  EXPECT_TRUE(Choose(/*idle=*/2).share_left);   // takes 3 of 6
  EXPECT_FALSE(Choose(/*idle=*/1).share_left);  // takes all 6: nothing left to share
  Add(1, "b");                                  // another shape is not the share's
  EXPECT_TRUE(Choose(/*idle=*/2).share_left);
}

TEST_F(BatchPolicyTest, ALoneRequestRunsAtOnceWhenAnotherWorkerIsIdle) {
  Add(1);
  EXPECT_EQ(Choose(/*idle=*/2).picked, Picked{0});
}

TEST_F(BatchPolicyTest, ShareNeverSplitsATask) {
  Add(6);
  Add(1);
  EXPECT_EQ(Choose(/*idle=*/2).picked, Picked{0});  // share is 4, but the first task holds 6
}

TEST_F(BatchPolicyTest, OneIdleWorkerTakesUpToTheMaximum) {
  for (int i = 0; i < 20; ++i) Add(1);
  EXPECT_EQ(Choose(/*idle=*/1).picked.size(), 8u);
  EXPECT_EQ(Choose(/*idle=*/2).picked.size(), 8u);  // share 10, capped by max_batch_size
}

}  // namespace
}  // namespace inferd
