#include "sched/pass_through.h"

#include "sched/executor.h"

namespace inferd {

StatusOr<std::unique_ptr<PassThroughScheduler>> PassThroughScheduler::Create(const Options& options,
                                                                             Start start) {
  if (options.max_in_flight < 1) return InvalidArgumentError("max_in_flight must be >= 1");
  if (!start) return InvalidArgumentError("a start function is required");
  return std::unique_ptr<PassThroughScheduler>(new PassThroughScheduler(options, std::move(start)));
}

PassThroughScheduler::PassThroughScheduler(const Options& options, Start start)
    : options_(options),
      start_(std::move(start)),
      clock_(options.clock ? options.clock : Clock::System()),
      state_(std::make_shared<State>()) {}

PassThroughScheduler::~PassThroughScheduler() { Shutdown(); }

Status PassThroughScheduler::Schedule(std::unique_ptr<Task>& task) {
  const Time now = clock_->Now();
  if (Status why = task->DropReason(now); !why.ok()) {
    task->Complete(why);  // answered here: ownership is not needed
    task.reset();
    return Status::OK();
  }
  {
    MutexLock l(&state_->mu);
    if (state_->stopping) return UnavailableError("the server is shutting down");
    if (state_->in_flight >= options_.max_in_flight) {
      return ResourceExhaustedError("too many requests in flight (" +
                                    std::to_string(options_.max_in_flight) + ")");
    }
    ++state_->in_flight;
  }
  task->timings().enqueued = now;
  task->timings().started = now;
  task->timings().executed_batch_size = task->batch_size();
  // The completion leaves the in-flight count right after the callback,
  // whoever calls it.
  task->AddCompletionHook([state = state_] {
    MutexLock l(&state->mu);
    if (--state->in_flight == 0) state->idle.SignalAll();
  });
  start_(std::move(task));
  return Status::OK();
}

void PassThroughScheduler::Shutdown() {
  MutexLock l(&state_->mu);
  state_->stopping = true;
  if (Executor::OnExecutorThread()) return;
  while (state_->in_flight > 0) state_->idle.Wait(&state_->mu);
}

size_t PassThroughScheduler::in_flight() {
  MutexLock l(&state_->mu);
  return state_->in_flight;
}

}  // namespace inferd
