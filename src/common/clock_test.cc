#include "common/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace inferd {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(FakeClockTest, StartsWhereToldAndMovesOnlyOnAdvance) {
  const Time start = Time{} + seconds(100);
  FakeClock clock(start, 5'000'000);
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.WallMicros(), 5'000'000);

  clock.Advance(milliseconds(250));
  EXPECT_EQ(clock.Now(), start + milliseconds(250));
  EXPECT_EQ(clock.WallMicros(), 5'250'000);

  clock.Advance(std::chrono::microseconds(1));
  EXPECT_EQ(clock.Now(), start + milliseconds(250) + std::chrono::microseconds(1));
  EXPECT_EQ(clock.WallMicros(), 5'250'001);
}

TEST(FakeClockTest, DefaultStartIsNotTheEpoch) {
  FakeClock clock;
  EXPECT_GT(clock.Now(), Time{});
  EXPECT_GT(clock.WallMicros(), 0);
}

TEST(FakeClockTest, WaitUntilReturnsFalseAtOnceWhenDeadlinePassed) {
  FakeClock clock;
  Mutex mu;
  CondVar cv;
  MutexLock l(&mu);
  EXPECT_FALSE(clock.WaitUntil(&cv, &mu, clock.Now()));
  EXPECT_FALSE(clock.WaitUntil(&cv, &mu, clock.Now() - seconds(1)));
}

// State shared between the test and a thread blocked in WaitUntil.
struct Waiter {
  Mutex mu;
  CondVar cv;        // passed to WaitUntil
  CondVar state_cv;  // signals changes of the fields below
  bool waiting GUARDED_BY(mu) = false;
  int wakeups GUARDED_BY(mu) = 0;  // WaitUntil calls that returned true
  bool timed_out GUARDED_BY(mu) = false;
  Time seen_at_timeout GUARDED_BY(mu);
};

// Runs in a thread: waits until `deadline`, re-waiting after every wake-up
// that happens before it (as real callers do).
void WaitForDeadline(FakeClock* clock, Waiter* w, Time deadline) {
  MutexLock l(&w->mu);
  w->waiting = true;
  w->state_cv.SignalAll();
  // `mu` stays held until WaitUntil blocks on `cv`, so once the test thread
  // holds `mu` and sees `waiting`, this thread is registered and blocked.
  while (clock->WaitUntil(&w->cv, &w->mu, deadline)) {
    ++w->wakeups;
    w->state_cv.SignalAll();
  }
  w->timed_out = true;
  w->seen_at_timeout = clock->Now();
  w->state_cv.SignalAll();
}

TEST(FakeClockTest, AdvancePastDeadlineWakesBlockedWaiter) {
  FakeClock clock;
  Waiter w;
  const Time deadline = clock.Now() + seconds(10);
  std::thread t(WaitForDeadline, &clock, &w, deadline);
  {
    MutexLock l(&w.mu);
    while (!w.waiting) w.state_cv.Wait(&w.mu);
    EXPECT_FALSE(w.timed_out);
  }
  clock.Advance(seconds(11));
  {
    MutexLock l(&w.mu);
    while (!w.timed_out) w.state_cv.Wait(&w.mu);
    EXPECT_GE(w.seen_at_timeout, deadline);
  }
  t.join();
}

TEST(FakeClockTest, AdvanceShortOfDeadlineDoesNotTimeOut) {
  FakeClock clock;
  Waiter w;
  const Time deadline = clock.Now() + seconds(10);
  std::thread t(WaitForDeadline, &clock, &w, deadline);
  {
    MutexLock l(&w.mu);
    while (!w.waiting) w.state_cv.Wait(&w.mu);
  }
  // Wakes the waiter, whose WaitUntil reports that the deadline has not passed.
  clock.Advance(seconds(4));
  {
    MutexLock l(&w.mu);
    while (w.wakeups == 0) w.state_cv.Wait(&w.mu);
    EXPECT_FALSE(w.timed_out);
  }
  // Exactly reaching the deadline ends the wait.
  clock.Advance(seconds(6));
  {
    MutexLock l(&w.mu);
    while (!w.timed_out) w.state_cv.Wait(&w.mu);
    EXPECT_EQ(w.seen_at_timeout, deadline);
  }
  t.join();
}

TEST(FakeClockTest, OneAdvanceWakesSeveralWaiters) {
  FakeClock clock;
  Waiter a;
  Waiter b;
  const Time now = clock.Now();
  std::thread ta(WaitForDeadline, &clock, &a, now + seconds(1));
  std::thread tb(WaitForDeadline, &clock, &b, now + seconds(2));
  for (Waiter* w : {&a, &b}) {
    MutexLock l(&w->mu);
    while (!w->waiting) w->state_cv.Wait(&w->mu);
  }
  clock.Advance(seconds(5));
  for (Waiter* w : {&a, &b}) {
    MutexLock l(&w->mu);
    while (!w->timed_out) w->state_cv.Wait(&w->mu);
  }
  ta.join();
  tb.join();
}

TEST(SystemClockTest, IsMonotonicAndWallClockIsPlausible) {
  Clock* clock = Clock::System();
  ASSERT_NE(clock, nullptr);
  EXPECT_EQ(clock, Clock::System());
  Time a = clock->Now();
  Time b = clock->Now();
  EXPECT_LE(a, b);
  // After 2020-01-01 in microseconds.
  EXPECT_GT(clock->WallMicros(), int64_t{1'577'836'800'000'000});
}

TEST(SystemClockTest, TheCoarseClocksRunOnThePreciseOnesLinesAtMostATickBehind) {
  Clock* clock = Clock::System();
  // A coarse read is the time of the last tick: never ahead of a precise
  // read taken after it, and behind one taken before it by at most a tick
  // (a second is far more than any tick; the wrong time line, such as the
  // wall clock for the monotonic one, would be off by years).
  const Time before = clock->Now();
  const Time coarse = clock->CoarseNow();
  const Time after = clock->Now();
  EXPECT_LE(coarse, after);
  EXPECT_LT(before - coarse, seconds(1));
  const int64_t wall_before = clock->WallMicros();
  const int64_t coarse_wall = clock->CoarseWallMicros();
  const int64_t wall_after = clock->WallMicros();
  EXPECT_LE(coarse_wall, wall_after);
  EXPECT_LT(wall_before - coarse_wall, int64_t{1'000'000});
}

TEST(FakeClockTest, TheCoarseClocksAreThePreciseOnes) {
  FakeClock clock;
  clock.Advance(milliseconds(3));
  EXPECT_EQ(clock.CoarseNow(), clock.Now());
  EXPECT_EQ(clock.CoarseWallMicros(), clock.WallMicros());
}

TEST(SystemClockTest, WaitUntilPastDeadlineReturnsFalse) {
  Clock* clock = Clock::System();
  Mutex mu;
  CondVar cv;
  MutexLock l(&mu);
  EXPECT_FALSE(clock->WaitUntil(&cv, &mu, clock->Now() - seconds(1)));
}

}  // namespace
}  // namespace inferd
