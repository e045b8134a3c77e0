#include "server/server_metrics.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>

namespace inferd {
namespace {

TEST(ServerMetricsTest, ForIsStablePerLabelSetAndAcrossThreads) {
  Registry registry;
  ServerMetrics metrics(&registry);
  ModelMetrics* a = metrics.For("m", 1);
  EXPECT_EQ(metrics.For("m", 1), a);  // from this thread's cache
  EXPECT_NE(metrics.For("m", 2), a);
  EXPECT_NE(metrics.For("n", 1), a);
  // More label sets than a thread caches: answers stay right.
  for (int v = 1; v <= 10; ++v) EXPECT_EQ(metrics.For("x", v), metrics.For("x", v));
  EXPECT_EQ(metrics.For("m", 1), a);
  ModelMetrics* other_thread = nullptr;
  std::thread([&] { other_thread = metrics.For("m", 1); }).join();
  EXPECT_EQ(other_thread, a);
}

// A thread's cache of For() never answers for an earlier instance, even one
// that lived at the same address (its pointers died with it): under ASan a
// stale answer would be a use after free, and the counts would be missing
// from the new registry.
TEST(ServerMetricsTest, ANewInstanceIsNeverAnsweredFromAnEarlierOnesCache) {
  for (int round = 0; round < 3; ++round) {
    Registry registry;
    auto metrics = std::make_unique<ServerMetrics>(&registry);
    ModelMetrics* m = metrics->For("m", 1);
    m->outcomes[0]->Increment();
    std::string text = registry.ExposeText();
    EXPECT_NE(text.find("inferd_requests_total{model=\"m\",version=\"1\",outcome=\"success\"} 1"),
              std::string::npos)
        << text;
  }
}

}  // namespace
}  // namespace inferd
