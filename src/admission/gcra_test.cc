#include "admission/gcra.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace inferd {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(GcraTest, BurstAtOnceThenOnePerInterval) {
  FakeClock clock;
  GcraLimiter l(/*rate_per_s=*/10, /*burst=*/3);  // T = 100 ms
  for (int i = 0; i < 3; ++i) {
    auto d = l.Take(clock.Now());
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 2 - i);
    EXPECT_EQ(d.reset_after, milliseconds(100 * (i + 1)));
  }
  auto refused = l.Take(clock.Now());
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 0);
  EXPECT_EQ(refused.retry_after, milliseconds(100));
  EXPECT_EQ(refused.reset_after, milliseconds(300));
  clock.Advance(milliseconds(99));
  EXPECT_FALSE(l.Take(clock.Now()).allowed);
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(l.Take(clock.Now()).allowed);  // one interval later: one more
  EXPECT_FALSE(l.Take(clock.Now()).allowed);
  // Idle for long: the bucket is full again, never fuller.
  clock.Advance(seconds(60));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(l.Take(clock.Now()).allowed) << i;
  EXPECT_FALSE(l.Take(clock.Now()).allowed);
}

TEST(GcraTest, OverAWindowAdmitsBurstPlusTheRate) {
  FakeClock clock;
  GcraLimiter l(/*rate_per_s=*/50, /*burst=*/5);  // T = 20 ms
  int allowed = 0;
  // 10 attempts per millisecond for 2 s.
  for (int ms = 0; ms < 2000; ++ms) {
    for (int k = 0; k < 10; ++k) allowed += l.Take(clock.Now()).allowed;
    clock.Advance(milliseconds(1));
  }
  EXPECT_EQ(allowed, 5 + 1999 / 20);  // at 0 ms the burst, then at 20, 40, ..., 1980 ms
}

TEST(GcraTest, PeekAndRefundLeaveTheStateAsIfNotTaken) {
  FakeClock clock;
  GcraLimiter l(/*rate_per_s=*/1, /*burst=*/2);
  auto full = l.Peek(clock.Now());
  EXPECT_TRUE(full.allowed);
  EXPECT_EQ(full.remaining, 2);
  EXPECT_EQ(full.reset_after, seconds(0));
  ASSERT_TRUE(l.Take(clock.Now()).allowed);
  EXPECT_EQ(l.Peek(clock.Now()).remaining, 1);
  l.Refund();
  EXPECT_EQ(l.Peek(clock.Now()).remaining, 2);
  ASSERT_TRUE(l.Take(clock.Now()).allowed);
  ASSERT_TRUE(l.Take(clock.Now()).allowed);
  auto empty = l.Peek(clock.Now());
  EXPECT_FALSE(empty.allowed);
  EXPECT_EQ(empty.remaining, 0);
  EXPECT_EQ(empty.retry_after, seconds(1));
  EXPECT_EQ(empty.reset_after, seconds(2));
}

TEST(GcraTest, ConcurrentTakesAdmitExactlyTheBurst) {
  FakeClock clock;  // time stands still: only the burst may pass
  GcraLimiter l(/*rate_per_s=*/1, /*burst=*/1000);
  const Time now = clock.Now();
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) allowed += l.Take(now).allowed;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 1000);
}

}  // namespace
}  // namespace inferd
