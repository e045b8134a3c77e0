#include "sched/adaptive_batching.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <random>
#include <vector>

namespace inferd {
namespace {

using std::chrono::duration;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

Duration Ms(double ms) { return duration_cast<Duration>(duration<double, std::milli>(ms)); }

TEST(BatchCostModelTest, RecoversALinearCostFromNoisySamples) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> size(1, 32);
  std::uniform_real_distribution<double> noise(0.95, 1.05);
  BatchCostModel m;
  for (int i = 0; i < 200; ++i) {
    const int n = size(rng);
    m.Add(n, Ms((20 + 8 * n) * noise(rng)));
  }
  ASSERT_TRUE(m.fitted());
  EXPECT_NEAR(m.b(), 0.008, 0.008 * 0.03);
  EXPECT_NEAR(m.a(), 0.020, 0.020 * 0.15);
  EXPECT_NEAR(m.Predict(16), 0.148, 0.148 * 0.02);
}

TEST(BatchCostModelTest, NeedsTwoSizesAndKeepsTheLastFit) {
  BatchCostModel m;
  for (int i = 0; i < 20; ++i) m.Add(4, Ms(52));
  EXPECT_FALSE(m.fitted());                // one size: no slope to fit
  EXPECT_NEAR(m.Predict(8), 0.104, 1e-9);  // proportional until then
  for (int i = 0; i < 64; ++i) m.Add(i % 2 ? 2 : 6, Ms(i % 2 ? 36 : 68));
  ASSERT_TRUE(m.fitted());
  EXPECT_NEAR(m.a(), 0.020, 1e-9);
  EXPECT_NEAR(m.b(), 0.008, 1e-9);
  for (int i = 0; i < 64; ++i) m.Add(4, Ms(100));  // a window of one size
  EXPECT_NEAR(m.b(), 0.008, 1e-9);                 // keeps the previous fit
}

TEST(BatchCostModelTest, ClampsNegativeTerms) {
  BatchCostModel m;
  for (int i = 0; i < 16; ++i)
    m.Add(i % 2 ? 1 : 8, Ms(i % 2 ? 10 : 9));  // bigger is cheaper: noise
  ASSERT_TRUE(m.fitted());
  EXPECT_EQ(m.b(), 0);
  EXPECT_NEAR(m.a(), 0.0095, 1e-9);
}

AdaptiveBatching::Options Opts(double target_ms, int64_t max) {
  AdaptiveBatching::Options o;
  o.latency_target = Ms(target_ms);
  o.max_batch_size = max;
  o.initial_delay = Ms(2);
  return o;
}

void Teach(AdaptiveBatching& ab, double a_ms, double b_ms) {
  for (int i = 0; i < 16; ++i) {
    const int n = i % 2 ? 2 : 10;
    ab.OnBatch(n, Ms(a_ms + b_ms * n));
  }
}

TEST(AdaptiveBatchingTest, CapAndDelayFromTheFit) {
  AdaptiveBatching ab(Opts(300, 32));
  EXPECT_EQ(ab.cap(), 32);  // before any batch: the configured bound and delay
  EXPECT_EQ(ab.delay(), Ms(2));
  Teach(ab, 20, 8);
  // B = 0.8 x 300 = 240 ms; 2 (20 + 8n) <= 240 -> n = 12; delay = 240 - 2 x 116.
  EXPECT_EQ(ab.cap(), 12);
  using MsD = duration<double, std::milli>;
  EXPECT_NEAR(MsD(ab.delay()).count(), 8, 1e-3);
  EXPECT_FALSE(ab.infeasible());
  const Time t0 = Time{} + std::chrono::hours(1);
  EXPECT_EQ(ab.Policy(t0).max_queue_delay, Duration::zero());            // no arrivals: no waiting
  for (int i = 0; i < 1000; ++i) ab.OnArrival(t0 + milliseconds(i), 1);  // ~1000 items/s
  const BatchPolicy p = ab.Policy(t0 + milliseconds(1000));
  EXPECT_EQ(p.max_batch_size, 12);
  EXPECT_EQ(p.max_queue_delay, ab.delay());
}

TEST(AdaptiveBatchingTest, InfeasibleTargetsRunOneAtATime) {
  AdaptiveBatching ab(Opts(40, 32));
  Teach(ab, 20, 8);  // 2 x (20 + 8) > 32 ms
  EXPECT_TRUE(ab.infeasible());
  EXPECT_EQ(ab.cap(), 1);
  EXPECT_EQ(ab.delay(), Duration::zero());
}

// A discrete-event simulation in virtual time: Poisson arrivals of one item
// each, `instances` servers whose batch of n takes a + b n, the batcher's
// rule (ChooseBatch) with a fixed or an adaptive policy.
struct SimResult {
  double within_target = 0;  // share of requests done within the target
  size_t left_queued = 0;    // backlog at the end
};

SimResult Simulate(double rate, double target_ms, const BatchPolicy* fixed, uint32_t seed) {
  constexpr double kA = 0.020, kB = 0.008;
  constexpr int kInstances = 2;
  constexpr double kSeconds = 60;
  AdaptiveBatching ab(Opts(target_ms, 32));
  std::mt19937 rng(seed);
  std::exponential_distribution<double> gap(rate);
  const Time t0 = Time{} + std::chrono::hours(1);
  auto at = [&](double s) { return t0 + duration_cast<Duration>(duration<double>(s)); };
  std::deque<std::unique_ptr<Task>> queue;
  std::vector<double> busy_until(kInstances, 0);
  std::vector<double> latencies;
  double now = 0, next_arrival = gap(rng), wake = 1e18;
  while (now < kSeconds) {
    while (next_arrival <= now) {
      auto t = std::make_unique<Task>(std::vector<Tensor>{}, 1, "s",
                                      [](StatusOr<std::vector<Tensor>>, const TaskTimings&) {});
      t->timings().enqueued = at(next_arrival);
      ab.OnArrival(at(next_arrival), 1);
      queue.push_back(std::move(t));
      next_arrival += gap(rng);
    }
    wake = 1e18;
    for (int i = 0; i < kInstances && !queue.empty(); ++i) {
      if (busy_until[i] > now) continue;
      int idle = 0;
      for (double b : busy_until) idle += b <= now;
      const BatchPolicy policy = fixed ? *fixed : ab.Policy(at(now));
      BatchChoice c = ChooseBatch(queue, at(now), policy, idle, false);
      if (c.picked.empty()) {
        wake = std::min(wake, duration<double>(c.wake_at - t0).count());
        continue;
      }
      const double compute = kA + kB * static_cast<double>(c.picked.size());
      busy_until[i] = now + compute;
      for (auto it = c.picked.rbegin(); it != c.picked.rend(); ++it) {
        const double enq = duration<double>(queue[*it]->timings().enqueued - t0).count();
        latencies.push_back(busy_until[i] - enq);
        queue.erase(queue.begin() + static_cast<long>(*it));
      }
      ab.OnBatch(static_cast<int64_t>(c.picked.size()), Ms(compute * 1000));
    }
    double next = next_arrival;
    for (double b : busy_until)
      if (b > now) next = std::min(next, b);
    next = std::min(next, wake);
    now = std::max(next, now + 1e-9);
  }
  SimResult r;
  const double target = target_ms / 1000;
  r.within_target = static_cast<double>(std::count_if(latencies.begin(), latencies.end(),
                                                      [&](double l) { return l <= target; })) /
                    static_cast<double>(latencies.size());
  r.left_queued = queue.size();
  for (auto& t : queue) t->Complete(CancelledError("end of simulation"));
  return r;
}

TEST(AdaptiveBatchingTest, MeetsTheTargetWhereFixedSettingsFail) {
  // Capacity: 2 instances x 32 / (20 + 8 x 32) ms = 232 items/s. Offered: 0.6 x that.
  const double rate = 0.6 * 2 * 32 / (0.020 + 0.008 * 32);
  const SimResult adaptive = Simulate(rate, 200, nullptr, 1);
  EXPECT_GE(adaptive.within_target, 0.99);
  EXPECT_LT(adaptive.left_queued, 50u);
  const BatchPolicy tiny{true, 1, Duration::zero(), {}};  // 2 x 1 / 28 ms = 71/s: falls behind
  const SimResult one = Simulate(rate, 200, &tiny, 1);
  EXPECT_GT(one.left_queued, 1000u);
  EXPECT_LT(one.within_target, 0.5);
  const BatchPolicy huge{true, 32, milliseconds(100), {}};  // keeps up, misses the target
  const SimResult big = Simulate(rate, 200, &huge, 1);
  EXPECT_LT(big.left_queued, 50u);
  EXPECT_LT(big.within_target, 0.9);
}

}  // namespace
}  // namespace inferd
