// The pipeline with global rate limits (rate_limits.redis_url): after the
// local limits, the request waits for the global decision without blocking
// the submitting thread, and goes on through Options::post; a refusal is a
// 429; every request is answered exactly once. Redis is unreachable here
// (nothing listens on the port), so this process's share decides.

#include <gtest/gtest.h>

#include <deque>
#include <future>
#include <mutex>

#include "admission/admission.h"
#include "cache/redis_test_server.h"
#include "server/inference_server.h"
#include "server/inference_server_test_util.h"

namespace inferd::server_test {
namespace {

// A keyed request for model "m", answered into a promise.
class KeyedExchange final : public InferExchange {
 public:
  explicit KeyedExchange(std::shared_ptr<std::promise<StatusOr<EncodedReply>>> reply)
      : reply_(std::move(reply)) {
    model = "m";
    context.credential = "key-a";
  }
  std::string_view body() const override { return {}; }
  std::string_view encoding() const override { return {}; }  // no memo
  StatusOr<InferRequest> Decode(const ModelConfig&) override {
    InferRequest r;
    r.model = model;
    r.id = "keyed";
    r.inputs.push_back({"x", Fp32({1.5f, -2.0f})});
    return r;
  }
  Status Encode(const InferResponse&, EncodedReply* reply) override {
    reply->body = "ok";
    return Status::OK();
  }
  void Complete(StatusOr<EncodedReply> reply) override {
    reply_->set_value(std::move(reply));  // a second answer would throw
  }

 private:
  std::shared_ptr<std::promise<StatusOr<EncodedReply>>> reply_;
};

class InferenceServerGlobalTest : public InferenceServerCacheTest {
 protected:
  // A server whose admission shares acme's limit (rate 1000/s, burst 2)
  // through an unreachable Redis, 2 instances: a share of burst 1. Posted
  // continuations wait in posted_ until the test runs them.
  void StartGlobal() {
    AdmissionConfig config;
    TenantConfig acme;
    acme.name = "acme";
    acme.key_digests = {Sha256("key-a")};
    acme.limit = {1000, 2};
    config.tenants = {acme};
    config.global.redis_url = "redis://127.0.0.1:" + std::to_string(redis_test::PickFreePort());
    config.global.instances = 2;
    config.global.timeout_ms = 1000;
    auto admission = Admission::Create(config, &registry_, &clock_);
    ASSERT_TRUE(admission.ok()) << admission.status().ToString();
    admission_ = std::move(admission).value();
    InferenceServer::Options so;
    so.models = models_.get();
    so.metrics = metrics_.get();
    so.clock = &clock_;
    so.cache = cache_.get();
    so.admission = admission_.get();
    so.post = [this](std::function<void()> fn) {
      std::lock_guard<std::mutex> l(posted_mu_);
      posted_.push_back(std::move(fn));
    };
    auto server = InferenceServer::Create(so);
    ASSERT_TRUE(server.ok());
    global_ = std::move(server).value();
  }
  void TearDown() override {
    if (admission_) admission_->StopGlobal();
    RunPosted();
    global_.reset();
    admission_.reset();
    InferenceServerCacheTest::TearDown();
  }

  std::future<StatusOr<EncodedReply>> SubmitKeyed() {
    auto p = std::make_shared<std::promise<StatusOr<EncodedReply>>>();
    auto f = p->get_future();
    global_->Submit(std::make_unique<KeyedExchange>(p));
    return f;
  }
  size_t PostedCount() {
    std::lock_guard<std::mutex> l(posted_mu_);
    return posted_.size();
  }
  void RunPosted() {
    std::deque<std::function<void()>> run;
    {
      std::lock_guard<std::mutex> l(posted_mu_);
      run.swap(posted_);
    }
    for (auto& fn : run) fn();
  }

  std::unique_ptr<Admission> admission_;
  std::unique_ptr<InferenceServer> global_;
  std::mutex posted_mu_;
  std::deque<std::function<void()>> posted_;
};

TEST_F(InferenceServerGlobalTest, TheRestOfThePipelineGoesOnThroughPost) {
  StartGlobal();
  // Local limit 2 -> 1; Redis unreachable -> the share (burst 1) admits.
  auto first = SubmitKeyed();
  ASSERT_TRUE(Eventually([&] { return PostedCount() == 1; }));
  EXPECT_NE(first.wait_for(std::chrono::milliseconds(0)), std::future_status::ready)
      << "answered before its continuation was posted";
  RunPosted();
  ASSERT_EQ(first.wait_for(kGuard), std::future_status::ready);
  StatusOr<EncodedReply> r1 = first.get();
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_EQ(r1->body, "ok");
  EXPECT_EQ(backend_.executions(), 1);
  // Local 1 -> 0; the share is used up: 429 through post, never executed.
  auto second = SubmitKeyed();
  ASSERT_TRUE(Eventually([&] { return PostedCount() == 1; }));
  RunPosted();
  ASSERT_EQ(second.wait_for(kGuard), std::future_status::ready);
  StatusOr<EncodedReply> r2 = second.get();
  EXPECT_EQ(r2.status().code(), StatusCode::kRateLimited);
  EXPECT_NE(r2.status().message().find("Redis unreachable"), std::string::npos)
      << r2.status().message();
  // The local limit refuses on its own: at once, nothing posted.
  auto third = SubmitKeyed();
  ASSERT_EQ(third.wait_for(kGuard), std::future_status::ready);
  EXPECT_EQ(third.get().status().code(), StatusCode::kRateLimited);
  EXPECT_EQ(PostedCount(), 0u);
  EXPECT_EQ(backend_.executions(), 1);
  // In-process callers are not limited, and never wait for Redis.
  auto warm = std::make_shared<std::promise<Result>>();
  auto warmed = warm->get_future();
  global_->Infer(Request("warm", {3.0f, 4.0f}),
                 [warm](Result r) { warm->set_value(std::move(r)); });
  ASSERT_EQ(warmed.wait_for(kGuard), std::future_status::ready);
  EXPECT_TRUE(warmed.get().ok());
  EXPECT_EQ(PostedCount(), 0u);
}

}  // namespace
}  // namespace inferd::server_test
