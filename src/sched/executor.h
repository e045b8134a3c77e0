#pragma once
// Executor: the one pool of compute threads shared by every model (TF
// Serving's SharedBatchScheduler is the anchor), sized to the cores by
// default, so that many models never oversubscribe them.
//
// Work comes from Queues (one per model version: its scheduler). An idle
// thread polls the queues round-robin, starting after the one it served
// last, and runs the first unit of work that is due; so every model with due
// work gets a turn, whatever the others queue. When nothing is due, the
// threads sleep until the earliest time a queue named (a batch delay, a
// deadline) or until Notify(). Time comes from the injected Clock.
//
// Lifetime: the executor holds each added queue by shared_ptr until
// Remove(), and a thread running a queue's work holds it until that work
// returns, so a queue (and whatever its work captures, such as backend
// instances) may be released by its owner on any thread, an executor
// thread included, while its last batch still runs.
//
// Threading: every method is safe from any thread. Lock order: the
// executor's lock, then a queue's own (TakeWork runs under the first).

#include <memory>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "sched/task.h"

namespace inferd {

class Executor {
 public:
  struct Options {
    int threads = 0;         // 0: one per core (std::thread::hardware_concurrency)
    Clock* clock = nullptr;  // default: Clock::System()
  };

  // A unit of work: a batch to run on backend instance `instance`, and tasks
  // to answer without running (cancelled, or past their deadline).
  struct Work {
    TaskBatch batch;
    TaskBatch dropped;
    int instance = -1;
  };

  class Queue {
   public:
    virtual ~Queue() = default;
    // From an executor thread, under the executor's lock: moves the next
    // unit of work that is due at `now` into *work and returns true; else
    // sets *wake_at to when some will be (Time::max(): only on Notify).
    virtual bool TakeWork(Time now, Time* wake_at, Work* work) = 0;
    // Runs what TakeWork took, on the same thread, without the lock; must
    // complete every task in it.
    virtual void RunWork(Work& work) = 0;
  };

  static StatusOr<std::unique_ptr<Executor>> Create(const Options& options);
  ~Executor();  // Stop()

  void Add(std::shared_ptr<Queue> queue) EXCLUDES(mu_);
  // No more work is taken from `queue`; work already taken runs to its end.
  void Remove(const Queue* queue) EXCLUDES(mu_);
  // Work arrived or became runnable (an instance came free): wake a thread.
  void Notify() EXCLUDES(mu_);
  // Stops the threads once they finish what they run; queued work stays.
  void Stop() EXCLUDES(mu_);

  int threads() const { return static_cast<int>(threads_.size()); }
  Clock* clock() const { return clock_; }
  // True on an executor's thread (where waiting for queued work to drain
  // would wait for this very thread).
  static bool OnExecutorThread();

 private:
  explicit Executor(Clock* clock) : clock_(clock) {}
  void Loop() EXCLUDES(mu_);
  // Waits until some queue hands out work (true) or Stop() (false).
  bool Next(std::shared_ptr<Queue>* queue, Work* work) EXCLUDES(mu_);

  Clock* const clock_;
  Mutex mu_;
  CondVar cv_;
  std::vector<std::shared_ptr<Queue>> queues_ GUARDED_BY(mu_);
  size_t cursor_ GUARDED_BY(mu_) = 0;  // where the next poll starts
  bool stop_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace inferd
