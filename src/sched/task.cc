#include "sched/task.h"

namespace inferd {

Task::~Task() {
  if (done_) Complete(InternalError("request was dropped before it was executed"));
}

void Task::Complete(StatusOr<std::vector<Tensor>> outputs) {
  if (!done_) return;
  Callback cb = std::move(done_);
  done_ = nullptr;
  cb(std::move(outputs), timings_);
}

}  // namespace inferd
