#include "common/clock.h"

#include <time.h>

namespace inferd {

Clock* Clock::System() {
  static SystemClock* clock = new SystemClock();
  return clock;
}

int64_t SystemClock::WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// CLOCK_MONOTONIC_COARSE runs on CLOCK_MONOTONIC's (steady_clock's) time
// line, CLOCK_REALTIME_COARSE on CLOCK_REALTIME's: both read the time of
// the last tick, without a TSC access.
Time SystemClock::CoarseNow() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return Time(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

int64_t SystemClock::CoarseWallMicros() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

bool SystemClock::WaitUntil(CondVar* cv, Mutex* mu, Time deadline) {
  return cv->WaitUntil(mu, deadline);
}

Time FakeClock::Now() {
  MutexLock l(&mu_);
  return now_;
}

int64_t FakeClock::WallMicros() {
  MutexLock l(&mu_);
  return wall_;
}

bool FakeClock::WaitUntil(CondVar* cv, Mutex* mu, Time deadline) {
  {
    MutexLock l(&mu_);
    if (now_ >= deadline) return false;
    waiters_.emplace_back(cv, mu);
  }
  // Advance() takes `mu` before signalling, so the wake-up cannot slip in
  // between the registration above and the wait below.
  cv->Wait(mu);
  MutexLock l(&mu_);
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    if (it->first == cv && it->second == mu) {
      waiters_.erase(it);
      break;
    }
  }
  return now_ < deadline;
}

void FakeClock::Advance(Duration d) NO_THREAD_SAFETY_ANALYSIS {
  std::vector<std::pair<CondVar*, Mutex*>> waiters;
  {
    MutexLock l(&mu_);
    now_ += d;
    wall_ += std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    waiters = waiters_;
  }
  for (auto& [cv, mu] : waiters) {
    MutexLock l(mu);
    cv->SignalAll();
  }
}

}  // namespace inferd
