// Tests of the exact-repeat memo (InferenceServer::LookupEncoded and
// StoreEncoded): keys by the request bytes, shares the canonical entry's
// TTL, is invalidated with the model, never serves stale entries.

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "server/inference_server.h"
#include "server/inference_server_test_util.h"

namespace inferd::server_test {
namespace {

using std::chrono::seconds;
using Encoded = InferenceServer::EncodedRequest;

class EncodedMemoTest : public InferenceServerCacheTest {
 protected:
  // Runs the canonical pipeline twice, offering "encoded" to the memo each
  // time as the API does: the miss is not memoized, the repeat (a hit) is.
  InferResponse FillMemo(const Encoded& request, const std::string& encoded) {
    InferResponse last;
    for (CacheStatus want : {CacheStatus::kMiss, CacheStatus::kHitMemory}) {
      auto lookup = server_->LookupEncoded(request);
      EXPECT_TRUE(lookup.ok()) << lookup.status().message();
      EXPECT_TRUE(lookup->key.has_value());
      EXPECT_EQ(lookup->hit, nullptr);
      Result r = InferSync(Request("fill"));
      EXPECT_TRUE(r.ok()) << r.status().message();
      EXPECT_EQ(r->cache, want);
      Offer(*lookup, *r, encoded);
      last = *r;
    }
    return last;
  }

  // What the API does with a response: admit, then store.
  void Offer(const InferenceServer::EncodedLookup& lookup, const InferResponse& r,
             const std::string& encoded) {
    if (server_->AdmitEncoded(*lookup.key, r)) {
      server_->StoreEncoded(*lookup.key, lookup.generation, r, encoded);
    }
  }

  std::shared_ptr<const CacheEntry> Hit(const Encoded& request) {
    auto lookup = server_->LookupEncoded(request);
    EXPECT_TRUE(lookup.ok()) << lookup.status().message();
    return lookup.ok() ? lookup->hit : nullptr;
  }

  const Encoded kBody{"m", "", "json", R"({"inputs":[1.5,-2]})"};
};

TEST_F(EncodedMemoTest, AnExactRepeatHitsWithTheCanonicalEntrysAge) {
  FillMemo(kBody, "ENCODED");
  clock_.Advance(seconds(3));
  auto lookup = server_->LookupEncoded(kBody);
  ASSERT_TRUE(lookup.ok());
  ASSERT_NE(lookup->hit, nullptr);
  EXPECT_EQ(lookup->hit->payload, "ENCODED");
  EXPECT_EQ(lookup->age_s, 3);
  EXPECT_EQ(backend_.executions(), 1);
  // The version as requested resolves to the same version: same entry.
  EXPECT_NE(Hit({"m", "2", "json", kBody.bytes}), nullptr);
}

TEST_F(EncodedMemoTest, AnyOtherByteEncodingOrVersionMisses) {
  FillMemo(kBody, "ENCODED");
  EXPECT_EQ(Hit({"m", "", "json", R"({"inputs":[1.5,-2] })"}), nullptr);
  EXPECT_EQ(Hit({"m", "", "binary;8", kBody.bytes}), nullptr);
  EXPECT_EQ(Hit({"m", "1", "json", kBody.bytes}), nullptr);  // another model version
  Encoded no_cache = kBody;
  no_cache.no_cache = true;
  auto refresh = server_->LookupEncoded(no_cache);
  ASSERT_TRUE(refresh.ok());
  EXPECT_TRUE(refresh->key.has_value());  // may store the refreshed response
  EXPECT_EQ(refresh->hit, nullptr);
}

TEST_F(EncodedMemoTest, ExpiresWithTheCanonicalEntryAndIsNeverServedStale) {
  FillMemo(kBody, "ENCODED");
  clock_.Advance(seconds(11));  // past ttl_s = 10 (max_stale_s = 60)
  EXPECT_EQ(Hit(kBody), nullptr);
  // A stale response (stale-if-error) is not memoized either.
  backend_.set_fail(true);
  auto lookup = server_->LookupEncoded(kBody);
  ASSERT_TRUE(lookup.ok());
  Result stale = InferSync(Request("stale"));
  ASSERT_TRUE(stale.ok()) << stale.status().message();
  ASSERT_EQ(stale->cache, CacheStatus::kStale);
  Offer(*lookup, *stale, "STALE");
  EXPECT_EQ(Hit(kBody), nullptr);
}

TEST_F(EncodedMemoTest, InvalidatingTheModelDropsTheMemo) {
  FillMemo(kBody, "ENCODED");
  ASSERT_TRUE(cache_->InvalidateModel("m").ok());
  EXPECT_EQ(Hit(kBody), nullptr);
  FillMemo(kBody, "AGAIN");
  ASSERT_TRUE(cache_->Clear().ok());
  EXPECT_EQ(Hit(kBody), nullptr);
}

TEST_F(EncodedMemoTest, OnlyForCachedModelsSmallBodiesAndKnownModels) {
  auto nocache = server_->LookupEncoded({"nocache", "", "json", kBody.bytes});
  ASSERT_TRUE(nocache.ok());
  EXPECT_FALSE(nocache->key.has_value());
  std::string big(5000, ' ');  // above the default encoded_max_bytes (4096)
  auto large = server_->LookupEncoded({"m", "", "json", big});
  ASSERT_TRUE(large.ok());
  EXPECT_FALSE(large->key.has_value());
  auto unknown = server_->LookupEncoded({"nope", "", "json", kBody.bytes});
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  // A response that did not go through the cache is not memoized.
  auto lookup = server_->LookupEncoded(kBody);
  ASSERT_TRUE(lookup.ok());
  InferResponse uncached;
  uncached.cache = CacheStatus::kNone;
  uncached.cache_expires_us = clock_.WallMicros() + 1'000'000;
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(server_->AdmitEncoded(*lookup->key, uncached));
}

TEST_F(EncodedMemoTest, ANoCacheRefreshDropsTheMemo) {
  FillMemo(kBody, "ENCODED");
  Encoded refresh = kBody;
  refresh.no_cache = true;
  ASSERT_TRUE(server_->LookupEncoded(refresh).ok());
  EXPECT_EQ(Hit(kBody), nullptr);  // the next repeat takes the canonical path
}

TEST_F(EncodedMemoTest, AStoreRacingAnInvalidationDoesNotSurviveIt) {
  FillMemo(kBody, "ENCODED");
  ASSERT_TRUE(cache_->InvalidateModel("m").ok());
  FillMemo(kBody, "ENCODED");  // canonical entry and memo back
  const Encoded other{"m", "", "json", R"({"inputs":[1.5,-2],"id":"x"})"};
  // Seen once (miss), then a hit read before an invalidation...
  for (int i = 0; i < 2; ++i) {
    auto lookup = server_->LookupEncoded(other);
    ASSERT_TRUE(lookup.ok());
    Result r = InferSync(Request("fill"));
    ASSERT_TRUE(r.ok()) << r.status().message();
    if (i == 1) ASSERT_TRUE(cache_->InvalidateModel("m").ok());  // ...stored after it
    Offer(*lookup, *r, "OLD");
  }
  EXPECT_EQ(Hit(other), nullptr);
}

TEST_F(EncodedMemoTest, BodiesThatNeverRepeatExactlyAreNotMemoized) {
  ASSERT_TRUE(InferSync(Request("fill")).ok());  // the canonical entry
  for (int i = 0; i < 20; ++i) {
    // Every request a canonical hit, but with its own id: never the same bytes.
    const std::string body = R"({"id":")" + std::to_string(i) + R"(","inputs":[1.5,-2]})";
    auto lookup = server_->LookupEncoded({"m", "", "json", body});
    ASSERT_TRUE(lookup.ok());
    Result r = InferSync(Request(std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ(r->cache, CacheStatus::kHitMemory);
    EXPECT_FALSE(server_->AdmitEncoded(*lookup->key, *r)) << i;
  }
}

}  // namespace
}  // namespace inferd::server_test
