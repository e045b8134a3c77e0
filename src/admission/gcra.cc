#include "admission/gcra.h"

#include <algorithm>
#include <cmath>

namespace inferd {
namespace {

int64_t Ns(Time t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

GcraLimiter::GcraLimiter(double rate_per_s, int64_t burst)
    : rate_per_s_(rate_per_s),
      burst_(burst),
      interval_ns_(std::max<int64_t>(1, std::llround(1e9 / rate_per_s))),
      tolerance_ns_(burst * interval_ns_) {}

// `tat` is the TAT the request would leave (max(TAT, now) + T).
GcraLimiter::Decision GcraLimiter::Judge(int64_t tat, int64_t now) const {
  Decision d;
  const int64_t ahead = tat - now;  // > 0
  d.allowed = ahead <= tolerance_ns_;
  if (d.allowed) {
    d.remaining = (tolerance_ns_ - ahead) / interval_ns_;
    d.reset_after = std::chrono::nanoseconds(ahead);
  } else {
    d.remaining = 0;
    d.retry_after = std::chrono::nanoseconds(ahead - tolerance_ns_);
    d.reset_after = std::chrono::nanoseconds(ahead - interval_ns_);
  }
  return d;
}

GcraLimiter::Decision GcraLimiter::Take(Time now_time) {
  const int64_t now = Ns(now_time);
  int64_t tat = tat_ns_.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t next = std::max(tat, now) + interval_ns_;
    Decision d = Judge(next, now);
    if (!d.allowed) return d;
    if (tat_ns_.compare_exchange_weak(tat, next, std::memory_order_relaxed)) return d;
  }
}

GcraLimiter::Decision GcraLimiter::Peek(Time now_time) const {
  const int64_t now = Ns(now_time);
  const int64_t tat = std::max(tat_ns_.load(std::memory_order_relaxed), now);
  Decision d = Judge(tat + interval_ns_, now);
  // What is left now, not after one more.
  if (d.allowed) {
    d.remaining += 1;
    d.reset_after = std::chrono::nanoseconds(tat - now);
  }
  return d;
}

void GcraLimiter::Refund() { tat_ns_.fetch_sub(interval_ns_, std::memory_order_relaxed); }

}  // namespace inferd
