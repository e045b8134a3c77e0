#pragma once
// DynamicBatcher: the batching Scheduler. A bounded FIFO queue of Tasks for
// one model version, served by the shared Executor, which runs each batch on
// a free backend instance of the version (at most num_workers batches at a
// time, one per instance).
//
// The batching rule is ChooseBatch (sched/batch_policy.h): Triton's dynamic
// batcher (shape-homogeneous FIFO batches, preferred sizes, a queue delay)
// plus one change: free instances share the queued work instead of one
// taking it all. Batches grow while every instance is busy. Tasks whose
// cancellation fired or whose deadline passed leave the queue unrun, at once
// on DropCancelled() or when an executor thread next looks (it wakes for the
// earliest queued deadline). Time comes from the injected Clock.
//
// Threading: every method is safe from any thread. Shutdown() stops new
// work and waits until everything queued has run (without waiting for the
// delay); the destructor calls it. The queue itself is shared with the
// executor, so the batcher may be destroyed on any thread, an executor
// thread running its last batch included.

#include <functional>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "sched/executor.h"
#include "sched/scheduler.h"
#include "sched/task.h"

namespace inferd {

class DynamicBatcher final : public Scheduler {
 public:
  struct Options {
    bool batching = false;       // false: one task per batch
    int64_t max_batch_size = 1;  // items per batch (>= 1)
    Duration max_queue_delay{};  // wait for more work, measured from the oldest task
    std::vector<int64_t> preferred_batch_sizes;  // dispatch early at these sizes
    // Adaptive batching (sched/adaptive_batching.h): cap and delay from a
    // fitted cost model, to keep queue plus compute under latency_target;
    // max_queue_delay is then only the delay before the first batch, and
    // preferred_batch_sizes are not used.
    bool adaptive = false;
    Duration latency_target{};
    size_t max_queue_size = 1024;  // tasks; Schedule fails beyond it
    // Priority levels and fair shares (sched/priority_fair_queue.h): a
    // task's level and tenant are its queue_key().
    int priority_levels = 1;
    double lower_level_share = 0.1;      // guaranteed share of the lower levels
    std::vector<size_t> max_level_size;  // per level (index level - 1); 0: no own bound
    // Overload control (Reserve): off unless set. Its clock and batch
    // delay come from these options.
    bool overload_control = false;
    OverloadControl::Options overload;
    int num_workers = 1;     // backend instances: concurrent batches
    Clock* clock = nullptr;  // default: the executor's, else System()
    // The shared executor; null: the batcher makes its own, with
    // num_workers threads (for standalone use and tests).
    Executor* executor = nullptr;
  };
  // Runs one batch on backend instance `instance`; must complete every task.
  using RunBatch = std::function<void(int instance, TaskBatch& batch)>;

  static StatusOr<std::unique_ptr<DynamicBatcher>> Create(Options options, RunBatch run);
  ~DynamicBatcher() override;

  Status Schedule(std::unique_ptr<Task>& task) override;
  Status Enqueue(std::unique_ptr<Task>& task) { return Schedule(task); }
  StatusOr<OverloadSlot> Reserve(const QueueKey& key, int64_t* retry_after_s) override;
  OverloadControl::Stats overload_stats() override;
  AdaptiveStats adaptive_stats() override;
  size_t queue_depth() override;
  size_t queue_depth(int level) override;
  void CountByTenant(std::vector<int64_t>* out) override;
  void DropCancelled() override;
  void Flush() override;
  void Shutdown() override;
  // Tasks dropped so far (cancelled or past their deadline).
  uint64_t dropped();

 private:
  class Queue;  // the executor's side (dynamic_batcher.cc)
  DynamicBatcher(std::unique_ptr<Executor> own, Executor* executor, std::shared_ptr<Queue> queue);

  std::unique_ptr<Executor> own_executor_;  // when Options::executor was null
  Executor* const executor_;
  const std::shared_ptr<Queue> queue_;
};

}  // namespace inferd
