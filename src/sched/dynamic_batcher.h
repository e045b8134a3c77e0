#pragma once
// DynamicBatcher: a bounded FIFO queue of Tasks for one model version, and
// the worker threads (one per backend instance) that take batches off it.
//
// The batching rule is ChooseBatch (sched/batch_policy.h): Triton's dynamic
// batcher (shape-homogeneous FIFO batches, preferred sizes, a queue delay)
// plus one change: idle instances share the queued work instead of one
// taking it all. A free worker pulls the next batch, so batches grow while
// all instances are busy. Time comes from the injected Clock.
//
// Threading: Enqueue and queue_depth from any thread. Shutdown() stops new
// work, lets the workers drain everything queued (without waiting for the
// delay), and joins them; the destructor calls it.

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "sched/batch_policy.h"
#include "sched/task.h"

namespace inferd {

class DynamicBatcher {
 public:
  struct Options {
    bool batching = false;       // false: one task per batch
    int64_t max_batch_size = 1;  // items per batch (>= 1)
    Duration max_queue_delay{};  // wait for more work, measured from the oldest task
    std::vector<int64_t> preferred_batch_sizes;  // dispatch early at these sizes
    size_t max_queue_size = 1024;                // tasks; Enqueue fails beyond it
    int num_workers = 1;                         // one per backend instance
    Clock* clock = nullptr;                      // default: Clock::System()
  };
  // Runs one batch on worker `worker_index`; must complete every task.
  using Executor = std::function<void(int worker_index, TaskBatch& batch)>;

  static StatusOr<std::unique_ptr<DynamicBatcher>> Create(Options options, Executor executor);
  ~DynamicBatcher();

  // Takes ownership of `task` on success only. ResourceExhausted when the
  // queue is full, Unavailable after Shutdown(), InvalidArgument when the
  // task alone exceeds max_batch_size.
  Status Enqueue(std::unique_ptr<Task>& task) EXCLUDES(mu_);
  void Shutdown() EXCLUDES(mu_);
  // From now on dispatch batches without waiting for the queue delay (for a
  // drain); Enqueue still accepts work.
  void Flush() EXCLUDES(mu_);
  size_t queue_depth() EXCLUDES(mu_);
  // Answers every queued task whose cancellation fired or whose deadline
  // passed (without running it); the pipeline calls it when a request's
  // cancellation fires. Workers also drop such tasks whenever they look for
  // a batch, and wake for the earliest queued deadline.
  void DropCancelled() EXCLUDES(mu_);
  // Tasks dropped so far.
  uint64_t dropped() EXCLUDES(mu_);

 private:
  DynamicBatcher(Options options, Executor executor);
  void WorkerLoop(int index) EXCLUDES(mu_);
  // Takes the next batch off the queue if one is due; otherwise leaves the
  // queue alone and sets *wake_at to when one will be due (Time::max() if it
  // only depends on new arrivals).
  // Tasks that may no longer run are moved to *dropped, to be completed
  // (CompleteDropped) once the lock is released.
  TaskBatch FormBatch(Time now, Time* wake_at, TaskBatch* dropped) REQUIRES(mu_);
  // Moves the tasks that may no longer run to *dropped; returns the earliest
  // deadline among the rest.
  Time TakeDropped(Time now, TaskBatch* dropped) REQUIRES(mu_);
  static void CompleteDropped(TaskBatch& dropped, Time now);

  const Options options_;
  const Executor executor_;
  Clock* const clock_;
  Mutex mu_;
  CondVar cv_;
  std::deque<std::unique_ptr<Task>> queue_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  bool flushing_ GUARDED_BY(mu_) = false;
  int idle_workers_ GUARDED_BY(mu_) = 0;  // workers looking for a batch
  // Batches still to dispatch at once because a worker took its fair share
  // of a queue that several idle workers split (BatchChoice::share_left).
  int handoffs_ GUARDED_BY(mu_) = 0;
  uint64_t dropped_ GUARDED_BY(mu_) = 0;
  std::vector<std::thread> workers_;
};

}  // namespace inferd
