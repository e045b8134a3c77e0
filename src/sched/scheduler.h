#pragma once
// Scheduler: how a model version turns requests (Tasks) into backend calls
// (TF Serving's BatchScheduler is the anchor). A model version takes one:
//
//  - DynamicBatcher: a bounded queue forming batches (delay, preferred
//    sizes, fair shares across instances), run on the shared Executor;
//  - PassThroughScheduler: no queue and no batching, for backends that batch
//    or stream themselves and never block the caller.
//
// The next scheduler (priority queues and deadline-aware order, per tenant)
// slots in behind the same interface.
//
// Contract: Schedule() takes ownership on success only (on failure the
// caller still holds the task and answers it); every accepted task is
// completed exactly once. A task whose cancellation fires or whose deadline
// passes before it runs is completed with that reason, without running.
//
// Threading: every method is safe from any thread.

#include <cstddef>
#include <memory>

#include "common/status.h"
#include "sched/task.h"

namespace inferd {

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // ResourceExhausted when full, Unavailable after Shutdown(),
  // InvalidArgument when the task can never run (too large a batch).
  virtual Status Schedule(std::unique_ptr<Task>& task) = 0;
  // Tasks waiting (accepted, not yet running).
  virtual size_t queue_depth() = 0;
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
