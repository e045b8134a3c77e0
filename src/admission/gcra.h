#pragma once
// GcraLimiter: the generic cell rate algorithm (as in redis-cell and
// Stripe's limiter): a rate and a burst, kept as one atomic "theoretical
// arrival time" (TAT), in nanoseconds of the injected Clock's Now().
//
//   T = 1 s / rate (the emission interval), tau = burst * T (the tolerance)
//   Take(now): new = max(TAT, now) + T; allowed iff new - now <= tau, and
//   then TAT = new.
//
// From a full bucket it allows exactly `burst` requests at one instant, then
// one every T: over W seconds of overload, burst + floor(W / T). No timer,
// no lock; the bucket refills by the passing of time alone.
//
// Threading: every method is lock-free and safe from any thread.

#include <atomic>
#include <cstdint>

#include "common/clock.h"

namespace inferd {

class GcraLimiter {
 public:
  // The bounds the config parser and Admission::Create check: at least one
  // request per 1000 s and a burst up to 10^6 keep the tolerance (burst x
  // interval) below 10^18 ns, inside int64.
  static constexpr double kMinRate = 0.001;
  static constexpr double kMaxRate = 1e6;
  static constexpr int64_t kMaxBurst = 1000000;
  static bool ValidRate(double r) { return r >= kMinRate && r <= kMaxRate; }  // false for NaN

  // rate_per_s and burst within the bounds above.
  GcraLimiter(double rate_per_s, int64_t burst);
  GcraLimiter(const GcraLimiter&) = delete;
  GcraLimiter& operator=(const GcraLimiter&) = delete;

  struct Decision {
    bool allowed = false;
    int64_t remaining = 0;   // requests allowed right now after this one, 0..burst
    Duration retry_after{};  // refused: until one would be allowed
    Duration reset_after{};  // until the bucket is full again
  };
  Decision Take(Time now);
  // The state without taking (for headers after a refusal elsewhere).
  Decision Peek(Time now) const;
  // Undoes one allowed Take (another limit of the same request refused).
  void Refund();

  double rate_per_s() const { return rate_per_s_; }
  int64_t burst() const { return burst_; }

 private:
  Decision Judge(int64_t tat, int64_t now) const;

  const double rate_per_s_;
  const int64_t burst_;
  const int64_t interval_ns_;   // T
  const int64_t tolerance_ns_;  // tau
  std::atomic<int64_t> tat_ns_{INT64_MIN};
};

}  // namespace inferd
