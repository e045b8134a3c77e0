#pragma once
// Clock: the single source of time for everything time-dependent (batch
// delays, TTLs, deadlines, rate limits, keep-alive). Production code uses
// SystemClock; tests inject FakeClock and move time by hand, never sleeping.
//
// Threading: all methods are safe from any thread.

#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/mutex.h"

namespace inferd {

using Time = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for intervals and deadlines.
  virtual Time Now() = 0;
  // Wall-clock time in microseconds since the Unix epoch (for TTLs that must
  // survive a restart and for HTTP dates).
  virtual int64_t WallMicros() = 0;
  // The same two clocks as of the kernel's last tick (up to a few ms
  // behind), for times kept to the second or coarser (a model version's
  // last use, a cache entry's expiry and age): on this kind of VM a few ns
  // a read instead of ~35 (no TSC access). By default the precise ones.
  virtual Time CoarseNow() { return Now(); }
  virtual int64_t CoarseWallMicros() { return WallMicros(); }
  // Blocks on `cv` (with `mu` held) until signalled or until Now() reaches
  // `deadline`. Returns false when the deadline passed. Spurious wake-ups are
  // possible: callers re-check their condition in a loop.
  virtual bool WaitUntil(CondVar* cv, Mutex* mu, Time deadline) REQUIRES(mu) = 0;

  // The process-wide real clock.
  static Clock* System();
};

class SystemClock final : public Clock {
 public:
  Time Now() override { return std::chrono::steady_clock::now(); }
  int64_t WallMicros() override;
  Time CoarseNow() override;
  int64_t CoarseWallMicros() override;
  bool WaitUntil(CondVar* cv, Mutex* mu, Time deadline) override REQUIRES(mu);
};

// A clock that moves only when told to. Waiters registered through
// WaitUntil are woken whenever the time is advanced. The CondVar and Mutex
// given to WaitUntil must outlive any Advance() that may still signal them
// (in practice: the waiting object outlives the test's clock calls).
class FakeClock final : public Clock {
 public:
  explicit FakeClock(Time start = Time{} + std::chrono::hours(1),
                     int64_t wall_micros = 1'700'000'000'000'000)
      : now_(start), wall_(wall_micros) {}

  Time Now() override EXCLUDES(mu_);
  int64_t WallMicros() override EXCLUDES(mu_);
  bool WaitUntil(CondVar* cv, Mutex* mu, Time deadline) override REQUIRES(mu);

  void Advance(Duration d) EXCLUDES(mu_);

 private:
  Mutex mu_;
  Time now_ GUARDED_BY(mu_);
  int64_t wall_ GUARDED_BY(mu_);
  std::vector<std::pair<CondVar*, Mutex*>> waiters_ GUARDED_BY(mu_);
};

}  // namespace inferd
