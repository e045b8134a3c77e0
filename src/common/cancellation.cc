#include "common/cancellation.h"

namespace inferd {

bool Cancellation::Cancel(Status reason) {
  std::vector<std::pair<uint64_t, Callback>> callbacks;
  {
    MutexLock l(&mu_);
    if (cancelled_.load(std::memory_order_relaxed)) return false;
    reason_ = reason.ok() ? CancelledError("cancelled") : std::move(reason);
    cancelled_.store(true, std::memory_order_release);
    callbacks.swap(callbacks_);
  }
  const Status r = this->reason();
  for (auto& [id, fn] : callbacks) fn(r);
  return true;
}

Status Cancellation::reason() const {
  MutexLock l(&mu_);
  return reason_;
}

uint64_t Cancellation::OnCancel(Callback fn) {
  Status r;
  {
    MutexLock l(&mu_);
    if (!cancelled_.load(std::memory_order_relaxed)) {
      uint64_t id = next_id_++;
      callbacks_.emplace_back(id, std::move(fn));
      return id;
    }
    r = reason_;
  }
  fn(r);
  return 0;
}

void Cancellation::Remove(uint64_t id) {
  if (id == 0) return;
  MutexLock l(&mu_);
  for (auto it = callbacks_.begin(); it != callbacks_.end(); ++it) {
    if (it->first == id) {
      callbacks_.erase(it);
      return;
    }
  }
}

}  // namespace inferd
