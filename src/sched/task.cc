#include "sched/task.h"

namespace inferd {

Task::~Task() {
  if (done_) Complete(InternalError("request was dropped before it was executed"));
}

Status Task::DropReason(Time now) const {
  if (cancel_ && cancel_->cancelled()) return cancel_->reason();
  if (now >= deadline_)
    return DeadlineExceededError("the request's deadline passed while it was queued");
  return Status::OK();
}

void Task::Complete(StatusOr<std::vector<Tensor>> outputs) {
  if (!done_) return;
  Callback cb = std::move(done_);
  done_ = nullptr;
  std::function<void()> hook = std::move(hook_);
  cb(std::move(outputs), timings_);
  if (hook) hook();
}

}  // namespace inferd
