#include "sched/dynamic_batcher.h"

#include <algorithm>
#include <optional>
#include <thread>

#include "common/mutex.h"
#include "sched/adaptive_batching.h"
#include "sched/batch_policy.h"
#include "sched/priority_fair_queue.h"

namespace inferd {

// The queue the executor serves. Holds the tasks, the free instances and
// the batching state; shared between the DynamicBatcher (its owner) and the
// executor threads running its batches.
class DynamicBatcher::Queue final : public Executor::Queue {
 public:
  Queue(Options options, RunBatch run, Executor* executor, Clock* clock)
      : options_(std::move(options)),
        run_(std::move(run)),
        executor_(executor),
        clock_(clock),
        queue_(PriorityFairQueue::Options{options_.priority_levels, options_.lower_level_share,
                                          options_.max_queue_size, options_.max_level_size}) {
    if (options_.batching && options_.adaptive) {
      adaptive_.emplace(AdaptiveBatching::Options{options_.latency_target, options_.max_batch_size,
                                                  options_.max_queue_delay});
    }
    if (options_.overload_control) {
      OverloadControl::Options oo = options_.overload;
      oo.clock = clock_;
      oo.batch_delay = options_.batching ? options_.max_queue_delay : Duration::zero();
      overload_ = std::make_shared<OverloadControl>(oo);
    }
    for (int i = options_.num_workers - 1; i >= 0; --i) free_.push_back(i);
  }

  Status Enqueue(std::unique_ptr<Task>& task) EXCLUDES(mu_) {
    if (options_.batching && task->batch_size() > options_.max_batch_size) {
      return InvalidArgumentError("batch size " + std::to_string(task->batch_size()) +
                                  " exceeds max_batch_size " +
                                  std::to_string(options_.max_batch_size));
    }
    {
      MutexLock l(&mu_);
      if (stopping_) return UnavailableError("the server is shutting down");
      const Time now = clock_->Now();
      task->timings().enqueued = now;
      const int64_t items = task->batch_size();
      INFERD_RETURN_IF_ERROR(queue_.Push(task));
      if (adaptive_) adaptive_->OnArrival(now, items);
    }
    executor_->Notify();
    return Status::OK();
  }

  bool TakeWork(Time now, Time* wake_at, Executor::Work* work) override EXCLUDES(mu_) {
    MutexLock l(&mu_);
    // Work that may no longer run leaves first; the executor wakes at the
    // earliest deadline still queued, so expired work is answered on time.
    const Time earliest_deadline = TakeDropped(now, &work->dropped);
    *wake_at = earliest_deadline;
    if (!free_.empty() && !queue_.empty()) {
      const BatchPolicy policy =
          adaptive_ ? adaptive_->Policy(now)
                    : BatchPolicy{options_.batching, options_.max_batch_size,
                                  options_.max_queue_delay, options_.preferred_batch_sizes};
      const int idle = static_cast<int>(free_.size());
      queue_.View(options_.batching ? 4 * static_cast<size_t>(options_.max_batch_size) : 1, &view_,
                  &refs_);
      BatchChoice choice =
          ChooseBatch(view_, now, policy, idle, stopping_ || flushing_ || handoffs_ > 0);
      *wake_at = std::min(choice.wake_at, earliest_deadline);
      if (!choice.picked.empty()) {
        if (choice.share_left) {
          handoffs_ = idle - 1;  // the other free instances take their shares at once
        } else if (handoffs_ > 0) {
          --handoffs_;
        }
        queue_.Take(refs_, choice.picked, &work->batch);
        if (queue_.empty()) handoffs_ = 0;
        work->instance = free_.back();
        free_.pop_back();
      }
    }
    if (work->batch.empty() && work->dropped.empty()) return false;
    ++running_;
    return true;
  }

  void RunWork(Executor::Work& work) override EXCLUDES(mu_) {
    const Time now = clock_->Now();
    CompleteDropped(work.dropped, now);  // outside the lock: callbacks answer requests
    if (!work.batch.empty()) {
      int64_t items = 0;
      for (auto& t : work.batch) items += t->batch_size();
      for (auto& t : work.batch) {
        t->timings().started = now;
        t->timings().executed_batch_size = items;
      }
      OverloadControl::LevelDelays min_delay;
      min_delay.fill(Duration::max());
      for (auto& t : work.batch) {
        const size_t l =
            static_cast<size_t>(std::clamp(t->queue_key().level, 1, OverloadControl::kLevels) - 1);
        min_delay[l] = std::min(min_delay[l], now - t->timings().enqueued);
      }
      run_(work.instance, work.batch);
      // The backend's time for the batch, as the runner recorded it.
      Duration compute{};
      for (auto& t : work.batch) {
        if (!t) continue;
        const TaskTimings& tt = t->timings();
        if (tt.finished > tt.compute_started)
          compute = std::max(compute, tt.finished - tt.compute_started);
      }
      if (overload_) overload_->OnBatch(now, min_delay, items, compute);
      if (compute > Duration::zero()) {
        MutexLock l(&mu_);
        if (adaptive_) adaptive_->OnBatch(items, compute);
      }
      for (auto& t : work.batch) {
        if (t && !t->completed())
          t->Complete(InternalError("executor did not complete the request"));
      }
    }
    {
      MutexLock l(&mu_);
      if (work.instance >= 0) free_.push_back(work.instance);
      --running_;
      if (queue_.empty() && running_ == 0) idle_cv_.SignalAll();
    }
    if (work.instance >= 0) executor_->Notify();  // an instance is free again
  }

  size_t depth() EXCLUDES(mu_) {
    MutexLock l(&mu_);
    return queue_.size();
  }

  StatusOr<OverloadSlot> Reserve(const QueueKey& key, int64_t* retry_after_s) EXCLUDES(mu_) {
    if (!overload_ || overload_->TryAcquire()) return OverloadSlot(overload_);
    std::unique_ptr<Task> victim;
    {
      MutexLock l(&mu_);
      victim = queue_.EvictWorseThan(key);
      if (victim) ++dropped_;
      // A Stop(wait) may be waiting for the queue to empty.
      if (victim && queue_.empty() && running_ == 0) idle_cv_.SignalAll();
    }
    if (victim) {
      overload_->ForceAcquire();
      victim->timings().drop_cause = DropCause::kEvicted;
      victim->Complete(UnavailableError("overloaded: shed for higher-priority work"));
      return OverloadSlot(overload_);
    }
    *retry_after_s = overload_->RetryAfterSeconds();
    return UnavailableError("overloaded (" + std::to_string(overload_->in_use()) +
                            " requests queued or running): retry after " +
                            std::to_string(*retry_after_s) + " s");
  }

  AdaptiveStats adaptive_stats() EXCLUDES(mu_) {
    MutexLock l(&mu_);
    AdaptiveStats s;
    if (!adaptive_) return s;
    s.enabled = true;
    s.cap = adaptive_->cap();
    s.delay_s = std::chrono::duration<double>(adaptive_->delay()).count();
    s.infeasible = adaptive_->infeasible();
    s.fixed_s = adaptive_->model().a();
    s.per_item_s = adaptive_->model().b();
    return s;
  }

  OverloadControl::Stats overload_stats() {
    return overload_ ? overload_->stats() : OverloadControl::Stats{};
  }

  void CountByTenant(std::vector<int64_t>* out) EXCLUDES(mu_) {
    MutexLock l(&mu_);
    queue_.CountByTenant(out);
  }

  size_t depth(int level) EXCLUDES(mu_) {
    MutexLock l(&mu_);
    return queue_.level_size(level);
  }

  void DropCancelled() EXCLUDES(mu_) {
    TaskBatch dropped;
    const Time now = clock_->Now();
    {
      MutexLock l(&mu_);
      TakeDropped(now, &dropped);
      if (queue_.empty() && running_ == 0) idle_cv_.SignalAll();
    }
    CompleteDropped(dropped, now);
  }

  void Flush() EXCLUDES(mu_) {
    {
      MutexLock l(&mu_);
      flushing_ = true;
    }
    executor_->Notify();
  }

  // Refuses new work; with `wait`, returns once the queue is empty and
  // nothing runs.
  void Stop(bool wait) EXCLUDES(mu_) {
    {
      MutexLock l(&mu_);
      stopping_ = true;
    }
    executor_->Notify();
    if (!wait) return;
    MutexLock l(&mu_);
    while (!queue_.empty() || running_ > 0) idle_cv_.Wait(&mu_);
  }

  uint64_t dropped() EXCLUDES(mu_) {
    MutexLock l(&mu_);
    return dropped_;
  }

 private:
  // Moves the tasks that may no longer run to *dropped; returns when the
  // next one may.
  Time TakeDropped(Time now, TaskBatch* dropped) REQUIRES(mu_) {
    const size_t before = dropped->size();
    const Time next = queue_.TakeDropped(now, dropped);
    dropped_ += dropped->size() - before;
    return next;
  }

  static void CompleteDropped(TaskBatch& dropped, Time now) {
    for (auto& t : dropped) {
      Status reason = t->DropReason(now);
      t->timings().drop_cause = reason.code() == StatusCode::kDeadlineExceeded
                                    ? DropCause::kExpired
                                    : DropCause::kCancelled;
      t->Complete(std::move(reason));
    }
  }

  const Options options_;
  std::shared_ptr<OverloadControl> overload_;  // null: off
  const RunBatch run_;
  Executor* const executor_;
  Clock* const clock_;
  Mutex mu_;
  CondVar idle_cv_;
  PriorityFairQueue queue_ GUARDED_BY(mu_);
  std::optional<AdaptiveBatching> adaptive_ GUARDED_BY(mu_);
  std::vector<const Task*> view_ GUARDED_BY(mu_);  // TakeWork's scratch
  std::vector<PriorityFairQueue::Ref> refs_ GUARDED_BY(mu_);
  std::vector<int> free_ GUARDED_BY(mu_);  // instances not running a batch
  int running_ GUARDED_BY(mu_) = 0;        // units of work taken and not yet finished
  bool stopping_ GUARDED_BY(mu_) = false;
  bool flushing_ GUARDED_BY(mu_) = false;
  // Batches still to dispatch at once because an instance took its fair
  // share of a queue that several free instances split (share_left).
  int handoffs_ GUARDED_BY(mu_) = 0;
  uint64_t dropped_ GUARDED_BY(mu_) = 0;
};

StatusOr<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(Options options, RunBatch run) {
  if (options.max_batch_size < 1) return InvalidArgumentError("max_batch_size must be >= 1");
  if (options.num_workers < 1) return InvalidArgumentError("num_workers must be >= 1");
  if (options.max_queue_size < 1) return InvalidArgumentError("max_queue_size must be >= 1");
  for (int64_t p : options.preferred_batch_sizes) {
    if (p < 1 || p > options.max_batch_size) {
      return InvalidArgumentError("preferred batch size " + std::to_string(p) +
                                  " is outside [1, max_batch_size]");
    }
  }
  if (options.priority_levels < 1 || options.priority_levels > PriorityFairQueue::kMaxLevels) {
    return InvalidArgumentError("priority_levels must be in [1, " +
                                std::to_string(PriorityFairQueue::kMaxLevels) + "]");
  }
  if (!(options.lower_level_share == 0 ||
        (options.lower_level_share >= 0.001 && options.lower_level_share <= 0.5)))
    return InvalidArgumentError("lower_level_share must be 0 or in [0.001, 0.5]");
  if (options.max_batch_size > (int64_t{1} << 24))
    return InvalidArgumentError("max_batch_size must be <= 2^24");
  if (options.adaptive && options.latency_target <= Duration::zero())
    return InvalidArgumentError("adaptive batching needs a latency target");
  if (!run) return InvalidArgumentError("a batch runner is required");
  std::unique_ptr<Executor> own;
  Executor* executor = options.executor;
  if (!executor) {
    Executor::Options eo;
    eo.threads = options.num_workers;
    eo.clock = options.clock;
    INFERD_ASSIGN_OR_RETURN(own, Executor::Create(eo));
    executor = own.get();
  }
  Clock* clock = options.clock ? options.clock : executor->clock();
  auto queue = std::make_shared<Queue>(std::move(options), std::move(run), executor, clock);
  executor->Add(queue);
  return std::unique_ptr<DynamicBatcher>(new DynamicBatcher(std::move(own), executor, queue));
}

DynamicBatcher::DynamicBatcher(std::unique_ptr<Executor> own, Executor* executor,
                               std::shared_ptr<Queue> queue)
    : own_executor_(std::move(own)), executor_(executor), queue_(std::move(queue)) {}

DynamicBatcher::~DynamicBatcher() {
  Shutdown();
  executor_->Remove(queue_.get());
  if (own_executor_ && Executor::OnExecutorThread()) {
    // Released by a batch running on our own executor: joining its threads
    // here would join this one. Another thread stops it; this thread
    // returns from the batch and then sees the stop.
    std::thread([e = std::move(own_executor_)]() mutable { e.reset(); }).detach();
  }
}

Status DynamicBatcher::Schedule(std::unique_ptr<Task>& task) { return queue_->Enqueue(task); }
size_t DynamicBatcher::queue_depth() { return queue_->depth(); }
size_t DynamicBatcher::queue_depth(int level) { return queue_->depth(level); }
StatusOr<OverloadSlot> DynamicBatcher::Reserve(const QueueKey& key, int64_t* retry_after_s) {
  return queue_->Reserve(key, retry_after_s);
}
OverloadControl::Stats DynamicBatcher::overload_stats() { return queue_->overload_stats(); }
AdaptiveStats DynamicBatcher::adaptive_stats() { return queue_->adaptive_stats(); }
void DynamicBatcher::CountByTenant(std::vector<int64_t>* out) { queue_->CountByTenant(out); }
void DynamicBatcher::DropCancelled() { queue_->DropCancelled(); }
void DynamicBatcher::Flush() { queue_->Flush(); }
uint64_t DynamicBatcher::dropped() { return queue_->dropped(); }

void DynamicBatcher::Shutdown() {
  // An executor thread must not wait for the queue it may be running.
  queue_->Stop(/*wait=*/!Executor::OnExecutorThread());
}

}  // namespace inferd
