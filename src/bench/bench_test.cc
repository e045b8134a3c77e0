// Unit tests for the pure parts of the load generator: percentiles, URL
// parsing, shape overrides and payload building.

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstring>
#include <numeric>

#include "bench/latency.h"
#include "bench/payload.h"
#include "http/client.h"

namespace inferd::bench {
namespace {

constexpr char kResnetMetadata[] =
    R"({"name":"resnet18","versions":["1"],"platform":"pytorch_libtorch",
        "inputs":[{"name":"input","datatype":"FP32","shape":[-1,3,224,224]}],
        "outputs":[{"name":"output","datatype":"FP32","shape":[-1,1000]}]})";

TEST(PercentileTest, NearestRank) {
  std::vector<int64_t> v(100);
  std::iota(v.begin(), v.end(), 1);  // 1..100
  EXPECT_EQ(PercentileOfSorted(v, 0), 1);
  EXPECT_EQ(PercentileOfSorted(v, 50), 50);
  EXPECT_EQ(PercentileOfSorted(v, 90), 90);
  EXPECT_EQ(PercentileOfSorted(v, 99), 99);
  EXPECT_EQ(PercentileOfSorted(v, 99.9), 100);
  EXPECT_EQ(PercentileOfSorted(v, 100), 100);
  EXPECT_EQ(PercentileOfSorted(v, 150), 100);

  std::vector<int64_t> thousand(1000);
  std::iota(thousand.begin(), thousand.end(), 1);
  EXPECT_EQ(PercentileOfSorted(thousand, 99.9), 999);
  EXPECT_EQ(PercentileOfSorted(thousand, 99), 990);
}

TEST(PercentileTest, EmptyAndSingle) {
  EXPECT_EQ(PercentileOfSorted({}, 50), 0);
  EXPECT_EQ(PercentileOfSorted({7}, 0), 7);
  EXPECT_EQ(PercentileOfSorted({7}, 99.9), 7);
}

TEST(PercentileTest, SummarizeSortsAndConvertsToMs) {
  std::vector<int64_t> ns = {4'000'000, 1'000'000, 3'000'000, 2'000'000};
  LatencySummary s = SummarizeLatencies(ns);
  EXPECT_EQ(s.count, 4);
  EXPECT_DOUBLE_EQ(s.min_ms, 1.0);
  EXPECT_DOUBLE_EQ(s.max_ms, 4.0);
  EXPECT_DOUBLE_EQ(s.mean_ms, 2.5);
  EXPECT_DOUBLE_EQ(s.p50_ms, 2.0);
  EXPECT_DOUBLE_EQ(s.p99_ms, 4.0);
  std::vector<int64_t> none;
  EXPECT_EQ(SummarizeLatencies(none).count, 0);
}

TEST(UrlTest, Parses) {
  auto u = http::ParseUrl("http://127.0.0.1:8000");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8000);
  EXPECT_EQ(u->base_path, "");
  EXPECT_EQ(u->HostHeader(), "127.0.0.1:8000");

  u = http::ParseUrl("HTTP://example.com/prefix/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "example.com");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->base_path, "/prefix");

  u = http::ParseUrl("localhost:9000");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "localhost");
  EXPECT_EQ(u->port, 9000);

  u = http::ParseUrl("http://[::1]:8001/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 8001);
  EXPECT_EQ(u->HostHeader(), "[::1]:8001");
}

TEST(UrlTest, Rejects) {
  EXPECT_TRUE(http::ParseUrl("https://a:1").ok());  // TLS: src/http/client_tls_test.cc
  for (const char* bad :
       {"", "http://", "http://:80", "ftp://a", "http://a:", "http://a:0", "http://a:65536",
        "http://a:8x", "http://::1:80", "http://[::1", "http://u@a", "http://a/x?y=1"}) {
    EXPECT_EQ(http::ParseUrl(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ClientTest, MakeRequestSetsHeaders) {
  auto u = http::ParseUrl("http://h:81/base");
  ASSERT_TRUE(u.ok());
  http::ClientRequest r =
      http::MakeRequest(*u, http::Verb::post, "/v2/x", "{}", "application/json");
  EXPECT_EQ(r.target(), "/base/v2/x");
  EXPECT_EQ(r[http::beast_http::field::host], "h:81");
  EXPECT_EQ(r[http::beast_http::field::content_length], "2");
  EXPECT_EQ(r[http::beast_http::field::content_type], "application/json");
  EXPECT_TRUE(r.keep_alive());
}

TEST(ClientTest, TransportErrorKinds) {
  EXPECT_EQ(http::TransportErrorKind(Status::OK()), "ok");
  EXPECT_EQ(http::TransportErrorKind(UnavailableError("x")), "connect");
  EXPECT_EQ(http::TransportErrorKind(DeadlineExceededError("x")), "timeout");
  EXPECT_EQ(http::TransportErrorKind(InternalError("x")), "io");
}

TEST(ShapeTest, ParsesOverrides) {
  auto s = ParseShapeOverride("input=3,224,224");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->first, "input");
  EXPECT_EQ(s->second, (Shape{3, 224, 224}));
  for (const char* bad : {"input", "=1", "input=", "input=1,,2", "input=-1", "input=a", "x=1,"}) {
    EXPECT_FALSE(ParseShapeOverride(bad).ok()) << bad;
  }
  EXPECT_TRUE(ParseShapeOverrides({"a=1", "b=2,3"}).ok());
  EXPECT_FALSE(ParseShapeOverrides({"a=1", "a=2"}).ok());
}

TEST(ShapeTest, Resolves) {
  TensorSpec spec{"input", DataType::kFp32, {-1, 3, -1, -1}};
  EXPECT_EQ(*ResolveShape(spec, 4, nullptr), (Shape{4, 3, 1, 1}));
  Shape without_batch{3, 32, 48};
  EXPECT_EQ(*ResolveShape(spec, 2, &without_batch), (Shape{2, 3, 32, 48}));
  Shape full{2, 3, 8, 8};
  EXPECT_EQ(*ResolveShape(spec, 2, &full), full);
  EXPECT_FALSE(ResolveShape(spec, 1, &full).ok());  // batch dim 2 vs --batch-size 1
  Shape wrong_fixed{4, 8, 8};
  EXPECT_FALSE(ResolveShape(spec, 1, &wrong_fixed).ok());
  Shape wrong_rank{3};
  EXPECT_FALSE(ResolveShape(spec, 1, &wrong_rank).ok());

  TensorSpec fixed{"x", DataType::kInt64, {1, 16}};
  EXPECT_EQ(*ResolveShape(fixed, 1, nullptr), (Shape{1, 16}));
  EXPECT_FALSE(ResolveShape(fixed, 2, nullptr).ok());  // no batch dim to fill
}

TEST(MetadataTest, ParsesResnet) {
  auto m = ParseModelMetadata(kResnetMetadata);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->name, "resnet18");
  EXPECT_EQ(m->versions, std::vector<std::string>{"1"});
  EXPECT_EQ(m->platform, "pytorch_libtorch");
  ASSERT_EQ(m->inputs.size(), 1u);
  EXPECT_EQ(m->inputs[0].shape, (Shape{-1, 3, 224, 224}));
  ASSERT_EQ(m->outputs.size(), 1u);
  EXPECT_EQ(m->outputs[0].name, "output");
}

TEST(MetadataTest, Rejects) {
  EXPECT_FALSE(ParseModelMetadata("not json").ok());
  EXPECT_FALSE(ParseModelMetadata(R"({"name":"m"})").ok());
  EXPECT_FALSE(
      ParseModelMetadata(R"({"inputs":[{"name":"a","datatype":"FP99","shape":[1]}]})").ok());
  EXPECT_FALSE(
      ParseModelMetadata(R"({"inputs":[{"name":"a","datatype":"FP32","shape":[-2]}]})").ok());
}

TEST(PayloadTest, JsonBody) {
  auto m = ParseModelMetadata(kResnetMetadata);
  ASSERT_TRUE(m.ok());
  auto p = BuildPayload(*m, PayloadFormat::kJson, 2, {}, 7);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->content_type, "application/json");
  EXPECT_EQ(p->header_length, 0u);

  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_FALSE(parser.parse(p->body).get(doc));
  simdjson::dom::element input = doc["inputs"].at(0);
  EXPECT_EQ(std::string_view(input["name"]), "input");
  EXPECT_EQ(std::string_view(input["datatype"]), "FP32");
  std::vector<int64_t> shape;
  for (int64_t d : input["shape"].get_array()) shape.push_back(d);
  EXPECT_EQ(shape, (Shape{2, 3, 224, 224}));
  size_t count = 0;
  for (double v : input["data"].get_array()) {
    EXPECT_GE(v, 0.0);
    EXPECT_LT(v, 1.0);
    ++count;
  }
  EXPECT_EQ(count, 2u * 3 * 224 * 224);

  auto again = BuildPayload(*m, PayloadFormat::kJson, 2, {}, 7);
  EXPECT_EQ(again->body, p->body);  // deterministic
}

TEST(PayloadTest, BinaryBody) {
  auto m = ParseModelMetadata(
      R"({"inputs":[{"name":"input","datatype":"FP32","shape":[-1,3,-1,-1]}],
          "outputs":[{"name":"output","datatype":"FP32","shape":[-1,10]}]})");
  ASSERT_TRUE(m.ok());
  std::map<std::string, Shape> overrides = {{"input", {3, 8, 8}}};
  auto p = BuildPayload(*m, PayloadFormat::kBinary, 1, overrides, 7);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->content_type, "application/octet-stream");
  const size_t tensor_bytes = 3 * 8 * 8 * sizeof(float);
  ASSERT_EQ(p->body.size(), p->header_length + tensor_bytes);

  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_FALSE(parser.parse(p->body.substr(0, p->header_length)).get(doc));
  simdjson::dom::element input = doc["inputs"].at(0);
  EXPECT_EQ(int64_t(input["parameters"]["binary_data_size"]), int64_t(tensor_bytes));
  EXPECT_TRUE(input["data"].error());  // no JSON data in binary form
  simdjson::dom::element output = doc["outputs"].at(0);
  EXPECT_EQ(std::string_view(output["name"]), "output");
  EXPECT_TRUE(bool(output["parameters"]["binary_data"]));

  for (size_t i = p->header_length; i < p->body.size(); i += 4) {
    float f;
    std::memcpy(&f, p->body.data() + i, 4);
    EXPECT_GE(f, 0.0f);
    EXPECT_LT(f, 1.0f);
  }
}

TEST(PayloadTest, OtherTypes) {
  auto m = ParseModelMetadata(R"({"inputs":[
      {"name":"ids","datatype":"INT64","shape":[-1,4]},
      {"name":"mask","datatype":"BOOL","shape":[-1,4]},
      {"name":"text","datatype":"BYTES","shape":[2]}]})");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto bin = BuildPayload(*m, PayloadFormat::kBinary, 1, {}, 1);
  ASSERT_TRUE(bin.ok()) << bin.status().ToString();
  EXPECT_EQ(bin->body.size() - bin->header_length, 4 * 8 + 4 * 1 + 2 * (4 + 8));

  auto json = BuildPayload(*m, PayloadFormat::kJson, 1, {}, 1);
  ASSERT_TRUE(json.ok());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_FALSE(parser.parse(json->body).get(doc));
  EXPECT_TRUE(doc["inputs"].at(1)["data"].at(0).is_bool());
  std::string_view text = doc["inputs"].at(2)["data"].at(0);
  EXPECT_EQ(text.size(), 8u);
}

TEST(PayloadTest, RejectsUnknownOverride) {
  auto m = ParseModelMetadata(kResnetMetadata);
  ASSERT_TRUE(m.ok());
  std::map<std::string, Shape> overrides = {{"nope", {1}}};
  EXPECT_FALSE(BuildPayload(*m, PayloadFormat::kJson, 1, overrides, 1).ok());
}

}  // namespace
}  // namespace inferd::bench
