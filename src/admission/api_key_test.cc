#include "admission/api_key.h"

#include <gtest/gtest.h>

#include <set>

namespace inferd {
namespace {

TEST(ApiKeyTest, GeneratedKeysAreUrlSafeLongAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto key = GenerateApiKey();
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    ASSERT_EQ(key->size(), 46u) << *key;  // "ik_" + 43 base64url characters (256 bits)
    EXPECT_EQ(key->substr(0, 3), "ik_");
    for (char c : key->substr(3))
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << *key;
    EXPECT_TRUE(seen.insert(*key).second);
  }
}

TEST(ApiKeyTest, Sha256MatchesKnownVectorsAndRoundTripsAsHex) {
  // FIPS 180-2 test vectors.
  EXPECT_EQ(DigestHex(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(DigestHex(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  KeyDigest d{};
  ASSERT_TRUE(
      ParseDigestHex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", &d));
  EXPECT_TRUE(DigestsEqual(d, Sha256("abc")));
  EXPECT_FALSE(DigestsEqual(d, Sha256("abd")));
  EXPECT_FALSE(ParseDigestHex("ba7816", &d));
  EXPECT_FALSE(ParseDigestHex(std::string(63, 'a') + "g", &d));
}

}  // namespace
}  // namespace inferd
