// RedisRateLimiter against a real redis-server (skipped without one).
// Limits are judged on Redis's clock (TIME), so the sharing test runs for
// real time; the circuit and queue waits use a FakeClock where they can.

#include "admission/redis_rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "cache/redis_test_server.h"

namespace inferd {
namespace {

using redis_test::Raw;
using redis_test::RawConn;
using redis_test::RedisServer;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using Fallback = RedisRateLimiter::Fallback;
using Limit = RedisRateLimiter::Limit;
using Result = RedisRateLimiter::Result;

// A limit of `rate` per second and `burst`, in the script's microseconds.
Limit MakeLimit(std::string_view key, double rate, int64_t burst) {
  int64_t t = std::llround(1e6 / rate);
  return Limit{key, t, burst * t};
}

// One decision, waited for: its result, how long Decide itself took, how
// long until the answer, and whether it came on the calling thread.
struct Answer {
  Result result;
  steady_clock::duration call{}, total{};
  bool inline_answer = false;
};

Answer DecideAndWait(RedisRateLimiter& l, std::array<Limit, 2> limits, int n) {
  std::promise<std::pair<Result, std::thread::id>> p;
  auto f = p.get_future();
  const auto t0 = steady_clock::now();
  l.Decide(limits, n, [&p](Result r) { p.set_value({r, std::this_thread::get_id()}); });
  Answer a;
  a.call = steady_clock::now() - t0;
  EXPECT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "no answer";
  auto [r, id] = f.get();
  a.total = steady_clock::now() - t0;
  a.result = r;
  a.inline_answer = id == std::this_thread::get_id();
  return a;
}

class RedisRateLimiterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string binary = redis_test::FindRedisServer();
    if (binary.empty()) GTEST_SKIP() << "redis-server is not installed";
    server_ = std::make_unique<RedisServer>(binary, redis_test::PickFreePort());
    ASSERT_TRUE(server_->Start()) << "redis-server did not answer PING";
  }

  RedisRateLimiter::Options Opts(milliseconds timeout) {
    RedisRateLimiter::Options o;
    o.url = "redis://127.0.0.1:" + std::to_string(server_->port());
    o.timeout = timeout;
    return o;
  }
  std::unique_ptr<RedisRateLimiter> Make(const RedisRateLimiter::Options& o) {
    auto l = RedisRateLimiter::Create(o);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? std::move(l).value() : nullptr;
  }

  std::unique_ptr<RedisServer> server_;
};

TEST(RedisRateLimiterCreateTest, ABadUrlNamesTheSetting) {
  RedisRateLimiter::Options o;
  o.url = "http://localhost";
  auto l = RedisRateLimiter::Create(o);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("rate_limits.redis_url"), std::string::npos)
      << l.status().message();
  o.url = "redis://127.0.0.1:1";
  o.timeout = milliseconds(0);
  EXPECT_FALSE(RedisRateLimiter::Create(o).ok());
}

// Two limiters (two processes) on one key: together they admit the burst
// plus rate x elapsed, as one limiter would, whoever asks.
TEST_F(RedisRateLimiterTest, TwoLimitersShareOneLimit) {
  auto opts = Opts(milliseconds(1000));  // generous: no fallback on a loaded machine
  auto a = Make(opts);
  auto b = Make(opts);
  ASSERT_TRUE(a && b);
  constexpr double kRate = 100;
  constexpr int64_t kBurst = 10;
  const std::string key = "test:shared";
  const std::array<Limit, 2> limits = {MakeLimit(key, kRate, kBurst), Limit{}};
  std::atomic<int64_t> allowed{0}, refused{0}, fallbacks{0}, answered{0};
  auto count = [&](Result r) {
    if (r.fallback != Fallback::kNone) {
      fallbacks.fetch_add(1);
    } else {
      (r.allowed ? allowed : refused).fetch_add(1);
    }
    answered.fetch_add(1);
  };
  // Each offers 2.5 x the rate for 3 s, paced by the clock.
  constexpr int kPerThread = 750;
  const auto start = steady_clock::now();
  std::atomic<int64_t> last_send_ns{0};
  auto offer = [&](RedisRateLimiter* l, milliseconds phase) {
    for (int i = 0; i < kPerThread; ++i) {
      std::this_thread::sleep_until(start + phase + milliseconds(4) * i);
      l->Decide(limits, 1, count);
    }
    int64_t ns = (steady_clock::now() - start).count();
    int64_t seen = last_send_ns.load();
    while (seen < ns && !last_send_ns.compare_exchange_weak(seen, ns)) {
    }
  };
  std::thread ta(offer, a.get(), milliseconds(0));
  std::thread tb(offer, b.get(), milliseconds(2));
  ta.join();
  tb.join();
  const auto deadline = steady_clock::now() + std::chrono::seconds(30);
  while (answered.load() < 2 * kPerThread && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));  // polling, bounded
  }
  ASSERT_EQ(answered.load(), 2 * kPerThread);
  EXPECT_EQ(fallbacks.load(), 0);
  const double elapsed_s = static_cast<double>(last_send_ns.load()) / 1e9;
  const double expected = static_cast<double>(kBurst) + kRate * elapsed_s;
  EXPECT_NEAR(static_cast<double>(allowed.load()), expected, 0.05 * expected)
      << "allowed " << allowed.load() << ", refused " << refused.load() << " over " << elapsed_s
      << " s";
  EXPECT_GT(refused.load(), 0);
  // The key expires once its bucket is full again: it has a TTL.
  RawConn raw = redis_test::RawConnect(server_->port());
  auto ttl = Raw(raw.get(), {"PTTL", key});
  ASSERT_TRUE(ttl && ttl->type == REDIS_REPLY_INTEGER);
  EXPECT_GT(ttl->integer, 0);
  EXPECT_LE(ttl->integer, 1000 * kBurst / static_cast<int64_t>(kRate) + 2);
}

// A decision on two limits takes both or neither.
TEST_F(RedisRateLimiterTest, TwoLimitsAreAllOrNothing) {
  auto l = Make(Opts(milliseconds(1000)));
  ASSERT_TRUE(l);
  const Limit tenant = MakeLimit("test:t:acme", 0.001, 5);
  const Limit model = MakeLimit("test:tm:acme:m", 0.001, 1);
  Answer first = DecideAndWait(*l, {tenant, model}, 2);
  ASSERT_EQ(first.result.fallback, Fallback::kNone);
  EXPECT_TRUE(first.result.allowed);
  EXPECT_EQ(first.result.remaining_reset_us[0].first, 4);
  EXPECT_EQ(first.result.remaining_reset_us[1].first, 0);
  // The model limit refuses: the tenant's is not used up.
  Answer second = DecideAndWait(*l, {tenant, model}, 2);
  ASSERT_EQ(second.result.fallback, Fallback::kNone);
  EXPECT_FALSE(second.result.allowed);
  EXPECT_GT(second.result.retry_after_us, 900'000'000);  // one interval: 1000 s
  EXPECT_EQ(second.result.remaining_reset_us[0].first, 4);
  EXPECT_EQ(second.result.remaining_reset_us[1].first, 0);
  for (int i = 0; i < 4; ++i) {
    Answer t = DecideAndWait(*l, {tenant, Limit{}}, 1);
    EXPECT_TRUE(t.result.allowed) << i;
    EXPECT_EQ(t.result.remaining_reset_us[0].first, 3 - i);
  }
  EXPECT_FALSE(DecideAndWait(*l, {tenant, Limit{}}, 1).result.allowed);
}

// SCRIPT FLUSH (or a restarted Redis) loses the script: the NOSCRIPT
// reply makes the limiter load it again and send the decision once more.
TEST_F(RedisRateLimiterTest, LoadsTheScriptAgainAfterNoscript) {
  auto l = Make(Opts(milliseconds(1000)));
  ASSERT_TRUE(l);
  const Limit limit = MakeLimit("test:noscript", 1000, 1000);
  EXPECT_TRUE(DecideAndWait(*l, {limit, Limit{}}, 1).result.allowed);
  EXPECT_EQ(l->GetStats().script_loads, 1u);
  RawConn raw = redis_test::RawConnect(server_->port());
  auto flushed = Raw(raw.get(), {"SCRIPT", "FLUSH"});
  ASSERT_TRUE(flushed && flushed->type == REDIS_REPLY_STATUS);
  Answer a = DecideAndWait(*l, {limit, Limit{}}, 1);
  EXPECT_EQ(a.result.fallback, Fallback::kNone);
  EXPECT_TRUE(a.result.allowed);
  RedisRateLimiter::Stats s = l->GetStats();
  EXPECT_EQ(s.noscript, 1u);
  EXPECT_EQ(s.script_loads, 2u);
  EXPECT_EQ(s.decided, 2u);
  EXPECT_EQ(s.fallbacks, 0u);
}

// A killed server: errors, then the circuit opens and decisions fall back
// at once, on the caller's thread; a probe after circuit_open finds the
// server back. No call blocks: Decide returns at once, and every answer
// comes within about 2 x timeout.
TEST_F(RedisRateLimiterTest, AKilledServerFallsBackAndOpensTheCircuit) {
  FakeClock clock;
  auto o = Opts(milliseconds(100));
  o.clock = &clock;
  o.failures_to_open = 3;
  o.circuit_open = milliseconds(1000);
  auto l = Make(o);
  ASSERT_TRUE(l);
  const Limit limit = MakeLimit("test:killed", 1000, 1000);
  ASSERT_TRUE(DecideAndWait(*l, {limit, Limit{}}, 1).result.allowed);
  server_->Kill();
  const auto bound = 2 * o.timeout + milliseconds(400);  // slack for a loaded machine
  for (int i = 0; i < 3; ++i) {
    Answer a = DecideAndWait(*l, {limit, Limit{}}, 1);
    EXPECT_TRUE(a.result.fallback == Fallback::kError || a.result.fallback == Fallback::kTimeout)
        << i << ": " << static_cast<int>(a.result.fallback);
    EXPECT_FALSE(a.result.allowed);
    EXPECT_LT(a.call, o.timeout) << i;
    EXPECT_LT(a.total, bound) << i;
  }
  EXPECT_EQ(l->GetStats().circuit_opens, 1u);
  for (int i = 0; i < 5; ++i) {
    Answer a = DecideAndWait(*l, {limit, Limit{}}, 1);
    EXPECT_EQ(a.result.fallback, Fallback::kCircuitOpen) << i;
    EXPECT_TRUE(a.inline_answer) << i;
    EXPECT_LT(a.total, o.timeout) << i;
  }
  // Still down at the probe: open again.
  clock.Advance(o.circuit_open);
  Answer probe = DecideAndWait(*l, {limit, Limit{}}, 1);
  EXPECT_EQ(probe.result.fallback, Fallback::kError);
  EXPECT_EQ(l->GetStats().circuit_opens, 2u);
  EXPECT_EQ(DecideAndWait(*l, {limit, Limit{}}, 1).result.fallback, Fallback::kCircuitOpen);
  // Back up (an empty Redis: the script is loaded on connect).
  ASSERT_TRUE(server_->Start());
  clock.Advance(o.circuit_open);
  Answer back = DecideAndWait(*l, {limit, Limit{}}, 1);
  EXPECT_EQ(back.result.fallback, Fallback::kNone);
  EXPECT_TRUE(back.result.allowed);
  EXPECT_FALSE(l->GetStats().circuit_open);
}

// A server that stops answering: the decision times out within about
// 2 x timeout.
TEST_F(RedisRateLimiterTest, AStoppedServerTimesOut) {
  auto o = Opts(milliseconds(100));
  auto l = Make(o);
  ASSERT_TRUE(l);
  const Limit limit = MakeLimit("test:paused", 1000, 1000);
  ASSERT_TRUE(DecideAndWait(*l, {limit, Limit{}}, 1).result.allowed);
  server_->Pause();
  Answer a = DecideAndWait(*l, {limit, Limit{}}, 1);
  server_->Resume();
  EXPECT_EQ(a.result.fallback, Fallback::kTimeout);
  EXPECT_LT(a.call, o.timeout);
  EXPECT_LT(a.total, 2 * o.timeout + milliseconds(400));
  EXPECT_GE(a.total, o.timeout);
  // The connection was closed; the next decision reconnects.
  EXPECT_EQ(DecideAndWait(*l, {limit, Limit{}}, 1).result.fallback, Fallback::kNone);
}

// Beyond max_pending waiting decisions, Decide answers kQueueFull at once.
TEST_F(RedisRateLimiterTest, AFullQueueFallsBackAtOnce) {
  FakeClock clock;  // queued decisions never go stale
  auto o = Opts(milliseconds(2000));
  o.clock = &clock;
  o.max_pending = 2;
  o.max_pipeline = 1;
  auto l = Make(o);
  ASSERT_TRUE(l);
  const Limit limit = MakeLimit("test:queue", 1000, 1000);
  ASSERT_TRUE(DecideAndWait(*l, {limit, Limit{}}, 1).result.allowed);  // connected
  server_->Pause();  // the Redis thread waits on its first decision
  constexpr int kSent = 6;
  std::atomic<int> answered{0}, queue_full_inline{0};
  const auto caller = std::this_thread::get_id();
  for (int i = 0; i < kSent; ++i) {
    const auto t0 = steady_clock::now();
    l->Decide({limit, Limit{}}, 1, [&](Result r) {
      if (r.fallback == Fallback::kQueueFull && std::this_thread::get_id() == caller)
        queue_full_inline.fetch_add(1);
      answered.fetch_add(1);
    });
    EXPECT_LT(steady_clock::now() - t0, milliseconds(100)) << "Decide blocked";
  }
  // At most one decision in flight and max_pending queued.
  EXPECT_GE(queue_full_inline.load(), kSent - 1 - 2);
  server_->Resume();
  const auto deadline = steady_clock::now() + std::chrono::seconds(30);
  while (answered.load() < kSent && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));  // polling, bounded
  }
  EXPECT_EQ(answered.load(), kSent);
}

// Shutdown answers what is queued, and every later decision, kError.
TEST_F(RedisRateLimiterTest, ShutdownAnswersEveryDecision) {
  auto l = Make(Opts(milliseconds(1000)));
  ASSERT_TRUE(l);
  const Limit limit = MakeLimit("test:shutdown", 1000, 1000);
  std::atomic<int> answered{0};
  for (int i = 0; i < 50; ++i) l->Decide({limit, Limit{}}, 1, [&](Result) { answered++; });
  l->Shutdown();
  EXPECT_EQ(answered.load(), 50);
  Answer late = DecideAndWait(*l, {limit, Limit{}}, 1);
  EXPECT_EQ(late.result.fallback, Fallback::kError);
  EXPECT_TRUE(late.inline_answer);
}

}  // namespace
}  // namespace inferd
