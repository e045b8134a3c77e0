#include "cache/cache_key.h"

#include <gtest/gtest.h>

#include <cstring>

namespace inferd {
namespace {

Tensor Floats(std::vector<float> v, Shape shape) {
  std::string bytes(v.size() * 4, '\0');
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return Tensor::FromBytes(DataType::kFp32, std::move(shape), std::move(bytes));
}

CacheKey Key(std::string ns, std::string model, int64_t version,
             std::vector<std::pair<std::string, Tensor>> inputs,
             std::vector<std::string> outputs = {}) {
  CacheKeyBuilder b(ns, model, version);
  for (auto& [n, t] : inputs) b.AddInput(n, t);
  for (auto& o : outputs) b.AddOutput(o);
  return b.Finish();
}

TEST(CacheKeyTest, SameRequestSameKey) {
  auto a = Key("t", "m", 1, {{"x", Floats({1, 2}, {1, 2})}});
  auto b = Key("t", "m", 1, {{"x", Floats({1, 2}, {1, 2})}});
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.check, b.check);
  EXPECT_EQ(a.model, "m");
}

TEST(CacheKeyTest, EveryPartChangesTheKey) {
  auto base = Key("t", "m", 1, {{"x", Floats({1, 2}, {1, 2})}}, {"y"});
  std::vector<CacheKey> others = {
      Key("u", "m", 1, {{"x", Floats({1, 2}, {1, 2})}}, {"y"}),
      Key("t", "n", 1, {{"x", Floats({1, 2}, {1, 2})}}, {"y"}),
      Key("t", "m", 2, {{"x", Floats({1, 2}, {1, 2})}}, {"y"}),
      Key("t", "m", 1, {{"z", Floats({1, 2}, {1, 2})}}, {"y"}),
      Key("t", "m", 1, {{"x", Floats({1, 2}, {2, 1})}}, {"y"}),
      Key("t", "m", 1, {{"x", Floats({1, 3}, {1, 2})}}, {"y"}),
      Key("t", "m", 1, {{"x", Floats({1, 2}, {1, 2})}}, {}),
      Key("t", "m", 1, {{"x", Floats({1, 2}, {1, 2})}}, {"y", "w"}),
  };
  for (const auto& o : others) {
    EXPECT_FALSE(o.digest == base.digest);
    EXPECT_NE(o.check, base.check);
  }
  // Same bytes under another datatype.
  auto ints = Key("t", "m", 1,
                  {{"x", Tensor::FromBytes(DataType::kInt32, {1, 2},
                                           std::string(Floats({1, 2}, {1, 2}).bytes()))}},
                  {"y"});
  EXPECT_NE(ints.check, base.check);
}

TEST(CacheKeyTest, FieldBoundariesCannotBeShifted) {
  // "ab" + "c" and "a" + "bc" must differ: parts are length-prefixed.
  CacheKeyBuilder a("t", "m", 1);
  a.AddOutput("ab");
  a.AddOutput("c");
  CacheKeyBuilder b("t", "m", 1);
  b.AddOutput("a");
  b.AddOutput("bc");
  EXPECT_NE(a.Finish().check, b.Finish().check);
}

TEST(CacheKeyTest, SmallRequestsKeepTheirBytesLargeOnesASha256) {
  auto small = Key("t", "m", 1, {{"x", Floats({1, 2}, {1, 2})}});
  EXPECT_EQ(small.check[0], 'C');
  std::vector<float> big(1000, 0.5f);
  auto large = Key("t", "m", 1, {{"x", Floats(big, {1, 1000})}});
  EXPECT_EQ(large.check[0], 'S');
  EXPECT_EQ(large.check.size(), 33u);
  big[999] = 0.25f;
  auto large2 = Key("t", "m", 1, {{"x", Floats(big, {1, 1000})}});
  EXPECT_NE(large.check, large2.check);
}

TEST(EncodedRequestKeyTest, EveryPartChangesTheKeyAndItNeverEqualsACanonicalKey) {
  const std::string body = R"({"inputs":[]})";
  auto base = EncodedRequestKey("t", "m", 1, "json", body);
  auto same = EncodedRequestKey("t", "m", 1, "json", body);
  EXPECT_EQ(base.digest, same.digest);
  EXPECT_EQ(base.check, same.check);
  EXPECT_EQ(base.model, "m");
  EXPECT_EQ(base.check[0], 'C');
  std::vector<CacheKey> others = {
      EncodedRequestKey("u", "m", 1, "json", body),
      EncodedRequestKey("t", "n", 1, "json", body),
      EncodedRequestKey("t", "m", 2, "json", body),
      EncodedRequestKey("t", "m", 1, "binary:12", body),
      EncodedRequestKey("t", "m", 1, "json", body + " "),
      EncodedRequestKey("t", "m", 1, "jso", "n" + body),  // boundaries cannot shift
      Key("t", "m", 1, {{"x", Floats({1, 2}, {1, 2})}}),
      CacheKeyBuilder("t", "m", 1).Finish(),
  };
  for (const auto& o : others) {
    EXPECT_FALSE(o.digest == base.digest);
    EXPECT_NE(o.check, base.check);
  }
}

TEST(EncodedRequestKeyTest, LargeBodiesKeepASha256UnlessTheInlineLimitAllowsThem) {
  std::string body(600, 'x');
  auto hashed = EncodedRequestKey("t", "m", 1, "json", body);
  EXPECT_EQ(hashed.check[0], 'S');
  EXPECT_EQ(hashed.check.size(), 33u);
  auto inlined = EncodedRequestKey("t", "m", 1, "json", body, /*max_inline=*/4096);
  EXPECT_EQ(inlined.check[0], 'C');
  EXPECT_GT(inlined.check.size(), body.size());
  EXPECT_EQ(hashed.digest, inlined.digest);  // the digest does not depend on the limit
  body[599] = 'y';
  EXPECT_NE(EncodedRequestKey("t", "m", 1, "json", body).check, hashed.check);
}

TEST(CacheEntryTest, SerializeRoundTripAndCorruptionIsDetected) {
  CacheEntry e;
  e.check = "Cabc";
  e.model = "m";
  e.created_us = 5;
  e.expires_us = 10;
  e.payload = std::string("\0\1\2payload", 10);
  std::string bytes = e.Serialize();
  auto back = CacheEntry::Deserialize(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ((*back)->check, e.check);
  EXPECT_EQ((*back)->payload, e.payload);
  EXPECT_EQ((*back)->expires_us, 10);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x40;
    EXPECT_FALSE(CacheEntry::Deserialize(bad).ok()) << "flipped byte " << i;
  }
  EXPECT_FALSE(CacheEntry::Deserialize(bytes.substr(0, bytes.size() - 1)).ok());
  EXPECT_FALSE(CacheEntry::Deserialize("").ok());
}

TEST(Digest128Test, Hex) {
  Digest128 d{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  EXPECT_EQ(d.Hex(), "0123456789abcdeffedcba9876543210");
}

}  // namespace
}  // namespace inferd

namespace inferd {
namespace {

TEST(CacheKeyTest, TheRevisionOfTheVersionChangesBothKeys) {
  auto canonical = [](uint64_t revision) {
    CacheKeyBuilder kb("t", "m", 1, revision);
    kb.AddOutput("y");
    return kb.Finish();
  };
  EXPECT_EQ(canonical(7).digest, canonical(7).digest);
  EXPECT_NE(canonical(7).digest, canonical(8).digest);
  EXPECT_NE(canonical(7).digest, canonical(0).digest);
  EXPECT_NE(canonical(7).check, canonical(8).check);
  const std::string body = "{\"inputs\": []}";
  auto encoded = [&](uint64_t revision) {
    return EncodedRequestKey("t", "m", 1, "json", body, CacheKeyBuilder::kMaxInlineCheck, revision);
  };
  EXPECT_EQ(encoded(7).digest, encoded(7).digest);
  EXPECT_NE(encoded(7).digest, encoded(8).digest);
  EXPECT_NE(encoded(7).check, encoded(0).check);
}

}  // namespace
}  // namespace inferd
