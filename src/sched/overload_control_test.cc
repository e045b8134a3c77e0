#include "sched/overload_control.h"

#include <gtest/gtest.h>

namespace inferd {
namespace {

using std::chrono::milliseconds;

OverloadControl::Options Opts(FakeClock* clock) {
  OverloadControl::Options o;
  o.min_limit = 16;
  o.max_limit = 1040;
  o.initial_limit = 256;
  o.target = milliseconds(50);
  o.interval = milliseconds(100);
  o.clock = clock;
  return o;
}

// One interval of batches: every batch's smallest queueing delay is
// `delay`; `busy` slots are held during it.
void Interval(FakeClock& clock, OverloadControl& c, Duration delay, int64_t busy) {
  for (int64_t i = 0; i < busy; ++i) ASSERT_TRUE(c.TryAcquire() || (c.ForceAcquire(), true));
  for (int b = 0; b < 4; ++b) {
    clock.Advance(milliseconds(25));
    OverloadControl::LevelDelays delays;
    delays.fill(Duration::max());
    delays[0] = delay;
    c.OnBatch(clock.Now(), delays, 8, milliseconds(10));
  }
  for (int64_t i = 0; i < busy; ++i) c.Release();
}

TEST(OverloadControlTest, SlotsUpToTheLimit) {
  FakeClock clock;
  OverloadControl::Options o = Opts(&clock);
  o.initial_limit = 3;
  o.min_limit = 1;
  OverloadControl c(o);
  EXPECT_TRUE(c.TryAcquire());
  EXPECT_TRUE(c.TryAcquire());
  EXPECT_TRUE(c.TryAcquire());
  EXPECT_FALSE(c.TryAcquire());
  c.ForceAcquire();  // eviction's way past the limit
  EXPECT_EQ(c.in_use(), 4);
  c.Release();
  c.Release();
  EXPECT_TRUE(c.TryAcquire());
  { OverloadSlot slot(std::make_shared<OverloadControl>(o)); }  // a slot gives itself back
}

TEST(OverloadControlTest, AStandingQueueShrinksTheLimitToItsFloor) {
  FakeClock clock;
  OverloadControl c(Opts(&clock));
  int64_t last = c.limit();
  for (int i = 0; i < 15; ++i) {               // 256 x 0.8^13 < 16
    Interval(clock, c, milliseconds(150), 0);  // 3 x the target, every batch
    EXPECT_LE(c.limit(), std::max<int64_t>(16, last * 8 / 10)) << i;
    last = c.limit();
  }
  EXPECT_EQ(c.limit(), 16);
  for (int i = 0; i < 5; ++i) Interval(clock, c, milliseconds(150), 0);
  EXPECT_EQ(c.limit(), 16);  // never below min_limit
  EXPECT_NEAR(c.stats().standing_delay_s, 0.150, 1e-9);
}

TEST(OverloadControlTest, TheLimitRecoversWhenTheDelayFalls) {
  FakeClock clock;
  OverloadControl::Options o = Opts(&clock);
  o.initial_limit = 16;
  OverloadControl c(o);
  for (int i = 0; i < 30; ++i) Interval(clock, c, milliseconds(1), c.limit());
  EXPECT_GE(c.limit(), 4 * 16);
}

TEST(OverloadControlTest, AStandingQueueAtALowerLevelCounts) {
  FakeClock clock;
  OverloadControl c(Opts(&clock));
  for (int i = 0; i < 4; ++i) {
    // High-priority requests skip the queue (1 ms); low ones wait 150 ms.
    OverloadControl::LevelDelays delays;
    delays.fill(Duration::max());
    delays[0] = milliseconds(1);
    delays[1] = milliseconds(150);
    clock.Advance(milliseconds(25));
    c.OnBatch(clock.Now(), delays, 8, milliseconds(10));
  }
  EXPECT_EQ(c.limit(), 204);  // 0.8 x 256
  EXPECT_NEAR(c.stats().standing_delay_s, 0.150, 1e-9);
}

TEST(OverloadControlTest, NoDemandOrNoBatchesLeaveTheLimitAlone) {
  FakeClock clock;
  OverloadControl c(Opts(&clock));
  for (int i = 0; i < 10; ++i) Interval(clock, c, milliseconds(1), 0);  // demand far below
  EXPECT_EQ(c.limit(), 256);
  clock.Advance(std::chrono::seconds(10));  // no batch: nothing to learn
  EXPECT_EQ(c.limit(), 256);
}

TEST(OverloadControlTest, FixedWhenNotAdaptive) {
  FakeClock clock;
  OverloadControl::Options o = Opts(&clock);
  o.adaptive = false;
  OverloadControl c(o);
  EXPECT_EQ(c.limit(), 1040);
  for (int i = 0; i < 10; ++i) Interval(clock, c, milliseconds(500), 0);
  EXPECT_EQ(c.limit(), 1040);
}

TEST(OverloadControlTest, RetryAfterFollowsTheServiceRate) {
  FakeClock clock;
  OverloadControl c(Opts(&clock));
  EXPECT_EQ(c.RetryAfterSeconds(), 1);  // nothing measured yet
  // 8 items per 25 ms: 320 items/s. 256 in use: 0.8 s, so 1 s.
  Interval(clock, c, milliseconds(1), 256);
  for (int i = 0; i < 256; ++i) c.ForceAcquire();
  EXPECT_EQ(c.RetryAfterSeconds(), 1);
  for (int i = 0; i < 256 * 100; ++i) c.ForceAcquire();
  EXPECT_EQ(c.RetryAfterSeconds(), 60);  // clamped
}

TEST(OverloadControlTest, TheTargetFollowsTheBatchesByDefault) {
  FakeClock clock;
  OverloadControl::Options o = Opts(&clock);
  o.target = Duration::zero();
  o.batch_delay = milliseconds(20);
  OverloadControl c(o);
  EXPECT_NEAR(c.stats().target_s, 0.020, 1e-9);  // no batch yet: the delay alone
  Interval(clock, c, milliseconds(1), 0);        // 10 ms batches
  EXPECT_NEAR(c.stats().target_s, 0.040, 1e-6);
}

}  // namespace
}  // namespace inferd
