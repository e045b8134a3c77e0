#include "sched/dynamic_batcher.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace inferd {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// Records the batches the batcher hands out (as task ids) and completes them.
class Recorder {
 public:
  DynamicBatcher::RunBatch Run() {
    return [this](int, TaskBatch& batch) {
      std::vector<int> ids;
      for (auto& t : batch) {
        ids.push_back(static_cast<int>(t->inputs()[0].byte_size()));  // id encoded as byte size
        t->Complete(std::vector<Tensor>{});
      }
      std::lock_guard<std::mutex> l(mu_);
      batches_.push_back(ids);
      cv_.notify_all();
    };
  }
  // Waits (bounded, to fail rather than hang) until `n` batches ran.
  std::vector<std::vector<int>> WaitFor(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    EXPECT_TRUE(cv_.wait_for(l, std::chrono::seconds(30), [&] { return batches_.size() >= n; }));
    return batches_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::vector<int>> batches_;
};

std::unique_ptr<Task> MakeTask(int id, std::string sig = "a", int64_t batch = 1,
                               std::atomic<int>* completions = nullptr, Status* last = nullptr) {
  std::vector<Tensor> in = {Tensor::FromBytes(DataType::kUint8, {id}, std::string(id, 'x'))};
  return std::make_unique<Task>(
      std::move(in), batch, std::move(sig),
      [completions, last](StatusOr<std::vector<Tensor>> r, const TaskTimings&) {
        if (completions) ++*completions;
        if (last) *last = r.status();
      });
}

DynamicBatcher::Options BatchingOptions(FakeClock* clock) {
  DynamicBatcher::Options o;
  o.batching = true;
  o.max_batch_size = 8;
  o.max_queue_delay = milliseconds(1);
  o.clock = clock;
  return o;
}

void Enqueue(DynamicBatcher* b, std::unique_ptr<Task> t) {
  ASSERT_TRUE(b->Enqueue(t).ok());
  ASSERT_EQ(t, nullptr);
}

TEST(DynamicBatcherTest, WithoutBatchingEachTaskRunsAlone) {
  FakeClock clock;
  Recorder rec;
  DynamicBatcher::Options o;
  o.clock = &clock;
  auto b = DynamicBatcher::Create(o, rec.Run()).value();
  for (int i = 1; i <= 3; ++i) Enqueue(b.get(), MakeTask(i));
  auto batches = rec.WaitFor(3);
  EXPECT_EQ(batches, (std::vector<std::vector<int>>{{1}, {2}, {3}}));
}

TEST(DynamicBatcherTest, WaitsForTheDelayThenDispatchesEverything) {
  FakeClock clock;
  Recorder rec;
  auto b = DynamicBatcher::Create(BatchingOptions(&clock), rec.Run()).value();
  for (int i = 1; i <= 3; ++i) Enqueue(b.get(), MakeTask(i));
  clock.Advance(microseconds(999));
  EXPECT_EQ(b->queue_depth(), 3u);  // not due yet: time has not reached the delay
  clock.Advance(microseconds(1));
  auto batches = rec.WaitFor(1);
  EXPECT_EQ(batches, (std::vector<std::vector<int>>{{1, 2, 3}}));
}

TEST(DynamicBatcherTest, FullBatchDispatchesWithoutWaiting) {
  FakeClock clock;
  Recorder rec;
  auto o = BatchingOptions(&clock);
  o.max_batch_size = 4;
  auto b = DynamicBatcher::Create(o, rec.Run()).value();
  for (int i = 1; i <= 4; ++i) Enqueue(b.get(), MakeTask(i));
  EXPECT_EQ(rec.WaitFor(1)[0], (std::vector<int>{1, 2, 3, 4}));  // the clock never moved
}

TEST(DynamicBatcherTest, TasksCountByTheirBatchSize) {
  FakeClock clock;
  Recorder rec;
  auto o = BatchingOptions(&clock);
  o.max_batch_size = 4;
  auto b = DynamicBatcher::Create(o, rec.Run()).value();
  Enqueue(b.get(), MakeTask(1, "a", 3));
  Enqueue(b.get(), MakeTask(2, "a", 2));  // 3 + 2 > 4: must wait for the next batch
  clock.Advance(milliseconds(1));
  auto batches = rec.WaitFor(2);
  EXPECT_EQ(batches, (std::vector<std::vector<int>>{{1}, {2}}));
}

TEST(DynamicBatcherTest, PreferredSizeDispatchesEarly) {
  FakeClock clock;
  Recorder rec;
  auto o = BatchingOptions(&clock);
  o.preferred_batch_sizes = {2};
  auto b = DynamicBatcher::Create(o, rec.Run()).value();
  Enqueue(b.get(), MakeTask(1));
  Enqueue(b.get(), MakeTask(2));
  EXPECT_EQ(rec.WaitFor(1)[0], (std::vector<int>{1, 2}));
}

TEST(DynamicBatcherTest, DifferentShapesAreNeverMixed) {
  FakeClock clock;
  Recorder rec;
  auto b = DynamicBatcher::Create(BatchingOptions(&clock), rec.Run()).value();
  Enqueue(b.get(), MakeTask(1, "x"));
  Enqueue(b.get(), MakeTask(2, "y"));
  Enqueue(b.get(), MakeTask(3, "x"));
  Enqueue(b.get(), MakeTask(4, "y"));
  clock.Advance(milliseconds(1));
  auto batches = rec.WaitFor(2);
  EXPECT_EQ(batches, (std::vector<std::vector<int>>{{1, 3}, {2, 4}}));
}

TEST(DynamicBatcherTest, FullQueueRejectsAndKeepsOwnership) {
  FakeClock clock;
  Recorder rec;
  auto o = BatchingOptions(&clock);
  o.max_queue_size = 2;
  auto b = DynamicBatcher::Create(o, rec.Run()).value();
  Enqueue(b.get(), MakeTask(1));
  Enqueue(b.get(), MakeTask(2));
  std::atomic<int> done{0};
  auto t = MakeTask(3, "a", 1, &done);
  Status st = b->Enqueue(t);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(done.load(), 0);
  t.reset();  // dropping an uncompleted task answers it once, with an error
  EXPECT_EQ(done.load(), 1);
}

TEST(DynamicBatcherTest, OversizedTaskIsRejected) {
  FakeClock clock;
  Recorder rec;
  auto b = DynamicBatcher::Create(BatchingOptions(&clock), rec.Run()).value();
  auto t = MakeTask(1, "a", 9);
  EXPECT_EQ(b->Enqueue(t).code(), StatusCode::kInvalidArgument);
}

TEST(DynamicBatcherTest, ShutdownDrainsQueuedTasksWithoutWaitingForTheDelay) {
  FakeClock clock;
  Recorder rec;
  auto o = BatchingOptions(&clock);
  o.max_queue_delay = std::chrono::hours(1);
  auto b = DynamicBatcher::Create(o, rec.Run()).value();
  std::atomic<int> done{0};
  for (int i = 1; i <= 3; ++i) Enqueue(b.get(), MakeTask(i, "a", 1, &done));
  b->Shutdown();
  EXPECT_EQ(done.load(), 3);
  auto t = MakeTask(4);
  EXPECT_EQ(b->Enqueue(t).code(), StatusCode::kUnavailable);
}

TEST(DynamicBatcherTest, FlushDispatchesAtOnceAndStillAccepts) {
  FakeClock clock;
  Recorder rec;
  auto o = BatchingOptions(&clock);
  o.max_queue_delay = std::chrono::hours(1);
  auto b = DynamicBatcher::Create(o, rec.Run()).value();
  Enqueue(b.get(), MakeTask(1));
  Enqueue(b.get(), MakeTask(2));
  b->Flush();
  EXPECT_EQ(rec.WaitFor(1)[0], (std::vector<int>{1, 2}));
  Enqueue(b.get(), MakeTask(3));
  EXPECT_EQ(rec.WaitFor(2)[1], (std::vector<int>{3}));
}

TEST(DynamicBatcherTest, IdleWorkersSplittingAQueueAllDispatchAtOnce) {
  // Worker A is held in the executor on task 1 while tasks 2..7 queue up
  // (worker B alone waits for the delay). When A comes back, two workers are
  // idle: A takes its share (and is held again), and B must take the rest at
  // once, not wait for the delay. The clock never moves, so a wait for the
  // delay would never end: the bounded wait below fails instead.
  FakeClock clock;
  std::mutex mu;
  std::condition_variable cv;
  bool first_released = false, all_released = false;
  std::vector<std::vector<int>> started;  // batches, as they enter the executor
  DynamicBatcher::Options o = BatchingOptions(&clock);
  o.num_workers = 2;
  auto b = DynamicBatcher::Create(o, [&](int, TaskBatch& batch) {
             std::unique_lock<std::mutex> l(mu);
             std::vector<int> ids;
             for (auto& t : batch) ids.push_back(static_cast<int>(t->inputs()[0].byte_size()));
             started.push_back(ids);
             cv.notify_all();
             bool first = ids == std::vector<int>{1};
             cv.wait(l, [&] { return first ? first_released : all_released; });
             for (auto& t : batch) t->Complete(std::vector<Tensor>{});
           }).value();
  auto items_started = [&] {
    size_t n = 0;
    for (const auto& batch : started) n += batch.size();
    return n;
  };
  Enqueue(b.get(), MakeTask(1));  // both idle: a share of one, at once
  {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return items_started() == 1; }));
  }
  for (int i = 2; i <= 7; ++i) Enqueue(b.get(), MakeTask(i));
  std::unique_lock<std::mutex> l(mu);
  first_released = true;
  cv.notify_all();
  bool all_started = cv.wait_for(l, std::chrono::seconds(30), [&] { return items_started() == 7; });
  EXPECT_TRUE(all_started) << "tasks left waiting for the delay: " << 7 - items_started();
  EXPECT_EQ(started.size(), 3u);  // {1}, then 2..7 in two shares, both running at once
  all_released = true;
  cv.notify_all();
  l.unlock();
  if (!all_started) clock.Advance(milliseconds(1));  // let the batcher finish
}

TEST(DynamicBatcherTest, ManyThreadsEveryTaskCompletesOnce) {
  Recorder rec;
  DynamicBatcher::Options o;
  o.batching = true;
  o.max_batch_size = 16;
  o.max_queue_delay = microseconds(100);
  o.max_queue_size = 100000;
  o.num_workers = 2;
  auto b = DynamicBatcher::Create(o, rec.Run()).value();
  std::atomic<int> done{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        auto t = MakeTask(1 + i % 7, i % 2 ? "a" : "b", 1, &done);
        ASSERT_TRUE(b->Enqueue(t).ok());
      }
    });
  }
  for (auto& t : producers) t.join();
  b->Shutdown();
  EXPECT_EQ(done.load(), 2000);
}

TEST(TaskTest, CompletesExactlyOnce) {
  std::atomic<int> done{0};
  Status last;
  auto t = MakeTask(1, "a", 1, &done, &last);
  t->Complete(InternalError("first"));
  t->Complete(std::vector<Tensor>{});
  t.reset();
  EXPECT_EQ(done.load(), 1);
  EXPECT_EQ(last.message(), "first");
}

}  // namespace
}  // namespace inferd
