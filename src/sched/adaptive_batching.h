#pragma once
// Adaptive batching (docs/design-admission.md section 9): the batcher picks
// its batch cap and queue delay from an online model of batch latency
// against batch size, so that throughput is as high as it can be while the
// oldest request's queue plus compute time stays under a latency target.
//
// Model: compute(n) = a + b * n, least squares over the last 64 batches
// (refitted from the ring each time, so nothing drifts). A fit needs 8
// batches of at least two sizes (variance of the sizes >= 0.25); until the
// first, the estimate is proportional to the mean cost per item; a window
// of one size keeps the previous fit. A negative a refits through the
// origin; a negative b is taken as 0 (cost independent of size).
//
// Rule, with B = (1 - safety) * latency_target: the oldest request may
// wait for an instance's batch in progress and then run its own, so
//   cap   = the largest n <= max_batch_size with 2 * compute(n) <= B
//           (1, and "infeasible", when even one item cannot meet it);
//   delay = B - 2 * compute(cap), or 0 when fewer than one item is
//           expected to arrive before it (waiting would buy nothing).
// Throughput n / (a + b n) grows with n, so the largest feasible cap gives
// the most. Arrivals: an exponentially decayed item rate (tau = 1 s).
//
// Not thread-safe: the batcher's lock guards it.

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/clock.h"
#include "sched/batch_policy.h"

namespace inferd {

class BatchCostModel {
 public:
  static constexpr size_t kWindow = 64;
  void Add(int64_t items, Duration compute);
  // Predicted compute time of a batch of `items`, in seconds (0 before
  // any batch).
  double Predict(int64_t items) const;
  double a() const { return a_; }
  double b() const { return b_; }
  bool fitted() const { return fitted_; }
  size_t samples() const { return count_; }

 private:
  void Refit();
  std::array<double, kWindow> x_{};
  std::array<double, kWindow> y_{};
  size_t count_ = 0;
  size_t next_ = 0;
  bool fitted_ = false;
  double a_ = 0;
  double b_ = 0;
  double mean_per_item_ = 0;  // before the first fit
};

class AdaptiveBatching {
 public:
  struct Options {
    Duration latency_target{};  // L (> 0)
    int64_t max_batch_size = 1;
    Duration initial_delay{};  // the queue delay before any batch ran
    double safety = 0.2;
  };
  explicit AdaptiveBatching(Options options);

  void OnArrival(Time now, int64_t items);
  void OnBatch(int64_t items, Duration compute);
  // The policy for ChooseBatch now.
  BatchPolicy Policy(Time now) const;

  int64_t cap() const { return cap_; }
  Duration delay() const { return delay_; }
  bool infeasible() const { return infeasible_; }
  const BatchCostModel& model() const { return model_; }

 private:
  void Update();
  double ItemRate(Time now) const;

  const Options options_;
  BatchCostModel model_;
  int64_t cap_;
  Duration delay_;
  bool infeasible_ = false;
  double rate_ = 0;  // items per second, decayed to rate_at_
  Time rate_at_{};
};

}  // namespace inferd
