#pragma once
// PassThroughScheduler: the Scheduler for backends that batch or stream
// themselves and never block: no queue, no batching, no executor thread.
// Schedule() hands each task to the backend at once, on the caller's
// thread, unless its cancellation fired or its deadline passed (then it is
// answered with that reason); at most max_in_flight tasks run at a time
// (beyond: ResourceExhausted, as a full queue).
//
// Threading: every method is safe from any thread. Shutdown() refuses new
// work and waits until every accepted task has been completed (unless on an
// executor thread).

#include <functional>
#include <memory>

#include "common/clock.h"
#include "common/mutex.h"
#include "sched/scheduler.h"

namespace inferd {

class PassThroughScheduler final : public Scheduler {
 public:
  struct Options {
    size_t max_in_flight = 1024;  // tasks handed to the backend and not yet completed
    Clock* clock = nullptr;       // default: Clock::System()
  };
  // Starts one task; must not block, and must complete the task exactly
  // once, now or later, from any thread.
  using Start = std::function<void(std::unique_ptr<Task> task)>;

  static StatusOr<std::unique_ptr<PassThroughScheduler>> Create(const Options& options,
                                                                Start start);
  ~PassThroughScheduler() override;

  Status Schedule(std::unique_ptr<Task>& task) override EXCLUDES(state_->mu);
  size_t queue_depth() override { return 0; }  // nothing waits here
  void DropCancelled() override {}             // nothing waits here
  void Flush() override {}
  void Shutdown() override EXCLUDES(state_->mu);
  size_t in_flight() EXCLUDES(state_->mu);

 private:
  // Shared with the completion wrappers, which may outlive the scheduler.
  struct State {
    Mutex mu;
    CondVar idle;
    size_t in_flight GUARDED_BY(mu) = 0;
    bool stopping GUARDED_BY(mu) = false;
  };
  PassThroughScheduler(const Options& options, Start start);

  const Options options_;
  const Start start_;
  Clock* const clock_;
  const std::shared_ptr<State> state_;
};

}  // namespace inferd
