#include "metrics/metrics.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace inferd {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(CounterTest, IncrementsAndIgnoresNegativeOrNaN) {
  Counter c;
  EXPECT_EQ(c.Value(), 0);
  c.Increment();
  c.Increment(2.5);
  c.Increment(-1);
  c.Increment(kNaN);
  EXPECT_EQ(c.Value(), 3.5);
}

TEST(GaugeTest, SetAndAdd) {
  Gauge g;
  g.Set(5);
  g.Add(-2);
  g.Add(0.5);
  EXPECT_EQ(g.Value(), 3.5);
  g.Set(-1);
  EXPECT_EQ(g.Value(), -1);
  // Adds from other threads land in other stripes; a Set replaces them all.
  std::thread([&] { g.Add(10); }).join();
  std::thread([&] { g.Add(100); }).join();
  EXPECT_EQ(g.Value(), 109);
  g.Set(7);
  EXPECT_EQ(g.Value(), 7);
}

TEST(HistogramTest, BucketsAreCumulativeAndUpperInclusive) {
  Histogram h({1, 2, 5});
  for (double v : {0.5, 1.0, 1.5, 3.0, 10.0, kInf}) h.Observe(v);
  h.Observe(-kInf);
  Histogram::Snapshot s = h.Snap();
  EXPECT_EQ(s.bounds, (std::vector<double>{1, 2, 5}));
  EXPECT_EQ(s.cumulative_counts, (std::vector<uint64_t>{3, 4, 5, 7}));
  EXPECT_EQ(s.count, 7u);
  EXPECT_TRUE(std::isnan(s.sum));  // +Inf + -Inf
}

TEST(HistogramTest, SumAndNaNGoesToInfBucket) {
  Histogram h({1});
  h.Observe(0.25);
  h.Observe(0.5);
  Histogram::Snapshot s = h.Snap();
  EXPECT_EQ(s.sum, 0.75);
  EXPECT_EQ(s.cumulative_counts, (std::vector<uint64_t>{2, 2}));
  h.Observe(kNaN);
  s = h.Snap();
  EXPECT_EQ(s.cumulative_counts, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(s.count, 3u);
}

TEST(HistogramTest, NormalizesBounds) {
  Histogram h({5, 1, 1, kInf, kNaN, 2});
  EXPECT_EQ(h.bounds(), (std::vector<double>{1, 2, 5}));
  Histogram empty({});
  empty.Observe(3);
  EXPECT_EQ(empty.Snap().cumulative_counts, (std::vector<uint64_t>{1}));
}

TEST(BucketsTest, Exponential) {
  EXPECT_EQ(ExponentialBuckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(ExponentialBuckets(0.1, 3, 3), (std::vector<double>{0.1, 0.3, 0.9}));
  EXPECT_TRUE(ExponentialBuckets(0, 2, 4).empty());
  EXPECT_TRUE(ExponentialBuckets(1, 1, 4).empty());
  EXPECT_TRUE(ExponentialBuckets(1, 2, 0).empty());
}

TEST(BucketsTest, LatencyBucketsSpan50usTo60s) {
  std::vector<double> b = LatencyBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), 50e-6);
  EXPECT_EQ(b.back(), 60);
  for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
}

TEST(FormatTest, Numbers) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(-0.0), "0");
  EXPECT_EQ(FormatMetricValue(42), "42");
  EXPECT_EQ(FormatMetricValue(-7), "-7");
  EXPECT_EQ(FormatMetricValue(1234567890123), "1234567890123");
  EXPECT_EQ(FormatMetricValue(0.25), "0.25");
  EXPECT_EQ(FormatMetricValue(5e-05), "5e-05");
  EXPECT_EQ(FormatMetricValue(1e20), "1e+20");
  EXPECT_EQ(FormatMetricValue(kInf), "+Inf");
  EXPECT_EQ(FormatMetricValue(-kInf), "-Inf");
  EXPECT_EQ(FormatMetricValue(kNaN), "NaN");
  double third = 1.0 / 3;
  EXPECT_EQ(std::strtod(FormatMetricValue(third).c_str(), nullptr), third);
}

TEST(FormatTest, LabelEscaping) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  Registry r;
  r.AddCounter("x_total", "X.", {"path"})->WithLabels({"C:\\dir \"q\"\nend"})->Increment();
  EXPECT_NE(r.ExposeText().find("x_total{path=\"C:\\\\dir \\\"q\\\"\\nend\"} 1\n"),
            std::string::npos);
}

TEST(FamilyTest, ChildrenAreStableAndDistinct) {
  Registry r;
  Family<Counter>* f = r.AddCounter("req_total", "Requests.", {"model"});
  Counter* a = f->WithLabels({"a"});
  Counter* b = f->WithLabels({"b"});
  EXPECT_NE(a, b);
  for (int i = 0; i < 100; ++i) f->WithLabels({std::to_string(i)});
  EXPECT_EQ(f->WithLabels({"a"}), a);
  Family<Gauge>* g = r.AddGauge("up", "Up.", {});
  EXPECT_EQ(g->WithLabels({}), g->WithLabels({}));
}

TEST(RegistryTest, SameNameSameTypeReturnsExisting) {
  Registry r;
  auto* a = r.AddHistogram("lat_seconds", "Latency.", {"m"}, {1, 2});
  auto* b = r.AddHistogram("lat_seconds", "Other help.", {"m"}, {2, 1});
  EXPECT_EQ(a, b);
}

TEST(RegistryDeathTest, ClashesAndMisuseAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  r.AddCounter("dup_total", "D.", {"a"});
  EXPECT_DEATH(r.AddGauge("dup_total", "D.", {"a"}), "registered as counter");
  EXPECT_DEATH(r.AddCounter("dup_total", "D.", {"b"}), "different label names");
  EXPECT_DEATH(r.AddCounter("bad-name", "B.", {}), "invalid metric name");
  EXPECT_DEATH(r.AddCounter("ok_total", "B.", {"__x"}), "invalid label name");
  EXPECT_DEATH(r.AddHistogram("h", "H.", {"le"}, {1}), "reserved");
  EXPECT_DEATH(r.AddCounter("dup_total", "D.", {"a"})->WithLabels({}), "label names");
}

TEST(RegistryTest, ExpositionIsExact) {
  Registry r;
  auto* req = r.AddCounter("inferd_requests_total", "Requests served.", {"model", "code"});
  req->WithLabels({"resnet", "200"})->Increment(3);
  req->WithLabels({"bert", "500"})->Increment();
  r.AddGauge("inferd_queue_depth", "Tasks waiting.\nSecond \\ line", {})->WithLabels({})->Set(2.5);
  auto* lat = r.AddHistogram("inferd_latency_seconds", "Latency.", {"model"}, {0.1, 1});
  Histogram* h = lat->WithLabels({"m"});
  h->Observe(0.25);
  h->Observe(0.5);
  h->Observe(2);
  r.AddCounter("inferd_unused_total", "Never labelled.", {"x"});

  EXPECT_EQ(r.ExposeText(),
            "# HELP inferd_requests_total Requests served.\n"
            "# TYPE inferd_requests_total counter\n"
            "inferd_requests_total{model=\"bert\",code=\"500\"} 1\n"
            "inferd_requests_total{model=\"resnet\",code=\"200\"} 3\n"
            "# HELP inferd_queue_depth Tasks waiting.\\nSecond \\\\ line\n"
            "# TYPE inferd_queue_depth gauge\n"
            "inferd_queue_depth 2.5\n"
            "# HELP inferd_latency_seconds Latency.\n"
            "# TYPE inferd_latency_seconds histogram\n"
            "inferd_latency_seconds_bucket{model=\"m\",le=\"0.1\"} 0\n"
            "inferd_latency_seconds_bucket{model=\"m\",le=\"1\"} 2\n"
            "inferd_latency_seconds_bucket{model=\"m\",le=\"+Inf\"} 3\n"
            "inferd_latency_seconds_sum{model=\"m\"} 2.75\n"
            "inferd_latency_seconds_count{model=\"m\"} 3\n"
            "# HELP inferd_unused_total Never labelled.\n"
            "# TYPE inferd_unused_total counter\n");
}

TEST(RegistryTest, CollectHooksRunBeforeExposition) {
  Registry r;
  Gauge* rss = r.AddGauge("process_resident_memory_bytes", "RSS.", {})->WithLabels({});
  int runs = 0;
  r.AddCollectHook([&] {
    ++runs;
    rss->Set(static_cast<double>(ProcessResidentBytes()));
  });
  std::string text = r.ExposeText();
  EXPECT_EQ(runs, 1);
  EXPECT_GT(rss->Value(), 0);
  EXPECT_NE(text.find("process_resident_memory_bytes " + FormatMetricValue(rss->Value())),
            std::string::npos);
  r.ExposeText();
  EXPECT_EQ(runs, 2);
}

TEST(ProcessTest, ResidentBytesIsPositive) {
  int64_t rss = ProcessResidentBytes();
  EXPECT_GT(rss, 1 << 20);  // a gtest binary is bigger than 1 MiB
}

TEST(ConcurrencyTest, ConcurrentUpdatesGiveExactTotals) {
  Registry r;
  auto* counters = r.AddCounter("c_total", "C.", {"k"});
  auto* gauge = r.AddGauge("g", "G.", {})->WithLabels({});
  auto* hist = r.AddHistogram("h", "H.", {}, {0.5})->WithLabels({});
  constexpr int kThreads = 4;
  constexpr int kIterations = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter* shared = counters->WithLabels({"shared"});
      for (int i = 0; i < kIterations; ++i) {
        shared->Increment();
        gauge->Add(t % 2 == 0 ? 2 : -1);
        hist->Observe(i % 2 == 0 ? 0.25 : 1);
      }
    });
  }
  std::thread scraper([&] {
    for (int i = 0; i < 20; ++i) r.ExposeText();
  });
  for (auto& th : threads) th.join();
  scraper.join();
  EXPECT_EQ(counters->WithLabels({"shared"})->Value(), double{kThreads} * kIterations);
  EXPECT_EQ(gauge->Value(), double{kThreads} / 2 * kIterations);
  Histogram::Snapshot s = hist->Snap();
  EXPECT_EQ(s.count, uint64_t{kThreads} * kIterations);
  EXPECT_EQ(s.cumulative_counts[0], uint64_t{kThreads} * kIterations / 2);
  EXPECT_EQ(s.sum, kThreads * (kIterations / 2) * 1.25);
}

bool HavePromtool() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

TEST(PromtoolTest, AcceptsExpositionOfEveryKind) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  Registry r;
  auto* req = r.AddCounter("inferd_requests_total", "Requests served, by model and code.",
                           {"model", "code"});
  req->WithLabels({"resnet18", "200"})->Increment(41);
  req->WithLabels({"we\"ird\\model\nname", "500"})->Increment(0.5);
  r.AddCounter("inferd_cache_hits_total", "Cache hits.", {});
  auto* depth = r.AddGauge("inferd_queue_depth", "Tasks waiting.\nPer model.", {"model"});
  depth->WithLabels({"resnet18"})->Set(3);
  depth->WithLabels({"neg"})->Set(-kInf);
  depth->WithLabels({"big"})->Set(1e20);
  depth->WithLabels({"nan"})->Set(kNaN);
  r.AddGauge("process_resident_memory_bytes", "Resident memory.", {})
      ->WithLabels({})
      ->Set(static_cast<double>(ProcessResidentBytes()));
  auto* lat = r.AddHistogram("inferd_request_duration_seconds", "Request latency.", {"model"},
                             LatencyBuckets());
  for (double v : {0.00001, 0.003, 0.2, 1.7, 100.0}) lat->WithLabels({"resnet18"})->Observe(v);
  r.AddHistogram("inferd_batch_size", "Batch sizes.", {}, ExponentialBuckets(1, 2, 6))
      ->WithLabels({})
      ->Observe(4);
  r.AddHistogram("inferd_unused_seconds", "No children yet.", {"model"}, {1});
  std::string text = r.ExposeText();

  std::FILE* p = popen("promtool check metrics", "w");
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(std::fwrite(text.data(), 1, text.size(), p), text.size());
  int status = pclose(p);
  ASSERT_TRUE(WIFEXITED(status)) << text;
  EXPECT_EQ(WEXITSTATUS(status), 0) << text;
}

}  // namespace
}  // namespace inferd
