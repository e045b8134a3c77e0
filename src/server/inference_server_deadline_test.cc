// Deadlines and cancellation on the one request path: a request whose
// deadline passes, or whose client leaves, while it waits is answered
// without running (asserted with the backend's execution counter) and
// counted. Time moves only through the FakeClock; the backend's gate holds
// the one instance busy.

#include <gtest/gtest.h>

#include <chrono>

#include "server/inference_server.h"
#include "server/inference_server_test_util.h"

namespace inferd::server_test {
namespace {

using std::chrono::milliseconds;

class DeadlineTest : public InferenceServerCacheTest {
 protected:
  // Holds model "nocache"'s one instance busy with a request at the gate.
  std::future<Result> Occupy() {
    backend_.CloseGate();
    auto f = Send(Request("busy", {9.0f, 9.0f}, "nocache"));
    EXPECT_TRUE(backend_.WaitBlocked(1));
    return f;
  }
  double Outcome(const std::string& outcome) { return OutcomeCount("nocache", 1, outcome); }
};

TEST_F(DeadlineTest, ARequestWhoseDeadlinePassesInTheQueueIsAnswered504WithoutRunning) {
  auto busy = Occupy();
  RequestContext ctx;
  ctx.deadline = clock_.Now() + milliseconds(100);
  auto queued = Send(Request("late", {1.0f, 2.0f}, "nocache"), ctx);
  ASSERT_TRUE(Eventually([&] { return models_->Get("nocache", "")->get()->queue_depth() == 1; }));
  clock_.Advance(milliseconds(101));
  backend_.OpenGate();
  ASSERT_TRUE(Await(busy).ok());
  Result r = Await(queued);
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().message();
  EXPECT_EQ(backend_.executions(), 1);  // only the request that was running
  EXPECT_EQ(Outcome("deadline_exceeded"), 1);
}

TEST_F(DeadlineTest, ParametersTimeoutSetsTheDeadline) {
  auto busy = Occupy();
  InferRequest req = Request("late", {1.0f, 2.0f}, "nocache");
  req.timeout_us = 5000;
  auto queued = Send(std::move(req));
  ASSERT_TRUE(Eventually([&] { return models_->Get("nocache", "")->get()->queue_depth() == 1; }));
  clock_.Advance(milliseconds(6));
  backend_.OpenGate();
  ASSERT_TRUE(Await(busy).ok());
  EXPECT_EQ(Await(queued).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(backend_.executions(), 1);
}

TEST_F(DeadlineTest, AnExpiredRequestIsNotScheduledAtAll) {
  RequestContext ctx;
  ctx.deadline = clock_.Now();
  auto f = Send(Request("late", {1.0f, 2.0f}, "nocache"), ctx);
  Result r = Await(f);
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(backend_.executions(), 0);
}

TEST_F(DeadlineTest, AClientThatLeavesWhileQueuedIsDroppedAtOnce) {
  auto busy = Occupy();
  RequestContext ctx;
  ctx.cancel = std::make_shared<Cancellation>();
  auto cancel = ctx.cancel;
  auto queued = Send(Request("gone", {1.0f, 2.0f}, "nocache"), ctx);
  ASSERT_TRUE(Eventually([&] { return models_->Get("nocache", "")->get()->queue_depth() == 1; }));
  cancel->Cancel(CancelledError("the client closed the connection"));
  // Answered while the instance is still busy: the slot is free at once.
  Result r = Await(queued);
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(models_->Get("nocache", "")->get()->queue_depth(), 0u);
  backend_.OpenGate();
  ASSERT_TRUE(Await(busy).ok());
  EXPECT_EQ(backend_.executions(), 1);
  EXPECT_EQ(Outcome("cancelled"), 1);
}

TEST_F(DeadlineTest, ALeaderWhoseClientLeavesStillServesItsWaiters) {
  // Model "m" caches: an identical request waits on the leader's flight.
  backend_.CloseGate();
  auto busy = Send(Request("busy", {9.0f, 9.0f}, "m"));
  ASSERT_TRUE(backend_.WaitBlocked(1));
  RequestContext leader_ctx;
  leader_ctx.cancel = std::make_shared<Cancellation>();
  auto cancel = leader_ctx.cancel;
  auto leader = Send(Request("leader", {1.0f, 2.0f}, "m"), leader_ctx);
  ASSERT_TRUE(Eventually([&] { return models_->Get("m", "")->get()->queue_depth() == 1; }));
  auto waiter = Send(Request("waiter", {1.0f, 2.0f}, "m"));
  ASSERT_TRUE(Eventually([&] { return coalescer().waiting() == 1; }));
  cancel->Cancel(CancelledError("the client closed the connection"));
  EXPECT_EQ(models_->Get("m", "")->get()->queue_depth(), 1u);  // not dropped: it leads
  backend_.OpenGate();
  ASSERT_TRUE(Await(busy).ok());
  Result w = Await(waiter);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->cache, CacheStatus::kCoalesced);
  EXPECT_TRUE(Await(leader).ok());
  EXPECT_EQ(backend_.executions(), 2);
}

TEST_F(DeadlineTest, ACancelledRequestIsNotScheduled) {
  RequestContext ctx;
  ctx.cancel = std::make_shared<Cancellation>();
  ctx.cancel->Cancel(CancelledError("gone"));
  auto f = Send(Request("gone", {1.0f, 2.0f}, "nocache"), ctx);
  EXPECT_EQ(Await(f).status().code(), StatusCode::kCancelled);
  EXPECT_EQ(backend_.executions(), 0);
}

}  // namespace
}  // namespace inferd::server_test
