#pragma once
// Scheduler: how a model version turns requests (Tasks) into backend calls
// (TF Serving's BatchScheduler is the anchor). A model version takes one:
//
//  - DynamicBatcher: a bounded queue forming batches (delay, preferred
//    sizes, fair shares across instances), run on the shared Executor;
//  - PassThroughScheduler: no queue and no batching, for backends that batch
//    or stream themselves and never block the caller.
//
// Overload control: a request takes a slot (Reserve) before it is decoded
// and gives it back when answered; see sched/overload_control.h.
//
// Contract: Schedule() takes ownership on success only (on failure the
// caller still holds the task and answers it); every accepted task is
// completed exactly once. A task whose cancellation fires or whose deadline
// passes before it runs is completed with that reason, without running.
//
// Threading: every method is safe from any thread.

#include <cstddef>
#include <memory>
#include <vector>

#include "common/status.h"
#include "sched/overload_control.h"
#include "sched/task.h"

namespace inferd {

// Adaptive batching's state (sched/adaptive_batching.h), for the metrics.
struct AdaptiveStats {
  bool enabled = false;
  int64_t cap = 0;
  double delay_s = 0;
  bool infeasible = false;
  double fixed_s = 0;     // the cost model's a
  double per_item_s = 0;  // and b
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // ResourceExhausted when full, Unavailable after Shutdown(),
  // InvalidArgument when the task can never run (too large a batch).
  virtual Status Schedule(std::unique_ptr<Task>& task) = 0;
  // A slot among the queued and running work of the model, for a request
  // that will be queued at `key`. With none free, pushes out the
  // worst-ranked queued task if it ranks below `key` (answered Unavailable,
  // DropCause::kEvicted) and takes a slot over the limit; else Unavailable,
  // and *retry_after_s says when to come back. Without overload control:
  // an empty slot.
  virtual StatusOr<OverloadSlot> Reserve(const QueueKey& key, int64_t* retry_after_s) {
    (void)key;
    (void)retry_after_s;
    return OverloadSlot();
  }
  // The controller's state (limit 0: no overload control).
  virtual OverloadControl::Stats overload_stats() { return {}; }
  virtual AdaptiveStats adaptive_stats() { return {}; }
  // Tasks waiting (accepted, not yet running).
  virtual size_t queue_depth() = 0;
  // Tasks waiting at priority `level` (1 is the highest).
  virtual size_t queue_depth(int level) { return level == 1 ? queue_depth() : 0; }
  // Queued tasks per tenant id.
  virtual void CountByTenant(std::vector<int64_t>* out) { (void)out; }
  // Answers, without running them, the waiting tasks whose cancellation
  // fired or whose deadline passed.
  virtual void DropCancelled() = 0;
  // From now on dispatch without waiting for batch delays (a drain).
  virtual void Flush() = 0;
  // Refuses new work, lets everything accepted finish and waits for it
  // (unless called on an executor thread, which must not wait for itself).
  virtual void Shutdown() = 0;
};

}  // namespace inferd
