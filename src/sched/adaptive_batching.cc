#include "sched/adaptive_batching.h"

#include <algorithm>
#include <cmath>

namespace inferd {

void BatchCostModel::Add(int64_t items, Duration compute) {
  x_[next_] = static_cast<double>(items);
  y_[next_] = std::chrono::duration<double>(compute).count();
  next_ = (next_ + 1) % kWindow;
  count_ = std::min(count_ + 1, kWindow);
  Refit();
}

void BatchCostModel::Refit() {
  const double n = static_cast<double>(count_);
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < count_; ++i) {
    sx += x_[i];
    sy += y_[i];
    sxx += x_[i] * x_[i];
    sxy += x_[i] * y_[i];
  }
  if (sx > 0) mean_per_item_ = sy / sx;
  const double var = sxx / n - (sx / n) * (sx / n);
  if (count_ < 8 || var < 0.25) return;  // keep the last fit
  double b = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  double a = (sy - b * sx) / n;
  if (b < 0) {
    b = 0;
    a = sy / n;
  } else if (a < 0) {  // through the origin
    a = 0;
    b = sxy / sxx;
  }
  a_ = a;
  b_ = b;
  fitted_ = true;
}

double BatchCostModel::Predict(int64_t items) const {
  const double n = static_cast<double>(items);
  return fitted_ ? a_ + b_ * n : mean_per_item_ * n;
}

AdaptiveBatching::AdaptiveBatching(Options options)
    : options_(options),
      cap_(std::max<int64_t>(1, options.max_batch_size)),
      delay_(options.initial_delay) {}

void AdaptiveBatching::OnArrival(Time now, int64_t items) {
  rate_ = ItemRate(now) + static_cast<double>(items);  // tau = 1 s: +items/tau
  rate_at_ = now;
}

double AdaptiveBatching::ItemRate(Time now) const {
  if (rate_ == 0) return 0;
  const double dt = std::chrono::duration<double>(now - rate_at_).count();
  return rate_ * std::exp(-std::max(0.0, dt));
}

void AdaptiveBatching::OnBatch(int64_t items, Duration compute) {
  model_.Add(items, compute);
  Update();
}

void AdaptiveBatching::Update() {
  const double budget =
      (1 - options_.safety) * std::chrono::duration<double>(options_.latency_target).count();
  const int64_t max = std::max<int64_t>(1, options_.max_batch_size);
  // The largest n with 2 * compute(n) <= budget (compute grows with n).
  int64_t lo = 0, hi = max;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (2 * model_.Predict(mid) <= budget) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  infeasible_ = lo == 0;
  cap_ = std::max<int64_t>(1, lo);
  const double slack = std::max(0.0, budget - 2 * model_.Predict(cap_));
  delay_ = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(slack));
}

BatchPolicy AdaptiveBatching::Policy(Time now) const {
  BatchPolicy p;
  p.batching = true;
  p.max_batch_size = cap_;
  p.max_queue_delay = delay_;
  // Waiting only pays when more work is expected before the batch is due.
  if (delay_ > Duration::zero() &&
      ItemRate(now) * std::chrono::duration<double>(delay_).count() < 1) {
    p.max_queue_delay = Duration::zero();
  }
  return p;
}

}  // namespace inferd
