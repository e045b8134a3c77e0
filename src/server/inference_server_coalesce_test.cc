// Tests of the pipeline's cache stage (DESIGN.md section 1, steps 2 and 6),
// part 2: coalescing, errors, waiter deadlines, stale-if-error and models
// without a response cache. The fake backend and the fixture are in
// inference_server_test_util.h.

#include "server/inference_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <utility>
#include <vector>

#include "server/inference_server_test_util.h"

namespace inferd::server_test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// ---------------------------------------------------------------------------
// 5. Coalescing.

TEST_F(InferenceServerCacheTest, IdenticalRequestsInFlightExecuteOnce) {
  constexpr int kRequests = 8;
  backend_.CloseGate();
  std::vector<std::future<Result>> futures;
  for (int i = 0; i < kRequests; ++i) futures.push_back(Send(Request(Id("r", i))));
  ASSERT_TRUE(backend_.WaitBlocked(1));
  ASSERT_TRUE(Eventually([&] { return coalescer().waiting() == kRequests - 1; }))
      << "waiting: " << coalescer().waiting();
  EXPECT_EQ(backend_.executions(), 1);
  for (auto& f : futures) {
    EXPECT_NE(f.wait_for(std::chrono::seconds(0)), std::future_status::ready)
        << "answered while the leader is blocked";
  }

  backend_.OpenGate();
  int misses = 0, coalesced = 0;
  for (int i = 0; i < kRequests; ++i) {
    Result r = Await(futures[static_cast<size_t>(i)]);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->id, Id("r", i));
    EXPECT_EQ(Output(*r, "y"), (std::vector<float>{3.0f, -4.0f}));
    if (r->cache == CacheStatus::kMiss) ++misses;
    if (r->cache == CacheStatus::kCoalesced) ++coalesced;
  }
  EXPECT_EQ(misses, 1);
  EXPECT_EQ(coalesced, kRequests - 1);
  EXPECT_EQ(backend_.executions(), 1);
  EXPECT_EQ(coalescer().waiting(), 0);
  EXPECT_EQ(coalescer().coalesced_total(), kRequests - 1);

  // The leader also filled the cache.
  Result later = InferSync(Request("later"));
  ASSERT_TRUE(later.ok()) << later.status().message();
  EXPECT_EQ(later->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(backend_.executions(), 1);
}

// ---------------------------------------------------------------------------
// 6. Errors reach every waiter and are not cached.

TEST_F(InferenceServerCacheTest, ErrorReachesAllWaitersAndIsNotCached) {
  constexpr int kRequests = 4;
  backend_.CloseGate();
  backend_.set_fail(true);
  std::vector<std::future<Result>> futures;
  for (int i = 0; i < kRequests; ++i) futures.push_back(Send(Request(Id("r", i))));
  ASSERT_TRUE(backend_.WaitBlocked(1));
  ASSERT_TRUE(Eventually([&] { return coalescer().waiting() == kRequests - 1; }))
      << "waiting: " << coalescer().waiting();

  backend_.OpenGate();
  for (auto& f : futures) {
    Result r = Await(f);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInternal) << r.status().message();
    EXPECT_NE(r.status().message().find("injected backend failure"), std::string::npos)
        << r.status().message();
  }
  EXPECT_EQ(backend_.executions(), 1);
  EXPECT_EQ(coalescer().waiting(), 0);

  backend_.set_fail(false);
  Result next = InferSync(Request("next"));
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(next->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*next, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 2);
}

// ---------------------------------------------------------------------------
// 7. A waiter's own deadline.

TEST_F(InferenceServerCacheTest, WaiterTimesOutWhileTheLeaderSucceeds) {
  constexpr int kWaiters = 3;
  backend_.CloseGate();
  auto leader = Send(Request("leader"));  // the server's default timeout (30 s)
  ASSERT_TRUE(backend_.WaitBlocked(1));
  std::vector<std::future<Result>> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    InferRequest r = Request(Id("w", i));
    r.timeout_us = 1000;
    waiters.push_back(Send(std::move(r)));
  }
  ASSERT_TRUE(Eventually([&] { return coalescer().waiting() == kWaiters; }));

  clock_.Advance(milliseconds(2));
  for (auto& w : waiters) {
    Result r = Await(w);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().message();
  }
  EXPECT_EQ(coalescer().waiting(), 0);
  EXPECT_NE(leader.wait_for(std::chrono::seconds(0)), std::future_status::ready);

  backend_.OpenGate();
  Result l = Await(leader);
  ASSERT_TRUE(l.ok()) << l.status().message();
  EXPECT_EQ(l->cache, CacheStatus::kMiss);
  EXPECT_EQ(l->id, "leader");
  EXPECT_EQ(Output(*l, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 1);
  EXPECT_EQ(coalescer().coalesced_total(), 0);

  Result later = InferSync(Request("later"));
  ASSERT_TRUE(later.ok()) << later.status().message();
  EXPECT_EQ(later->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(backend_.executions(), 1);
}

// ---------------------------------------------------------------------------
// 8. Stale-if-error.

TEST_F(InferenceServerCacheTest, StaleIfErrorWithinMaxStale) {
  ASSERT_TRUE(InferSync(Request("fill")).ok());
  EXPECT_EQ(backend_.executions(), 1);
  backend_.set_fail(true);

  clock_.Advance(seconds(11));  // past ttl_s = 10
  Result stale = InferSync(Request("stale"));
  ASSERT_TRUE(stale.ok()) << stale.status().message();
  EXPECT_EQ(stale->cache, CacheStatus::kStale);
  EXPECT_EQ(stale->age_s, 11);
  EXPECT_EQ(stale->id, "stale");
  EXPECT_EQ(Output(*stale, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 2);  // the lookup missed; the model ran and failed

  clock_.Advance(seconds(59));  // exactly ttl_s + max_stale_s after creation
  Result edge = InferSync(Request("edge"));
  ASSERT_TRUE(edge.ok()) << edge.status().message();
  EXPECT_EQ(edge->cache, CacheStatus::kStale);
  EXPECT_EQ(edge->age_s, 70);
  EXPECT_EQ(backend_.executions(), 3);

  clock_.Advance(seconds(1));  // beyond max_stale_s
  Result gone = InferSync(Request("gone"));
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), StatusCode::kInternal) << gone.status().message();
  EXPECT_EQ(backend_.executions(), 4);
}

TEST_F(InferenceServerCacheTest, StaleIfErrorReachesCoalescedWaiters) {
  constexpr int kRequests = 4;
  ASSERT_TRUE(InferSync(Request("fill")).ok());
  clock_.Advance(seconds(11));  // past ttl_s = 10
  backend_.set_fail(true);
  backend_.CloseGate();
  std::vector<std::future<Result>> futures;
  for (int i = 0; i < kRequests; ++i) futures.push_back(Send(Request(Id("r", i))));
  ASSERT_TRUE(backend_.WaitBlocked(1));
  ASSERT_TRUE(Eventually([&] { return coalescer().waiting() == kRequests - 1; }));
  backend_.OpenGate();
  for (int i = 0; i < kRequests; ++i) {
    Result r = Await(futures[static_cast<size_t>(i)]);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->cache, CacheStatus::kStale);
    EXPECT_EQ(r->id, Id("r", i));
    EXPECT_EQ(Output(*r, "y"), (std::vector<float>{3.0f, -4.0f}));
  }
  EXPECT_EQ(backend_.executions(), 2);
}

TEST_F(InferenceServerCacheTest, StaleIfErrorNeedsAnEntry) {
  backend_.set_fail(true);
  Result r = InferSync(Request("nothing cached"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal) << r.status().message();
  EXPECT_EQ(backend_.executions(), 1);
}

// ---------------------------------------------------------------------------
// 9. A model without [response_cache].

TEST_F(InferenceServerCacheTest, ModelWithoutResponseCacheNeverCaches) {
  for (int i = 0; i < 3; ++i) {
    Result r = InferSync(Request(Id("r", i), {1.5f, -2.0f}, "nocache"));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->cache, CacheStatus::kNone);
    EXPECT_EQ(r->age_s, -1);
    EXPECT_EQ(Output(*r, "y"), (std::vector<float>{3.0f, -4.0f}));
    EXPECT_EQ(backend_.executions(), i + 1);
  }
  // No coalescing either: two identical requests in flight both execute.
  backend_.CloseGate();
  auto a = Send(Request("a", {1.5f, -2.0f}, "nocache"));
  ASSERT_TRUE(backend_.WaitBlocked(1));  // so that b cannot join a's batch
  auto b = Send(Request("b", {1.5f, -2.0f}, "nocache"));
  EXPECT_EQ(coalescer().waiting(), 0);
  backend_.OpenGate();
  Result ra = Await(a), rb = Await(b);
  ASSERT_TRUE(ra.ok()) << ra.status().message();
  ASSERT_TRUE(rb.ok()) << rb.status().message();
  EXPECT_EQ(ra->cache, CacheStatus::kNone);
  EXPECT_EQ(rb->cache, CacheStatus::kNone);
  EXPECT_EQ(backend_.executions(), 5);
}

}  // namespace
}  // namespace inferd::server_test
