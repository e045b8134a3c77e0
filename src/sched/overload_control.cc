#include "sched/overload_control.h"

#include <algorithm>
#include <cmath>

namespace inferd {
namespace {

int64_t InitialLimit(const OverloadControl::Options& o) {
  const int64_t min = std::max<int64_t>(1, o.min_limit);
  const int64_t max = std::max(min, o.max_limit);
  if (!o.adaptive) return max;
  return std::clamp(o.initial_limit > 0 ? o.initial_limit : 2 * min, min, max);
}

}  // namespace

OverloadControl::OverloadControl(Options options)
    : options_([&] {
        // A derived floor above the ceiling comes down to it.
        options.max_limit = std::max<int64_t>(1, options.max_limit);
        options.min_limit = std::clamp<int64_t>(options.min_limit, 1, options.max_limit);
        return options;
      }()),
      clock_(options_.clock ? options_.clock : Clock::System()),
      limit_(InitialLimit(options_)) {
  MutexLock l(&mu_);
  interval_start_ = clock_->Now();
  min_delay_.fill(Duration::max());
}

bool OverloadControl::TryAcquire() {
  int64_t used = in_use_.load(std::memory_order_relaxed);
  do {
    if (used >= limit_.load(std::memory_order_relaxed)) return false;
  } while (!in_use_.compare_exchange_weak(used, used + 1, std::memory_order_relaxed));
  int64_t peak = peak_in_use_.load(std::memory_order_relaxed);
  while (used + 1 > peak &&
         !peak_in_use_.compare_exchange_weak(peak, used + 1, std::memory_order_relaxed)) {
  }
  return true;
}

Duration OverloadControl::Target() const {
  if (options_.target > Duration::zero()) return options_.target;
  const auto compute =
      std::chrono::duration_cast<Duration>(std::chrono::duration<double>(2 * ewma_compute_s_));
  return std::max<Duration>(std::chrono::milliseconds(5), options_.batch_delay + compute);
}

void OverloadControl::OnBatch(Time started, const LevelDelays& min_queue_delay, int64_t items,
                              Duration compute) {
  MutexLock l(&mu_);
  const double c = std::chrono::duration<double>(compute).count();
  ewma_compute_s_ = ewma_compute_s_ == 0 ? c : 0.8 * ewma_compute_s_ + 0.2 * c;
  for (size_t l = 0; l < min_delay_.size(); ++l)
    min_delay_[l] = std::min(min_delay_[l], min_queue_delay[l]);
  interval_items_ += items;
  const auto floor =
      std::chrono::duration_cast<Duration>(std::chrono::duration<double>(2 * ewma_compute_s_));
  if (started - interval_start_ >= std::max(options_.interval, floor)) EndInterval(started);
}

void OverloadControl::EndInterval(Time now) {
  const double span = std::chrono::duration<double>(now - interval_start_).count();
  if (span > 0) {
    const double rate = static_cast<double>(interval_items_) / span;
    ewma_rate_ = ewma_rate_ == 0 ? rate : 0.5 * ewma_rate_ + 0.5 * rate;
  }
  // The largest of the levels' smallest delays (levels without samples
  // left out; none: no sample at all).
  Duration standing = Duration::min();
  for (Duration d : min_delay_)
    if (d != Duration::max()) standing = std::max(standing, d);
  const bool sampled = standing != Duration::min();
  if (sampled) standing_s_ = std::chrono::duration<double>(standing).count();
  const int64_t peak =
      peak_in_use_.exchange(in_use_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  if (options_.adaptive) {
    const int64_t limit = limit_.load(std::memory_order_relaxed);
    int64_t next = limit;
    if (!sampled) {
      // no request started: nothing learned
    } else if (standing > Target()) {
      next = static_cast<int64_t>(std::floor(options_.decrease * static_cast<double>(limit)));
    } else if (static_cast<double>(peak) >= 0.9 * static_cast<double>(limit)) {
      next = limit + static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(limit))));
    }
    limit_.store(std::clamp(next, options_.min_limit, options_.max_limit),
                 std::memory_order_relaxed);
  }
  interval_start_ = now;
  min_delay_.fill(Duration::max());
  interval_items_ = 0;
}

int64_t OverloadControl::RetryAfterSeconds() const {
  MutexLock l(&mu_);
  if (ewma_rate_ <= 0) return 1;
  const double s = static_cast<double>(in_use()) / ewma_rate_;
  return std::clamp<int64_t>(static_cast<int64_t>(std::ceil(s)), 1, 60);
}

OverloadControl::Stats OverloadControl::stats() const {
  MutexLock l(&mu_);
  Stats s;
  s.limit = limit();
  s.in_use = in_use();
  s.standing_delay_s = standing_s_;
  s.target_s = std::chrono::duration<double>(Target()).count();
  return s;
}

}  // namespace inferd
