// The shared Executor with its schedulers: round-robin fairness across
// models, never more batches at once than threads, deadline wake-ups while
// every instance is busy, a scheduler released on an executor thread by its
// own last batch, and the pass-through scheduler.

#include "sched/executor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "sched/dynamic_batcher.h"
#include "sched/pass_through.h"

namespace inferd {
namespace {

using std::chrono::milliseconds;
constexpr auto kGuard = std::chrono::seconds(30);  // turns a hang into a failure

std::unique_ptr<Task> MakeTask(int id, std::function<void(const Status&)> done = nullptr) {
  std::vector<Tensor> in = {Tensor::FromBytes(DataType::kUint8, {id}, std::string(id, 'x'))};
  return std::make_unique<Task>(std::move(in), 1, "s",
                                [done](StatusOr<std::vector<Tensor>> r, const TaskTimings&) {
                                  if (done) done(r.status());
                                });
}

// A gate the run functions wait at, and a log of what ran.
class Gate {
 public:
  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = false;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> l(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  // Records `tag`, counts concurrency, waits for the gate, completes the batch.
  void Run(int tag, TaskBatch& batch) {
    std::unique_lock<std::mutex> l(mu_);
    log_.push_back(tag);
    max_running_ = std::max(max_running_, ++running_);
    cv_.notify_all();
    cv_.wait(l, [&] { return open_; });
    --running_;
    l.unlock();
    for (auto& t : batch) t->Complete(std::vector<Tensor>{});
  }
  bool WaitRunning(int n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, kGuard, [&] { return running_ >= n; });
  }
  bool WaitLogged(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, kGuard, [&] { return log_.size() >= n; });
  }
  std::vector<int> log() {
    std::lock_guard<std::mutex> l(mu_);
    return log_;
  }
  int max_running() {
    std::lock_guard<std::mutex> l(mu_);
    return max_running_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int running_ = 0, max_running_ = 0;
  std::vector<int> log_;
};

std::unique_ptr<DynamicBatcher> Batcher(Executor* e, Gate* gate, int tag, int instances = 1) {
  DynamicBatcher::Options o;
  o.executor = e;
  o.num_workers = instances;
  return DynamicBatcher::Create(o, [gate, tag](int, TaskBatch& b) { gate->Run(tag, b); }).value();
}

TEST(ExecutorTest, ServesModelsRoundRobin) {
  auto e = Executor::Create({1, nullptr}).value();
  Gate gate;
  auto hold = Batcher(e.get(), &gate, 0);
  auto a = Batcher(e.get(), &gate, 1, 4);
  auto b = Batcher(e.get(), &gate, 2, 4);
  gate.Close();
  auto first = MakeTask(1);
  ASSERT_TRUE(hold->Schedule(first).ok());
  ASSERT_TRUE(gate.WaitRunning(1));  // the one thread is busy
  for (int i = 0; i < 4; ++i) {
    auto ta = MakeTask(1), tb = MakeTask(2);
    ASSERT_TRUE(a->Schedule(ta).ok());
    ASSERT_TRUE(b->Schedule(tb).ok());
  }
  gate.Open();
  ASSERT_TRUE(gate.WaitLogged(9));
  std::vector<int> order = gate.log();
  // A's queue filled first, yet the two models alternate.
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 1, 2, 1, 2, 1, 2}));
}

TEST(ExecutorTest, ManyModelsNeverRunMoreBatchesThanThreads) {
  auto e = Executor::Create({2, nullptr}).value();
  Gate gate;
  std::vector<std::unique_ptr<DynamicBatcher>> models;
  for (int m = 0; m < 5; ++m) models.push_back(Batcher(e.get(), &gate, m, /*instances=*/2));
  std::atomic<int> done{0};
  for (int i = 0; i < 40; ++i) {
    auto t = MakeTask(1, [&](const Status&) { done.fetch_add(1); });
    ASSERT_TRUE(models[i % 5]->Schedule(t).ok());
  }
  for (auto& m : models) m->Shutdown();
  EXPECT_EQ(done.load(), 40);
  EXPECT_LE(gate.max_running(), 2);
}

TEST(ExecutorTest, AQueuedDeadlineIsAnsweredWhileEveryInstanceIsBusy) {
  FakeClock clock;
  auto e = Executor::Create({2, &clock}).value();
  Gate gate;
  auto b = Batcher(e.get(), &gate, 1);  // one instance
  gate.Close();
  auto busy = MakeTask(1);
  ASSERT_TRUE(b->Schedule(busy).ok());
  ASSERT_TRUE(gate.WaitRunning(1));
  std::promise<Status> answered;
  auto late = MakeTask(2, [&](const Status& st) { answered.set_value(st); });
  late->set_deadline(clock.Now() + milliseconds(10));
  ASSERT_TRUE(b->Schedule(late).ok());
  clock.Advance(milliseconds(10));  // the idle thread wakes for the deadline
  auto f = answered.get_future();
  ASSERT_EQ(f.wait_for(kGuard), std::future_status::ready);
  EXPECT_EQ(f.get().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(b->dropped(), 1u);
  gate.Open();
  b->Shutdown();
  EXPECT_EQ(gate.log(), (std::vector<int>{1}));  // the late task never ran
}

TEST(ExecutorTest, ASchedulerReleasedByItsOwnLastBatchOnAnExecutorThread) {
  auto e = Executor::Create({1, nullptr}).value();
  std::unique_ptr<DynamicBatcher> b;
  std::promise<void> released;
  DynamicBatcher::Options o;
  o.executor = e.get();
  b = DynamicBatcher::Create(o, [&](int, TaskBatch& batch) {
        for (auto& t : batch) t->Complete(std::vector<Tensor>{});
        b.reset();  // the last reference, dropped while this batch runs
        released.set_value();
      }).value();
  auto t = MakeTask(1);
  ASSERT_TRUE(b->Schedule(t).ok());
  auto f = released.get_future();
  ASSERT_EQ(f.wait_for(kGuard), std::future_status::ready);
  // The executor goes on serving other queues.
  Gate gate;
  auto other = Batcher(e.get(), &gate, 7);
  auto t2 = MakeTask(1);
  ASSERT_TRUE(other->Schedule(t2).ok());
  ASSERT_TRUE(gate.WaitLogged(1));
}

TEST(PassThroughSchedulerTest, StartsAtOnceBoundsInFlightAndDrains) {
  std::vector<std::unique_ptr<Task>> started;
  auto s = PassThroughScheduler::Create({2, nullptr}, [&](std::unique_ptr<Task> t) {
             started.push_back(std::move(t));  // completed later, elsewhere
           }).value();
  std::atomic<int> done{0};
  for (int i = 0; i < 2; ++i) {
    auto t = MakeTask(1, [&](const Status&) { done.fetch_add(1); });
    ASSERT_TRUE(s->Schedule(t).ok());
    EXPECT_EQ(t, nullptr);
  }
  EXPECT_EQ(started.size(), 2u);
  auto third = MakeTask(1);
  EXPECT_EQ(s->Schedule(third).code(), StatusCode::kResourceExhausted);
  ASSERT_NE(third, nullptr);  // ownership stayed with the caller
  std::thread completer([&] {
    for (auto& t : started) t->Complete(std::vector<Tensor>{});
  });
  s->Shutdown();  // waits for both completions
  EXPECT_EQ(done.load(), 2);
  EXPECT_EQ(s->in_flight(), 0u);
  completer.join();
  auto after = MakeTask(1);
  EXPECT_EQ(s->Schedule(after).code(), StatusCode::kUnavailable);
}

TEST(PassThroughSchedulerTest, ExpiredOrCancelledTasksAreAnsweredWithoutStarting) {
  FakeClock clock;
  int starts = 0;
  auto s = PassThroughScheduler::Create({4, &clock}, [&](std::unique_ptr<Task> t) {
             ++starts;
             t->Complete(std::vector<Tensor>{});
           }).value();
  Status got;
  auto expired = MakeTask(1, [&](const Status& st) { got = st; });
  expired->set_deadline(clock.Now());
  ASSERT_TRUE(s->Schedule(expired).ok());
  EXPECT_EQ(got.code(), StatusCode::kDeadlineExceeded);
  auto cancel = std::make_shared<Cancellation>();
  cancel->Cancel(CancelledError("gone"));
  auto cancelled = MakeTask(1, [&](const Status& st) { got = st; });
  cancelled->set_cancellation(cancel);
  ASSERT_TRUE(s->Schedule(cancelled).ok());
  EXPECT_EQ(got.code(), StatusCode::kCancelled);
  EXPECT_EQ(starts, 0);
}

}  // namespace
}  // namespace inferd
