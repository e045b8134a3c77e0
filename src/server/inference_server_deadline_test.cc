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
