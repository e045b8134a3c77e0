#include "http/response_encoding.h"

#include <gtest/gtest.h>

#include <string>

#include "http/request_reader.h"

namespace inferd::http {
namespace {

TEST(AcceptsGzipTest, ReadsCodingsAndQValues) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("deflate, GZIP;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("x-gzip"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("br, deflate"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("*, gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("*;q=0"));
}

TEST(MaybeGzipResponseTest, CompressesLargeBodiesThatShrink) {
  std::string json = "{\"data\":[";
  for (int i = 0; i < 2000; ++i) json += std::to_string(i % 97) + ",";
  json += "0]}";
  Response res = MakeJsonResponse(Status::ok, json);
  EXPECT_FALSE(MaybeGzipResponse(res, json.size() + 1, 1));  // under the threshold
  ASSERT_TRUE(MaybeGzipResponse(res, 1024, 1));
  EXPECT_EQ(res[beast_http::field::content_encoding], "gzip");
  EXPECT_EQ(res[beast_http::field::vary], "Accept-Encoding");
  EXPECT_LT(res.body().size(), json.size());
  std::string back;
  ASSERT_FALSE(Inflate(res.body(), true, 1 << 20, &back));
  EXPECT_EQ(back, json);
  EXPECT_FALSE(MaybeGzipResponse(res, 1, 1));  // already encoded

  Response tiny = MakeJsonResponse(Status::ok, "{}");
  EXPECT_FALSE(MaybeGzipResponse(tiny, 1, 1));  // would grow
  EXPECT_EQ(tiny.body(), "{}");
}

}  // namespace
}  // namespace inferd::http
