// Tests of the exact-repeat memo, a stage of the one request path: keys by
// the request bytes, answers without decoding, shares the canonical entry's
// TTL, is invalidated with the model, never serves stale entries; and memo
// hits are counted like every other request.

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

#include "server/inference_server.h"
#include "server/inference_server_test_util.h"

namespace inferd::server_test {
namespace {

using std::chrono::seconds;

struct Bytes {
  std::string model = "m";
  std::string version;
  std::string encoding = "json";
  std::string body = R"({"inputs":[1.5,-2]})";
  bool no_cache = false;
};

// What a protocol adapter would be: bytes in, a fixed encoding out.
class BytesExchange final : public InferExchange {
 public:
  struct Seen {
    bool decoded = false;
    std::promise<StatusOr<EncodedReply>> reply;
  };
  BytesExchange(const Bytes& b, std::string encoded_as, std::shared_ptr<Seen> seen,
                std::function<void()> on_encode)
      : bytes_(b.body),
        encoding_(b.encoding),
        encoded_as_(std::move(encoded_as)),
        seen_(std::move(seen)),
        on_encode_(std::move(on_encode)) {
    model = b.model;
    version = b.version;
    no_cache = b.no_cache;
  }
  std::string_view body() const override { return bytes_; }
  std::string_view encoding() const override { return encoding_; }
  StatusOr<InferRequest> Decode(const ModelConfig&) override {
    seen_->decoded = true;
    InferRequest r;
    r.model = model;
    r.id = "bytes";
    r.inputs.push_back({"x", Fp32({1.5f, -2.0f})});
    return r;
  }
  Status Encode(const InferResponse&, EncodedReply* reply) override {
    if (on_encode_) on_encode_();
    reply->body = encoded_as_;
    reply->framing = "F";
    return Status::OK();
  }
  void Complete(StatusOr<EncodedReply> reply) override { seen_->reply.set_value(std::move(reply)); }

 private:
  std::string bytes_, encoding_, encoded_as_;
  std::shared_ptr<Seen> seen_;
  std::function<void()> on_encode_;
};

class MemoTest : public InferenceServerCacheTest {
 protected:
  struct Answer {
    StatusOr<EncodedReply> reply = InternalError("no answer");
    bool decoded = false;
  };
  Answer Submit(const Bytes& b, std::string encoded_as = "ENCODED",
                std::function<void()> on_encode = nullptr) {
    auto seen = std::make_shared<BytesExchange::Seen>();
    auto f = seen->reply.get_future();
    server_->Submit(
        std::make_unique<BytesExchange>(b, std::move(encoded_as), seen, std::move(on_encode)));
    Answer a;
    if (f.wait_for(kGuard) != std::future_status::ready) return a;
    a.reply = f.get();
    a.decoded = seen->decoded;
    return a;
  }
  // A miss (not memoized) then a canonical hit, which is memoized.
  void FillMemo(const Bytes& b, const std::string& encoded_as = "ENCODED") {
    for (CacheStatus want : {CacheStatus::kMiss, CacheStatus::kHitMemory}) {
      Answer a = Submit(b, encoded_as);
      ASSERT_TRUE(a.reply.ok()) << a.reply.status().message();
      EXPECT_TRUE(a.decoded);
      EXPECT_EQ(a.reply->cache, want);
    }
  }
  // True when `b` is answered by the memo (not decoded).
  bool MemoHit(const Bytes& b) {
    Answer a = Submit(b);
    EXPECT_TRUE(a.reply.ok()) << a.reply.status().message();
    return a.reply.ok() && !a.decoded;
  }
  double Outcome(const std::string& outcome) { return OutcomeCount("m", 2, outcome); }
};

TEST_F(MemoTest, AnExactRepeatIsAnsweredWithoutDecodingWithTheCanonicalEntrysAge) {
  FillMemo(Bytes{});
  clock_.Advance(seconds(3));
  Answer a = Submit(Bytes{}, "NOT USED");
  ASSERT_TRUE(a.reply.ok());
  EXPECT_FALSE(a.decoded);
  EXPECT_EQ(a.reply->body, "ENCODED");
  EXPECT_EQ(a.reply->framing, "F");
  EXPECT_EQ(a.reply->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(a.reply->age_s, 3);
  EXPECT_EQ(backend_.executions(), 1);
  Bytes v2;
  v2.version = "2";  // the version as requested resolves to the same version
  EXPECT_TRUE(MemoHit(v2));
}

TEST_F(MemoTest, MemoHitsAreCountedAndAccountedLikeEveryRequest) {
  FillMemo(Bytes{});
  const double before = Outcome("success");
  ASSERT_TRUE(MemoHit(Bytes{}));
  EXPECT_EQ(Outcome("success"), before + 1);
  EXPECT_EQ(metrics_->InFlight(), 0);
}

TEST_F(MemoTest, AnyOtherByteEncodingOrVersionMisses) {
  FillMemo(Bytes{});
  Bytes spaced;
  spaced.body = R"({"inputs":[1.5,-2] })";
  EXPECT_FALSE(MemoHit(spaced));
  Bytes binary;
  binary.encoding = "binary;8";
  EXPECT_FALSE(MemoHit(binary));
  Bytes v1;
  v1.version = "1";  // another model version
  EXPECT_FALSE(MemoHit(v1));
}

TEST_F(MemoTest, ExpiresWithTheCanonicalEntryAndIsNeverServedStale) {
  FillMemo(Bytes{});
  clock_.Advance(seconds(11));  // past ttl_s = 10 (max_stale_s = 60)
  backend_.set_fail(true);
  for (int i = 0; i < 2; ++i) {  // stale-if-error answers, and is not memoized
    Answer a = Submit(Bytes{}, "STALE");
    ASSERT_TRUE(a.reply.ok()) << a.reply.status().message();
    EXPECT_TRUE(a.decoded) << i;
    EXPECT_EQ(a.reply->cache, CacheStatus::kStale);
  }
}

TEST_F(MemoTest, InvalidatingTheModelDropsTheMemo) {
  FillMemo(Bytes{});
  ASSERT_TRUE(cache_->InvalidateModel("m").ok());
  EXPECT_FALSE(MemoHit(Bytes{}));  // a miss: runs again, stored again
  EXPECT_FALSE(MemoHit(Bytes{}));  // a canonical hit of bytes seen before: memoized
  EXPECT_TRUE(MemoHit(Bytes{}));
  ASSERT_TRUE(cache_->Clear().ok());
  EXPECT_FALSE(MemoHit(Bytes{}));
}

TEST_F(MemoTest, OnlyForCachedModelsSmallBodiesAndKnownModels) {
  Bytes nocache;
  nocache.model = "nocache";
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(MemoHit(nocache)) << i;
  Bytes big;
  big.body = std::string(5000, ' ');  // above the default encoded_max_bytes (4096)
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(MemoHit(big)) << i;
  Bytes unknown;
  unknown.model = "nope";
  EXPECT_EQ(Submit(unknown).reply.status().code(), StatusCode::kNotFound);
}

TEST_F(MemoTest, ANoCacheRefreshDropsTheMemo) {
  FillMemo(Bytes{});
  Bytes refresh;
  refresh.no_cache = true;
  Answer a = Submit(refresh);
  ASSERT_TRUE(a.reply.ok());
  EXPECT_TRUE(a.decoded);
  EXPECT_EQ(a.reply->cache, CacheStatus::kMiss);
  EXPECT_EQ(backend_.executions(), 2);
}

TEST_F(MemoTest, AStoreRacingAnInvalidationDoesNotSurviveIt) {
  FillMemo(Bytes{});
  Bytes other;
  other.body = R"({"inputs":[1.5,-2],"id":"x"})";
  ASSERT_TRUE(Submit(other, "OLD").reply.ok());  // seen once
  // A hit whose memo store comes after an invalidation made while it was
  // being answered: dropped, so the next repeat is decoded again.
  ASSERT_TRUE(
      Submit(other, "OLD", [&] { ASSERT_TRUE(cache_->InvalidateModel("m").ok()); }).reply.ok());
  EXPECT_FALSE(MemoHit(other));
}

TEST_F(MemoTest, BodiesThatNeverRepeatExactlyAreNotMemoized) {
  ASSERT_TRUE(InferSync(Request("fill")).ok());  // the canonical entry
  for (int i = 0; i < 20; ++i) {
    // Every request a canonical hit, but with its own bytes: seen once each.
    Bytes b;
    b.body = R"({"id":")" + std::to_string(i) + R"(","inputs":[1.5,-2]})";
    Answer a = Submit(b);
    ASSERT_TRUE(a.reply.ok()) << a.reply.status().message();
    ASSERT_EQ(a.reply->cache, CacheStatus::kHitMemory);
    EXPECT_TRUE(a.decoded);
    EXPECT_FALSE(MemoHit(b)) << i;  // the second sighting memoizes; the first did not
  }
}

}  // namespace
}  // namespace inferd::server_test
