// Tests of the pipeline's cache stage (DESIGN.md section 1, steps 2 and 6),
// part 1: lookups, the canonical key, Cache-Control and TTLs. The fake
// backend and the fixture are in inference_server_test_util.h.

#include "server/inference_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "server/inference_server_test_util.h"

namespace inferd::server_test {
namespace {

using std::chrono::microseconds;
using std::chrono::seconds;

// ---------------------------------------------------------------------------
// 1. Miss, then hit.

TEST_F(InferenceServerCacheTest, MissThenHitEchoesEachRequestId) {
  Result first = InferSync(Request("first"));
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->cache, CacheStatus::kMiss);
  EXPECT_EQ(first->id, "first");
  EXPECT_EQ(first->model, "m");
  EXPECT_EQ(first->version, 2);
  EXPECT_EQ(Output(*first, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 1);

  Result second = InferSync(Request("second"));
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(second->age_s, 0);
  EXPECT_EQ(second->id, "second");
  EXPECT_EQ(second->model, "m");
  EXPECT_EQ(second->version, 2);
  EXPECT_EQ(OutputNames(*second), (std::vector<std::string>{"y"}));
  EXPECT_EQ(Output(*second, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 1);

  // Different input bytes are a different request.
  Result other = InferSync(Request("third", {1.5f, -2.5f}));
  ASSERT_TRUE(other.ok()) << other.status().message();
  EXPECT_EQ(other->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*other, "y"), (std::vector<float>{3.0f, -5.0f}));
  EXPECT_EQ(backend_.executions(), 2);
}

// ---------------------------------------------------------------------------
// 2. The canonical key.

InferRequest TwoInputs(const std::string& id, bool a_first, std::vector<std::string> outputs) {
  InferRequest r;
  r.model = "two";
  r.id = id;
  NamedTensor a{"a", Fp32({1.0f, 2.0f})};
  NamedTensor b{"b", Fp32({10.0f, 20.0f})};
  if (a_first) {
    r.inputs = {a, b};
  } else {
    r.inputs = {b, a};
  }
  r.outputs = std::move(outputs);
  return r;
}

TEST_F(InferenceServerCacheTest, InputOrderDoesNotChangeTheKey) {
  Result ab = InferSync(TwoInputs("ab", true, {}));
  ASSERT_TRUE(ab.ok()) << ab.status().message();
  EXPECT_EQ(ab->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*ab, "y"), (std::vector<float>{12.0f, 24.0f}));
  EXPECT_EQ(Output(*ab, "z"), (std::vector<float>{10.0f, 40.0f}));

  Result ba = InferSync(TwoInputs("ba", false, {}));
  ASSERT_TRUE(ba.ok()) << ba.status().message();
  EXPECT_EQ(ba->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(ba->id, "ba");
  EXPECT_EQ(OutputNames(*ba), (std::vector<std::string>{"y", "z"}));
  EXPECT_EQ(Output(*ba, "y"), (std::vector<float>{12.0f, 24.0f}));
  EXPECT_EQ(Output(*ba, "z"), (std::vector<float>{10.0f, 40.0f}));
  EXPECT_EQ(backend_.executions(), 1);

  // Swapping the values of a and b (same names, same order) is another request.
  InferRequest swapped = TwoInputs("swapped", true, {});
  std::swap(swapped.inputs[0].tensor, swapped.inputs[1].tensor);
  Result s = InferSync(std::move(swapped));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*s, "y"), (std::vector<float>{21.0f, 42.0f}));
  EXPECT_EQ(backend_.executions(), 2);
}

TEST_F(InferenceServerCacheTest, RequestedOutputsAreCanonical) {
  Result zy = InferSync(TwoInputs("zy", true, {"z", "y"}));
  ASSERT_TRUE(zy.ok()) << zy.status().message();
  EXPECT_EQ(zy->cache, CacheStatus::kMiss);
  EXPECT_EQ(backend_.executions(), 1);

  // The same set in another order: the same entry.
  Result yz = InferSync(TwoInputs("yz", false, {"y", "z"}));
  ASSERT_TRUE(yz.ok()) << yz.status().message();
  EXPECT_EQ(yz->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(Output(*yz, "y"), (std::vector<float>{12.0f, 24.0f}));
  EXPECT_EQ(Output(*yz, "z"), (std::vector<float>{10.0f, 40.0f}));
  EXPECT_EQ(backend_.executions(), 1);

  // Only y: another entry, holding only y.
  Result y = InferSync(TwoInputs("y", true, {"y"}));
  ASSERT_TRUE(y.ok()) << y.status().message();
  EXPECT_EQ(y->cache, CacheStatus::kMiss);
  EXPECT_EQ(OutputNames(*y), (std::vector<std::string>{"y"}));
  EXPECT_EQ(backend_.executions(), 2);

  // y named twice is the same set as y once.
  Result yy = InferSync(TwoInputs("yy", true, {"y", "y"}));
  ASSERT_TRUE(yy.ok()) << yy.status().message();
  EXPECT_EQ(yy->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(OutputNames(*yy), (std::vector<std::string>{"y"}));
  EXPECT_EQ(Output(*yy, "y"), (std::vector<float>{12.0f, 24.0f}));
  EXPECT_EQ(backend_.executions(), 2);
}

TEST_F(InferenceServerCacheTest, VersionsDoNotShareEntries) {
  Result v2 = InferSync(Request("default"));  // the highest version: 2
  ASSERT_TRUE(v2.ok()) << v2.status().message();
  EXPECT_EQ(v2->version, 2);
  EXPECT_EQ(v2->cache, CacheStatus::kMiss);

  InferRequest r = Request("v1");
  r.version = "1";
  Result v1 = InferSync(std::move(r));
  ASSERT_TRUE(v1.ok()) << v1.status().message();
  EXPECT_EQ(v1->version, 1);
  EXPECT_EQ(v1->cache, CacheStatus::kMiss);
  EXPECT_EQ(backend_.executions(), 2);

  r = Request("v2 explicitly");
  r.version = "2";
  Result again = InferSync(std::move(r));
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->version, 2);
  EXPECT_EQ(again->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(backend_.executions(), 2);
}

// ---------------------------------------------------------------------------
// 3. Cache-Control.

TEST_F(InferenceServerCacheTest, NoStoreKeepsTheResponseOutOfTheCache) {
  InferRequest r = Request("no-store");
  r.no_store = true;
  Result first = InferSync(std::move(r));
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*first, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 1);

  Result second = InferSync(Request("normal"));
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->cache, CacheStatus::kMiss);
  EXPECT_EQ(backend_.executions(), 2);

  Result third = InferSync(Request("normal again"));
  ASSERT_TRUE(third.ok()) << third.status().message();
  EXPECT_EQ(third->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(backend_.executions(), 2);
}

TEST_F(InferenceServerCacheTest, NoCacheSkipsTheLookupAndRefreshesTheEntry) {
  ASSERT_TRUE(InferSync(Request("fill")).ok());
  EXPECT_EQ(backend_.executions(), 1);
  clock_.Advance(seconds(5));
  Result hit = InferSync(Request("hit"));
  ASSERT_TRUE(hit.ok()) << hit.status().message();
  EXPECT_EQ(hit->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(hit->age_s, 5);

  // The model now answers differently; no-cache must see it.
  backend_.set_factor(3.0f);
  InferRequest r = Request("no-cache");
  r.no_cache = true;
  Result refreshed = InferSync(std::move(r));
  ASSERT_TRUE(refreshed.ok()) << refreshed.status().message();
  EXPECT_EQ(refreshed->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*refreshed, "y"), (std::vector<float>{4.5f, -6.0f}));
  EXPECT_EQ(backend_.executions(), 2);

  // The following normal request hits the refreshed entry.
  Result after = InferSync(Request("after"));
  ASSERT_TRUE(after.ok()) << after.status().message();
  EXPECT_EQ(after->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(after->age_s, 0);
  EXPECT_EQ(Output(*after, "y"), (std::vector<float>{4.5f, -6.0f}));
  EXPECT_EQ(backend_.executions(), 2);
}

// ---------------------------------------------------------------------------
// 4. TTL.

TEST_F(InferenceServerCacheTest, EntryExpiresAfterTtl) {
  ASSERT_TRUE(InferSync(Request("fill")).ok());
  EXPECT_EQ(backend_.executions(), 1);

  clock_.Advance(seconds(10));  // exactly ttl_s: still fresh
  Result at_ttl = InferSync(Request("at ttl"));
  ASSERT_TRUE(at_ttl.ok()) << at_ttl.status().message();
  EXPECT_EQ(at_ttl->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(at_ttl->age_s, 10);
  EXPECT_EQ(backend_.executions(), 1);

  clock_.Advance(microseconds(1));  // past it
  Result expired = InferSync(Request("expired"));
  ASSERT_TRUE(expired.ok()) << expired.status().message();
  EXPECT_EQ(expired->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*expired, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 2);

  // The execution stored a fresh entry.
  Result fresh = InferSync(Request("fresh"));
  ASSERT_TRUE(fresh.ok()) << fresh.status().message();
  EXPECT_EQ(fresh->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(fresh->age_s, 0);
  EXPECT_EQ(backend_.executions(), 2);
}

}  // namespace
}  // namespace inferd::server_test
