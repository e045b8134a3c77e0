#include "sched/dynamic_batcher.h"

#include <algorithm>

namespace inferd {

StatusOr<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(Options options,
                                                                 Executor executor) {
  if (options.max_batch_size < 1) return InvalidArgumentError("max_batch_size must be >= 1");
  if (options.num_workers < 1) return InvalidArgumentError("num_workers must be >= 1");
  if (options.max_queue_size < 1) return InvalidArgumentError("max_queue_size must be >= 1");
  for (int64_t p : options.preferred_batch_sizes) {
    if (p < 1 || p > options.max_batch_size) {
      return InvalidArgumentError("preferred batch size " + std::to_string(p) +
                                  " is outside [1, max_batch_size]");
    }
  }
  if (!executor) return InvalidArgumentError("executor is required");
  return std::unique_ptr<DynamicBatcher>(
      new DynamicBatcher(std::move(options), std::move(executor)));
}

DynamicBatcher::DynamicBatcher(Options options, Executor executor)
    : options_(std::move(options)),
      executor_(std::move(executor)),
      clock_(options_.clock ? options_.clock : Clock::System()) {
  for (int i = 0; i < options_.num_workers; ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

DynamicBatcher::~DynamicBatcher() { Shutdown(); }

Status DynamicBatcher::Enqueue(std::unique_ptr<Task>& task) {
  if (options_.batching && task->batch_size() > options_.max_batch_size) {
    return InvalidArgumentError("batch size " + std::to_string(task->batch_size()) +
                                " exceeds max_batch_size " +
                                std::to_string(options_.max_batch_size));
  }
  {
    MutexLock l(&mu_);
    if (stopping_) return UnavailableError("the server is shutting down");
    if (queue_.size() >= options_.max_queue_size) {
      return ResourceExhaustedError("queue is full (" + std::to_string(options_.max_queue_size) +
                                    " requests)");
    }
    task->timings().enqueued = clock_->Now();
    queue_.push_back(std::move(task));
  }
  cv_.SignalAll();
  return Status::OK();
}

void DynamicBatcher::Flush() {
  {
    MutexLock l(&mu_);
    flushing_ = true;
  }
  cv_.SignalAll();
}

size_t DynamicBatcher::queue_depth() {
  MutexLock l(&mu_);
  return queue_.size();
}

void DynamicBatcher::Shutdown() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
}

Time DynamicBatcher::TakeDropped(Time now, TaskBatch* dropped) {
  Time earliest = Time::max();
  size_t kept = 0;
  for (size_t i = 0; i < queue_.size(); ++i) {
    if (!queue_[i]->DropReason(now).ok()) {
      dropped->push_back(std::move(queue_[i]));
      continue;
    }
    earliest = std::min(earliest, queue_[i]->deadline());
    if (kept != i) queue_[kept] = std::move(queue_[i]);
    ++kept;
  }
  queue_.resize(kept);
  dropped_ += dropped->size();
  return earliest;
}

void DynamicBatcher::CompleteDropped(TaskBatch& dropped, Time now) {
  for (auto& t : dropped) t->Complete(t->DropReason(now));
}

void DynamicBatcher::DropCancelled() {
  TaskBatch dropped;
  Time now = clock_->Now();
  {
    MutexLock l(&mu_);
    TakeDropped(now, &dropped);
  }
  CompleteDropped(dropped, now);
}

uint64_t DynamicBatcher::dropped() {
  MutexLock l(&mu_);
  return dropped_;
}

TaskBatch DynamicBatcher::FormBatch(Time now, Time* wake_at, TaskBatch* dropped) {
  // Work that may no longer run leaves first; the wait below ends at the
  // earliest deadline still queued, so expired work is answered on time
  // while a worker is idle.
  const Time earliest_deadline = TakeDropped(now, dropped);
  BatchPolicy policy{options_.batching, options_.max_batch_size, options_.max_queue_delay,
                     options_.preferred_batch_sizes};
  BatchChoice choice =
      ChooseBatch(queue_, now, policy, idle_workers_, stopping_ || flushing_ || handoffs_ > 0);
  *wake_at = std::min(choice.wake_at, earliest_deadline);
  if (!choice.picked.empty()) {
    if (choice.share_left) {
      handoffs_ = idle_workers_ - 1;  // the others idle now take their shares at once
    } else if (handoffs_ > 0) {
      --handoffs_;
    }
  }
  TaskBatch batch;
  for (size_t idx : choice.picked) batch.push_back(std::move(queue_[idx]));
  // Erase the moved-out slots, back to front to keep positions valid.
  for (auto it = choice.picked.rbegin(); it != choice.picked.rend(); ++it) {
    queue_.erase(queue_.begin() + static_cast<long>(*it));
  }
  if (queue_.empty()) handoffs_ = 0;
  return batch;
}

void DynamicBatcher::WorkerLoop(int index) {
  for (;;) {
    TaskBatch batch;
    TaskBatch dropped;
    Time now;
    {
      MutexLock l(&mu_);
      ++idle_workers_;
      for (;;) {
        Time wake_at;
        now = clock_->Now();
        batch = FormBatch(now, &wake_at, &dropped);
        if (!batch.empty() || !dropped.empty()) break;
        if (stopping_ && queue_.empty()) {
          --idle_workers_;
          return;
        }
        if (wake_at == Time::max()) {
          cv_.Wait(&mu_);
        } else {
          clock_->WaitUntil(&cv_, &mu_, wake_at);
        }
      }
      --idle_workers_;
      // Others may be able to form a batch from what is left.
      if (!queue_.empty()) cv_.SignalAll();
    }
    CompleteDropped(dropped, now);  // outside the lock: callbacks answer requests
    if (batch.empty()) continue;
    Time started = clock_->Now();
    int64_t items = 0;
    for (auto& t : batch) items += t->batch_size();
    for (auto& t : batch) {
      t->timings().started = started;
      t->timings().executed_batch_size = items;
    }
    executor_(index, batch);
    for (auto& t : batch) {
      if (t && !t->completed()) t->Complete(InternalError("executor did not complete the request"));
    }
  }
}

}  // namespace inferd
