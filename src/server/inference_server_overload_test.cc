// Overload control on the one request path: a request shed at the gate is
// never decoded; a higher-priority one pushes out queued lower-priority
// work; every exit (success, shed, eviction, decode error, validation
// error, cache hit, coalesced follower) gives its slot back. The backend's
// gate holds the one instance busy; no sleeps.

#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "server/inference_server.h"
#include "server/inference_server_test_util.h"

namespace inferd::server_test {
namespace {

// Infer's exchange plus a count of Decode calls.
class CountingExchange final : public InferExchange {
 public:
  CountingExchange(InferRequest request, std::atomic<int>* decodes,
                   std::shared_ptr<std::promise<StatusOr<EncodedReply>>> done)
      : request_(std::move(request)), decodes_(decodes), done_(std::move(done)) {
    model = request_.model;
  }
  std::string_view body() const override { return {}; }
  std::string_view encoding() const override { return {}; }
  StatusOr<InferRequest> Decode(const ModelConfig&) override {
    decodes_->fetch_add(1);
    return std::move(request_);
  }
  Status Encode(const InferResponse&, EncodedReply*) override { return Status::OK(); }
  void Complete(StatusOr<EncodedReply> reply) override { done_->set_value(std::move(reply)); }

 private:
  InferRequest request_;
  std::atomic<int>* decodes_;
  std::shared_ptr<std::promise<StatusOr<EncodedReply>>> done_;
};

class OverloadTest : public InferenceServerCacheTest {
 protected:
  using Reply = StatusOr<EncodedReply>;
  std::future<Reply> Submit(float value, int priority = 0) {
    auto done = std::make_shared<std::promise<Reply>>();
    auto f = done->get_future();
    auto x =
        std::make_unique<CountingExchange>(Request("r", {value, value}, "shed"), &decodes_, done);
    x->context.priority = priority;
    x->context.authenticated = true;
    server_->Submit(std::move(x));
    return f;
  }
  static Reply AwaitReply(std::future<Reply>& f) {
    if (f.wait_for(kGuard) != std::future_status::ready)
      return DeadlineExceededError("test guard: no response");
    return f.get();
  }
  ModelVersion& shed() { return *models_->Get("shed", "").value(); }

  std::atomic<int> decodes_{0};
};

TEST_F(OverloadTest, ShedRequestsAreNotDecodedAndHigherPriorityPushesOutLower) {
  backend_.CloseGate();
  auto running = Submit(1);  // takes the instance
  ASSERT_TRUE(backend_.WaitBlocked(1));
  auto queued = Submit(2);  // the default level: 2, the lowest
  ASSERT_TRUE(Eventually([&] { return shed().queue_depth() == 1; }));
  EXPECT_EQ(shed().overload_stats().in_use, 2);
  EXPECT_EQ(decodes_.load(), 2);

  auto refused = Submit(3);
  Reply r = AwaitReply(refused);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("overloaded"), std::string::npos) << r.status().message();
  EXPECT_EQ(decodes_.load(), 2);  // shed before decoding

  auto high = Submit(4, /*priority=*/1);
  Reply evicted = AwaitReply(queued);
  EXPECT_EQ(evicted.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(evicted.status().message().find("higher-priority"), std::string::npos);
  backend_.OpenGate();
  EXPECT_TRUE(AwaitReply(running).ok());
  EXPECT_TRUE(AwaitReply(high).ok());
  EXPECT_EQ(backend_.executions(), 2);  // the evicted request never ran
  EXPECT_TRUE(Eventually([&] { return shed().overload_stats().in_use == 0; }));
}

TEST_F(OverloadTest, EveryExitGivesItsSlotBack) {
  auto first = Submit(5);
  Reply first_reply = AwaitReply(first);
  EXPECT_TRUE(first_reply.ok()) << first_reply.status().message();  // executed
  EXPECT_TRUE(Eventually([&] { return shed().overload_stats().in_use == 0; }));
  auto hit = Submit(5);  // the same input: a cache hit
  EXPECT_TRUE(AwaitReply(hit).ok());
  EXPECT_EQ(backend_.executions(), 1);
  EXPECT_EQ(shed().overload_stats().in_use, 0);

  auto bad = std::make_shared<std::promise<Reply>>();
  auto bad_f = bad->get_future();
  InferRequest wrong = Request("bad", {1, 2}, "shed");
  wrong.inputs[0].name = "nope";  // fails validation after the gate
  server_->Submit(std::make_unique<CountingExchange>(std::move(wrong), &decodes_, bad));
  EXPECT_EQ(AwaitReply(bad_f).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(shed().overload_stats().in_use, 0);

  // A coalesced follower gives its slot back while it waits for the leader.
  backend_.CloseGate();
  auto leader = Submit(7);
  ASSERT_TRUE(backend_.WaitBlocked(1));
  auto follower = Submit(7);
  EXPECT_TRUE(Eventually([&] { return shed().overload_stats().in_use == 1; }));
  auto other = Submit(8);  // the second slot is free for other work
  ASSERT_TRUE(Eventually([&] { return shed().queue_depth() == 1; }));
  backend_.OpenGate();
  EXPECT_TRUE(AwaitReply(leader).ok());
  EXPECT_TRUE(AwaitReply(follower).ok());
  EXPECT_TRUE(AwaitReply(other).ok());
  EXPECT_TRUE(Eventually([&] { return shed().overload_stats().in_use == 0; }));
}

}  // namespace
}  // namespace inferd::server_test
