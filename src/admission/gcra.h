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
  // rate_per_s in [0.001, 10^6], burst in [1, 10^6] (checked by the config
  // parser): burst x interval stays below 10^18 ns.
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
