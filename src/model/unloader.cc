#include "model/unloader.h"

namespace inferd {

Unloader::Unloader() : thread_([this] { Run(); }) {}

bool Unloader::Post(std::function<void()> fn) {
  MutexLock l(&mu_);
  if (stopped_) return false;
  jobs_.push_back(std::move(fn));
  cv_.Signal();
  return true;
}

void Unloader::Stop() {
  {
    MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.Signal();
  }
  thread_.join();
}

void Unloader::Run() {
  for (;;) {
    std::function<void()> job;
    {
      MutexLock l(&mu_);
      while (jobs_.empty() && !stopping_) cv_.Wait(&mu_);
      if (jobs_.empty()) {  // stopping, and nothing left
        stopped_ = true;
        return;
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace inferd
