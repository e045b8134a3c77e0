#include "cache/write_behind.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace inferd {

StatusOr<std::unique_ptr<WriteBehindQueue>> WriteBehindQueue::Create(const Options& options,
                                                                     BatchWriter writer) {
  if (options.capacity < 1) {
    return InvalidArgumentError(options.name + ": the write queue capacity must be >= 1");
  }
  if (options.max_batch < 1) {
    return InvalidArgumentError(options.name + ": the write batch size must be >= 1");
  }
  if (!writer) return InvalidArgumentError(options.name + ": no batch writer");
  return std::unique_ptr<WriteBehindQueue>(new WriteBehindQueue(options, std::move(writer)));
}

WriteBehindQueue::WriteBehindQueue(const Options& options, BatchWriter writer)
    : options_(options), writer_fn_(std::move(writer)), writer_([this] { WriterLoop(); }) {}

WriteBehindQueue::~WriteBehindQueue() { Shutdown(); }

void WriteBehindQueue::Shutdown() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
  }
  queue_cv_.SignalAll();
  MutexLock j(&join_mu_);
  if (writer_.joinable()) writer_.join();
}

bool WriteBehindQueue::Push(PendingWrite item) {
  bool accepted = false;
  {
    MutexLock l(&mu_);
    accepted = !stopping_ && queue_.size() < options_.capacity;
    if (accepted) {
      queue_.push_back(std::move(item));
      ++enqueued_;
    } else {
      ++dropped_;
    }
  }
  if (accepted) {
    queue_cv_.Signal();
    return true;
  }
  int64_t suppressed = 0;
  if (drop_log_.ShouldLog(&suppressed)) {
    INFERD_LOG_WARN(
        "{}: write queue full ({} entries) or closed; write dropped ({} similar "
        "suppressed)",
        options_.name, options_.capacity, suppressed);
  }
  return false;
}

void WriteBehindQueue::TakeBatch(std::vector<PendingWrite>* batch) {
  MutexLock l(&mu_);
  if (paused_ && !stopping_) return;
  size_t n = 0, bytes = 0;
  while (n < queue_.size() && n < options_.max_batch &&
         (n == 0 || options_.max_batch_bytes == 0 || bytes < options_.max_batch_bytes)) {
    if (queue_[n].entry) bytes += queue_[n].entry->payload.size();
    ++n;
  }
  const auto end = queue_.begin() + static_cast<std::ptrdiff_t>(n);
  std::move(queue_.begin(), end, std::back_inserter(*batch));
  queue_.erase(queue_.begin(), end);
}

void WriteBehindQueue::WriterLoop() {
  std::vector<PendingWrite> batch;
  batch.reserve(options_.max_batch);
  for (;;) {
    {
      MutexLock l(&mu_);
      while (!stopping_ && (paused_ || queue_.empty())) queue_cv_.Wait(&mu_);
      if (queue_.empty()) return;  // stopping, and everything is written
    }
    // The batch is taken only once write_mu_ is held: DropIf then sees
    // every pushed item either still queued or already written.
    MutexLock w(&write_mu_);
    TakeBatch(&batch);
    if (batch.empty()) continue;  // paused, or DropIf emptied the queue meanwhile
    writer_fn_(batch);
    const uint64_t n = batch.size();
    batch.clear();
    {
      MutexLock l(&mu_);
      done_ += n;
      written_ += n;
    }
    done_cv_.SignalAll();
  }
}

size_t WriteBehindQueue::DropIf(const Predicate& pred, const std::function<void()>& then) {
  MutexLock w(&write_mu_);  // waits for the batch in flight
  size_t removed = 0;
  {
    MutexLock l(&mu_);
    auto it = std::remove_if(queue_.begin(), queue_.end(), pred);
    removed = static_cast<size_t>(queue_.end() - it);
    queue_.erase(it, queue_.end());
    done_ += removed;
    removed_ += removed;
  }
  if (removed > 0) done_cv_.SignalAll();
  if (then) then();  // before the writer may take another batch
  return removed;
}

void WriteBehindQueue::Flush() {
  MutexLock l(&mu_);
  const uint64_t target = enqueued_;
  while (done_ < target) done_cv_.Wait(&mu_);
}

void WriteBehindQueue::PauseForTesting(bool paused) {
  {
    MutexLock l(&mu_);
    paused_ = paused;
  }
  queue_cv_.SignalAll();
  if (paused) {
    MutexLock w(&write_mu_);  // the batch in flight, if any, is written
  }
}

WriteBehindQueue::Stats WriteBehindQueue::GetStats() {
  MutexLock l(&mu_);
  Stats s;
  s.enqueued = enqueued_;
  s.dropped = dropped_;
  s.written = written_;
  s.removed = removed_;
  s.queued = queue_.size();
  return s;
}

}  // namespace inferd
