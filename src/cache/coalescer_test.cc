#include "cache/coalescer.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

namespace inferd {
namespace {

CacheKey K(std::string check, uint64_t lo = 1) { return CacheKey{{0, lo}, std::move(check), "m"}; }

// Collects waiter results; Wait blocks (bounded) until `n` arrived.
class Results {
 public:
  Coalescer::Waiter Add() {
    return [this](Coalescer::Result r) {
      std::lock_guard<std::mutex> l(mu_);
      results_.push_back(r.ok() ? "ok:" + (*r)->payload : r.status().ToString());
      cv_.notify_all();
    };
  }
  std::vector<std::string> Wait(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    EXPECT_TRUE(cv_.wait_for(l, std::chrono::seconds(30), [&] { return results_.size() >= n; }));
    return results_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> results_;
};

std::shared_ptr<const CacheEntry> Entry(std::string payload) {
  auto e = std::make_shared<CacheEntry>();
  e->payload = std::move(payload);
  return e;
}

TEST(CoalescerTest, FirstLeadsOthersWaitAndGetTheResult) {
  FakeClock clock;
  Coalescer c(&clock);
  Results r;
  Time far = clock.Now() + std::chrono::hours(1);
  EXPECT_TRUE(c.Join(K("a"), far, r.Add()));
  EXPECT_FALSE(c.Join(K("a"), far, r.Add()));
  EXPECT_FALSE(c.Join(K("a"), far, r.Add()));
  EXPECT_EQ(c.waiting(), 2);
  c.Complete(K("a"), Entry("x"));
  EXPECT_EQ(r.Wait(2), (std::vector<std::string>{"ok:x", "ok:x"}));
  EXPECT_EQ(c.waiting(), 0);
  EXPECT_EQ(c.coalesced_total(), 2);
  EXPECT_TRUE(c.Join(K("a"), far, r.Add()));  // the flight is over: a new leader
}

TEST(CoalescerTest, SameDigestDifferentCheckNeverShareAFlight) {
  FakeClock clock;
  Coalescer c(&clock);
  Results r;
  Time far = clock.Now() + std::chrono::hours(1);
  EXPECT_TRUE(c.Join(K("a", 7), far, r.Add()));
  EXPECT_TRUE(c.Join(K("b", 7), far, r.Add()));  // a digest collision leads its own flight
  EXPECT_FALSE(c.Join(K("b", 7), far, r.Add()));
  c.Complete(K("a", 7), Entry("for-a"));
  c.Complete(K("b", 7), Entry("for-b"));
  EXPECT_EQ(r.Wait(1), (std::vector<std::string>{"ok:for-b"}));
}

TEST(CoalescerTest, ErrorsReachEveryWaiter) {
  FakeClock clock;
  Coalescer c(&clock);
  Results r;
  Time far = clock.Now() + std::chrono::hours(1);
  c.Join(K("a"), far, r.Add());
  c.Join(K("a"), far, r.Add());
  c.Join(K("a"), far, r.Add());
  c.Complete(K("a"), InternalError("boom"));
  auto got = r.Wait(2);
  EXPECT_EQ(got.size(), 2u);
  for (const auto& g : got) EXPECT_EQ(g, "INTERNAL: boom");
}

TEST(CoalescerTest, EachWaiterHasItsOwnDeadline) {
  FakeClock clock;
  Coalescer c(&clock);
  Results r;
  Time now = clock.Now();
  c.Join(K("a"), now + std::chrono::hours(1), r.Add());         // leader
  c.Join(K("a"), now + std::chrono::milliseconds(1), r.Add());  // times out
  c.Join(K("a"), now + std::chrono::hours(1), r.Add());         // waits on
  clock.Advance(std::chrono::milliseconds(2));
  auto first = r.Wait(1);
  EXPECT_EQ(first[0].rfind("DEADLINE_EXCEEDED", 0), 0u) << first[0];
  EXPECT_EQ(c.waiting(), 1);
  c.Complete(K("a"), Entry("late"));
  EXPECT_EQ(r.Wait(2)[1], "ok:late");
}

TEST(CoalescerTest, DestructionAnswersWaiters) {
  FakeClock clock;
  Results r;
  {
    Coalescer c(&clock);
    Time far = clock.Now() + std::chrono::hours(1);
    c.Join(K("a"), far, r.Add());
    c.Join(K("a"), far, r.Add());
  }
  EXPECT_EQ(r.Wait(1)[0].rfind("UNAVAILABLE", 0), 0u);
}

}  // namespace
}  // namespace inferd
