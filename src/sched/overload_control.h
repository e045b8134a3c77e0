#pragma once
// OverloadControl: an adaptive limit on one model's queued plus running
// requests (docs/design-admission.md section 8). A request takes a slot
// before it is decoded and gives it back when it is answered; with no slot
// free it is shed (503 + Retry-After) or pushes out lower-priority work.
//
// The controller is CoDel's idea driving an AIMD limit. Each interval,
// the standing delay is the smallest queueing delay (taken off the queue
// minus enqueued) of the requests started in it: with a standing queue even
// the luckiest request waits. With priority levels it is the largest of the
// levels' smallest delays, since high-priority requests skip the queue and
// would hide a standing queue of low ones. Then:
//   standing > target               -> limit = max(min, floor(0.8 * limit))
//   else, demand reached the limit  -> limit = min(max, limit + ceil(sqrt(limit)))
//   no batch in the interval        -> no change
// "Demand reached" is a peak in-use of at least 90% of the limit. Chosen
// over Gradient2: with batching, latency grows with the batch size, which a
// latency gradient reads as congestion; the minimum queueing delay only
// grows with a standing queue. The target defaults to max(5 ms, batch delay
// + 2 x the average batch compute time) and the interval to
// max(interval, 2 x that compute time), so that a queue one batch deep is
// never read as standing.
//
// Threading: TryAcquire/ForceAcquire/Release are lock-free (atomics);
// OnBatch takes the controller's own lock, never while another lock is
// held.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "common/clock.h"
#include "common/mutex.h"

namespace inferd {

class OverloadControl {
 public:
  struct Options {
    bool adaptive = true;       // false: the limit stays at max_limit
    int64_t min_limit = 1;      // the limit never falls below (>= 1)
    int64_t max_limit = 1024;   // nor rises above (>= min_limit)
    int64_t initial_limit = 0;  // 0: 2 x min_limit
    Duration target{0};         // 0: derived (above)
    Duration interval = std::chrono::milliseconds(100);
    Duration batch_delay{0};  // the batcher's queue delay (for the target)
    double decrease = 0.8;
    Clock* clock = nullptr;  // default: Clock::System()
  };
  explicit OverloadControl(Options options);

  // Takes a slot if one is free.
  bool TryAcquire();
  // Takes a slot over the limit (after pushing out queued work).
  void ForceAcquire() { in_use_.fetch_add(1, std::memory_order_relaxed); }
  void Release() { in_use_.fetch_sub(1, std::memory_order_relaxed); }

  static constexpr int kLevels = 16;
  using LevelDelays = std::array<Duration, kLevels>;  // Duration::max(): no sample
  // After each batch: when it was taken off the queue, the smallest
  // queueing delay of its tasks at each priority level (index level - 1),
  // its items and its compute time.
  void OnBatch(Time started, const LevelDelays& min_queue_delay, int64_t items, Duration compute)
      EXCLUDES(mu_);

  // How long a shed client should wait: the time to serve what is in use
  // at the measured rate, 1 to 60 s.
  int64_t RetryAfterSeconds() const EXCLUDES(mu_);

  struct Stats {
    int64_t limit = 0;
    int64_t in_use = 0;
    double standing_delay_s = 0;  // of the last interval with batches
    double target_s = 0;
  };
  Stats stats() const EXCLUDES(mu_);
  int64_t limit() const { return limit_.load(std::memory_order_relaxed); }
  int64_t in_use() const { return in_use_.load(std::memory_order_relaxed); }

 private:
  Duration Target() const REQUIRES(mu_);
  void EndInterval(Time now) REQUIRES(mu_);

  const Options options_;
  Clock* const clock_;
  std::atomic<int64_t> limit_;
  std::atomic<int64_t> in_use_{0};
  std::atomic<int64_t> peak_in_use_{0};
  mutable Mutex mu_;
  Time interval_start_ GUARDED_BY(mu_){};
  LevelDelays min_delay_ GUARDED_BY(mu_);
  int64_t interval_items_ GUARDED_BY(mu_) = 0;
  double ewma_compute_s_ GUARDED_BY(mu_) = 0;  // per batch
  double ewma_rate_ GUARDED_BY(mu_) = 0;       // items per second
  double standing_s_ GUARDED_BY(mu_) = 0;
};

// A slot of an OverloadControl, given back once (Release or destruction).
// Empty: a scheduler without overload control.
class OverloadSlot {
 public:
  OverloadSlot() = default;
  explicit OverloadSlot(std::shared_ptr<OverloadControl> control) : control_(std::move(control)) {}
  OverloadSlot(OverloadSlot&& o) noexcept : control_(std::move(o.control_)) {}
  OverloadSlot& operator=(OverloadSlot&& o) noexcept {
    if (this != &o) {
      Release();
      control_ = std::move(o.control_);
    }
    return *this;
  }
  ~OverloadSlot() { Release(); }
  void Release() {
    if (control_) control_->Release();
    control_.reset();
  }

 private:
  std::shared_ptr<OverloadControl> control_;
};

}  // namespace inferd
