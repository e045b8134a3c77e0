// Admission's global mode: limits shared through Redis, and the fallback
// to this process's share when Redis cannot answer.

#include <gtest/gtest.h>

#include <future>

#include "admission/admission.h"
#include "cache/redis_test_server.h"

namespace inferd {
namespace {

using redis_test::RedisServer;

AdmissionConfig OneTenant(double rate, int64_t burst, std::string url, int64_t instances = 1) {
  AdmissionConfig config;
  TenantConfig t;
  t.name = "acme";
  t.key_digests = {Sha256("key-a")};
  t.limit = {rate, burst};
  t.models = {{"m", {rate, 1}}};
  config.tenants = {t};
  config.global.redis_url = std::move(url);
  config.global.instances = instances;
  config.global.timeout_ms = 1000;  // generous on a loaded test machine
  return config;
}

// Local limits, then the global decision, waited for.
Status Check(const Admission& a, const Tenant& t, std::string_view model, Clock& clock,
             AdmissionReport* report) {
  INFERD_RETURN_IF_ERROR(a.CheckLimits(t, model, clock.Now(), report));
  std::promise<Status> p;
  auto f = p.get_future();
  a.CheckGlobal(t, model, report, [&p](Status st) { p.set_value(std::move(st)); });
  EXPECT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  return f.get();
}

double CounterValue(Registry& r, const std::string& result) {
  return r.AddCounter("inferd_global_rate_limit_decisions_total", "", {"result"})
      ->WithLabels({result})
      ->Value();
}

// A port nothing listens on: connections are refused at once.
std::string DeadUrl() { return "redis://127.0.0.1:" + std::to_string(redis_test::PickFreePort()); }

TEST(AdmissionGlobalTest, SettingsAreCheckedAndNamed) {
  auto expect_error = [](AdmissionConfig c, const std::string& setting) {
    auto a = Admission::Create(std::move(c));
    ASSERT_FALSE(a.ok()) << setting;
    EXPECT_NE(a.status().message().find(setting), std::string::npos) << a.status().message();
  };
  expect_error(OneTenant(10, 5, "redis://"), "rate_limits.redis_url");
  expect_error(OneTenant(10, 5, "localhost:6379"), "rate_limits.redis_url");
  AdmissionConfig c = OneTenant(10, 5, DeadUrl());
  c.global.instances = 0;
  expect_error(c, "rate_limits.instances");
  c = OneTenant(10, 5, DeadUrl());
  c.global.key_prefix = "";
  expect_error(c, "rate_limits.key_prefix");
  c = OneTenant(10, 5, DeadUrl());
  c.global.timeout_ms = 0;
  expect_error(c, "rate_limits.timeout_ms");
  c = OneTenant(10, 5, DeadUrl());
  c.global.max_pending = 0;
  expect_error(c, "rate_limits.max_pending");
  // No URL: no global mode, and CheckGlobal admits at once.
  auto local = Admission::Create(OneTenant(10, 5, ""));
  ASSERT_TRUE(local.ok());
  EXPECT_FALSE((*local)->has_global());
  EXPECT_STREQ((*local)->global_state().redis, "off");
}

// Redis unreachable: this process's share (rate and burst / instances)
// decides; the full-rate local limit still runs first.
TEST(AdmissionGlobalTest, UnreachableRedisFallsBackToThisProcesssShare) {
  FakeClock clock;
  Registry registry;
  auto a = Admission::Create(OneTenant(10, 5, DeadUrl(), /*instances=*/2), &registry, &clock);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE((*a)->has_global());
  const Tenant* t = *(*a)->Authenticate("key-a");
  // Share: 5 requests/s, burst 2.
  AdmissionReport r;
  EXPECT_TRUE(Check(**a, *t, "other", clock, &r).ok());
  ASSERT_EQ(r.count, 1);
  EXPECT_EQ(r.limits[0].rate_per_s, 5);
  EXPECT_EQ(r.limits[0].burst, 2);
  EXPECT_EQ(r.limits[0].remaining, 1);
  EXPECT_TRUE(Check(**a, *t, "other", clock, &r).ok());
  Status refused = Check(**a, *t, "other", clock, &r);
  EXPECT_EQ(refused.code(), StatusCode::kRateLimited);
  EXPECT_NE(refused.message().find("Redis unreachable: this server's share of the rate limit of "
                                   "tenant 'acme' exceeded (5 requests/s, burst 2)"),
            std::string::npos)
      << refused.message();
  EXPECT_EQ(r.retry_after_s, 1);
  clock.Advance(std::chrono::milliseconds(200));  // one interval of the share
  EXPECT_TRUE(Check(**a, *t, "other", clock, &r).ok());
  // Each decision was a fallback: errors until the circuit opened, then
  // the open circuit.
  const double error = CounterValue(registry, "fallback_error");
  const double circuit = CounterValue(registry, "fallback_circuit");
  EXPECT_EQ(error + circuit, 4);
  EXPECT_EQ(error, 3);
  EXPECT_EQ(CounterValue(registry, "allowed"), 0);
  EXPECT_STREQ((*a)->global_state().redis, "fallback");
  EXPECT_EQ((*a)->global_state().fallbacks, 4u);
  // The full-rate local limit (10/s, burst 5) ran first each time: 4
  // taken, 2 refilled in 0.2 s, so 3 are left.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE((*a)->CheckLimits(*t, "other", clock.Now(), &r).ok());
  EXPECT_EQ((*a)->CheckLimits(*t, "other", clock.Now(), &r).code(), StatusCode::kRateLimited);
  EXPECT_EQ(CounterValue(registry, "fallback_circuit") + CounterValue(registry, "fallback_error"),
            4);
  (*a)->StopGlobal();
  (*a)->StopGlobal();  // idempotent
}

class AdmissionRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string binary = redis_test::FindRedisServer();
    if (binary.empty()) GTEST_SKIP() << "redis-server is not installed";
    server_ = std::make_unique<RedisServer>(binary, redis_test::PickFreePort());
    ASSERT_TRUE(server_->Start());
    url_ = "redis://127.0.0.1:" + std::to_string(server_->port());
  }
  std::unique_ptr<RedisServer> server_;
  std::string url_;
};

// Two processes (two Admissions) share the tenant's burst through Redis,
// and a model limit refuses without using up the tenant's.
TEST_F(AdmissionRedisTest, TwoProcessesShareOneLimit) {
  FakeClock clock;  // the local limits never refill; Redis's clock decides globally
  Registry registry;
  AdmissionConfig config = OneTenant(0.001, 3, url_, /*instances=*/2);
  config.tenants[0].limit.burst = 3;
  auto a = Admission::Create(config, &registry, &clock);
  auto b = Admission::Create(config, nullptr, &clock);
  ASSERT_TRUE(a.ok() && b.ok());
  const Tenant* ta = *(*a)->Authenticate("key-a");
  const Tenant* tb = *(*b)->Authenticate("key-a");
  AdmissionReport r;
  EXPECT_TRUE(Check(**a, *ta, "other", clock, &r).ok());
  ASSERT_EQ(r.count, 1);
  EXPECT_EQ(r.limits[0].remaining, 2);  // Redis's count, not this process's
  EXPECT_EQ(r.limits[0].burst, 3);
  // The model limit (burst 1) admits one on b ...
  EXPECT_TRUE(Check(**b, *tb, "m", clock, &r).ok());
  ASSERT_EQ(r.count, 2);
  EXPECT_EQ(r.limits[0].remaining, 1);
  EXPECT_EQ(r.limits[1].remaining, 0);
  // ... and refuses on a, without using up the tenant's last token.
  Status model_refused = Check(**a, *ta, "m", clock, &r);
  EXPECT_EQ(model_refused.code(), StatusCode::kRateLimited);
  EXPECT_NE(model_refused.message().find("tenant 'acme' on model 'm'"), std::string::npos)
      << model_refused.message();
  EXPECT_EQ(r.limits[0].remaining, 1);
  EXPECT_TRUE(Check(**b, *tb, "other", clock, &r).ok());
  EXPECT_EQ(r.limits[0].remaining, 0);
  // Gone for both, though a's own full-rate limit has a token left.
  Status refused = Check(**a, *ta, "other", clock, &r);
  EXPECT_EQ(refused.code(), StatusCode::kRateLimited);
  EXPECT_NE(refused.message().find("rate limit of tenant 'acme' exceeded (0.001 requests/s, burst "
                                   "3, shared by every server)"),
            std::string::npos)
      << refused.message();
  EXPECT_GE(r.retry_after_s, 900);
  EXPECT_EQ(r.limits[0].remaining, 0);
  EXPECT_EQ(CounterValue(registry, "allowed"), 1);
  EXPECT_EQ(CounterValue(registry, "limited"), 2);
  EXPECT_EQ(CounterValue(registry, "fallback_error"), 0);
  EXPECT_STREQ((*a)->global_state().redis, "ok");
}

}  // namespace
}  // namespace inferd
