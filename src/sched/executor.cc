#include "sched/executor.h"

#include <algorithm>

namespace inferd {
namespace {
thread_local bool t_on_executor = false;
}  // namespace

StatusOr<std::unique_ptr<Executor>> Executor::Create(const Options& options) {
  if (options.threads < 0) return InvalidArgumentError("executor threads must be >= 0");
  int n = options.threads;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  std::unique_ptr<Executor> e(new Executor(options.clock ? options.clock : Clock::System()));
  for (int i = 0; i < n; ++i) e->threads_.emplace_back([raw = e.get()] { raw->Loop(); });
  return e;
}

Executor::~Executor() { Stop(); }

bool Executor::OnExecutorThread() { return t_on_executor; }

void Executor::Add(std::shared_ptr<Queue> queue) {
  {
    MutexLock l(&mu_);
    queues_.push_back(std::move(queue));
  }
  cv_.SignalAll();
}

void Executor::Remove(const Queue* queue) {
  std::shared_ptr<Queue> removed;  // released after the lock: it may be the last reference
  MutexLock l(&mu_);
  for (auto it = queues_.begin(); it != queues_.end(); ++it) {
    if (it->get() != queue) continue;
    removed = std::move(*it);
    queues_.erase(it);
    if (cursor_ >= queues_.size()) cursor_ = 0;
    return;
  }
}

void Executor::Notify() {
  MutexLock l(&mu_);  // pairs with the check-then-wait in Next: no lost wake-up
  cv_.Signal();
}

void Executor::Stop() {
  {
    MutexLock l(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool Executor::Next(std::shared_ptr<Queue>* queue, Work* work) {
  MutexLock l(&mu_);
  for (;;) {
    if (stop_) return false;
    const Time now = clock_->Now();
    Time earliest = Time::max();
    const size_t n = queues_.size();
    for (size_t i = 0; i < n; ++i) {
      const size_t idx = (cursor_ + i) % n;
      Time wake = Time::max();
      if (queues_[idx]->TakeWork(now, &wake, work)) {
        *queue = queues_[idx];  // not the last reference: queues_ holds one
        cursor_ = (idx + 1) % n;
        cv_.Signal();  // there may be more: another idle thread looks too
        return true;
      }
      earliest = std::min(earliest, wake);
    }
    if (earliest == Time::max()) {
      cv_.Wait(&mu_);
    } else {
      clock_->WaitUntil(&cv_, &mu_, earliest);
    }
  }
}

void Executor::Loop() {
  t_on_executor = true;
  for (;;) {
    std::shared_ptr<Queue> queue;
    Work work;
    if (!Next(&queue, &work)) return;
    queue->RunWork(work);
    // `queue` may hold the last reference: released here, on this thread,
    // outside the lock.
  }
}

}  // namespace inferd
