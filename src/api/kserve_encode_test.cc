// Tests of EncodeInferResponse: JSON and binary outputs.

#include "api/kserve_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "api/kserve_codec_test_util.h"

namespace inferd::kserve::codec_test {
namespace {

using ::testing::ElementsAre;

// ---------------------------------------------------------------- encode

InferResponse SampleResponse() {
  InferResponse resp;
  resp.model = "resnet";
  resp.version = 3;
  resp.id = "req-1";
  resp.outputs.push_back(
      {"probs", Tensor::FromBytes(DataType::kFp32, {1, 3}, F32({0.5f, -1.25f, 2}))});
  resp.outputs.push_back({"label", Tensor::FromBytes(DataType::kInt64, {1}, LE<int64_t>({-7}))});
  resp.outputs.push_back(
      {"mask", Tensor::FromBytes(DataType::kBool, {2}, std::string("\x01\x00", 2))});
  resp.outputs.push_back(
      {"half", Tensor::FromBytes(DataType::kFp16, {2}, LE<uint16_t>({0x3c00, 0xb800}))});
  resp.outputs.push_back(
      {"text", Tensor::FromBytes(DataType::kBytes, {2}, BytesElements({"hi", ""}))});
  resp.outputs.push_back({"big", Tensor::FromBytes(DataType::kUint64, {1}, LE<uint64_t>({~0ull}))});
  return resp;
}

// Returns the output object with `name`, failing the test if absent.
simdjson::dom::element FindOutput(simdjson::dom::element doc, std::string_view name) {
  simdjson::dom::array outputs;
  EXPECT_EQ(doc["outputs"].get_array().get(outputs), simdjson::SUCCESS);
  for (simdjson::dom::element o : outputs) {
    std::string_view n;
    if (o["name"].get_string().get(n) == simdjson::SUCCESS && n == name) return o;
  }
  ADD_FAILURE() << "no output " << name;
  return doc;
}

std::vector<double> Numbers(simdjson::dom::element o) {
  std::vector<double> out;
  simdjson::dom::array data;
  EXPECT_EQ(o["data"].get_array().get(data), simdjson::SUCCESS);
  for (simdjson::dom::element e : data) {
    double d = 0;
    EXPECT_EQ(e.get_double().get(d), simdjson::SUCCESS);
    out.push_back(d);
  }
  return out;
}

std::vector<int64_t> ShapeOf(simdjson::dom::element o) {
  std::vector<int64_t> out;
  simdjson::dom::array shape;
  EXPECT_EQ(o["shape"].get_array().get(shape), simdjson::SUCCESS);
  for (simdjson::dom::element e : shape) out.push_back(e.get_int64().value());
  return out;
}

std::string_view Str(simdjson::dom::element o, const char* key) {
  std::string_view s;
  EXPECT_EQ(o[key].get_string().get(s), simdjson::SUCCESS) << key;
  return s;
}

TEST(EncodeInferResponseTest, JsonOutputs) {
  EncodedResponse enc = EncodeInferResponse(SampleResponse(), DecodedRequest{});
  EXPECT_EQ(enc.json_length, -1);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(enc.body).get(doc), simdjson::SUCCESS) << enc.body;
  EXPECT_EQ(Str(doc, "model_name"), "resnet");
  EXPECT_EQ(Str(doc, "model_version"), "3");
  EXPECT_EQ(Str(doc, "id"), "req-1");
  EXPECT_EQ(doc["outputs"].get_array().size(), 6u);

  simdjson::dom::element probs = FindOutput(doc, "probs");
  EXPECT_EQ(Str(probs, "datatype"), "FP32");
  EXPECT_THAT(ShapeOf(probs), ElementsAre(1, 3));
  EXPECT_THAT(Numbers(probs), ElementsAre(0.5, -1.25, 2.0));
  EXPECT_TRUE(probs["parameters"].error() == simdjson::NO_SUCH_FIELD);

  simdjson::dom::element label = FindOutput(doc, "label");
  EXPECT_EQ(Str(label, "datatype"), "INT64");
  EXPECT_EQ(label["data"].at(0).get_int64().value(), -7);

  simdjson::dom::element mask = FindOutput(doc, "mask");
  EXPECT_EQ(mask["data"].at(0).get_bool().value(), true);
  EXPECT_EQ(mask["data"].at(1).get_bool().value(), false);

  simdjson::dom::element half = FindOutput(doc, "half");
  EXPECT_EQ(Str(half, "datatype"), "FP16");
  EXPECT_THAT(Numbers(half), ElementsAre(1.0, -0.5));

  simdjson::dom::element text = FindOutput(doc, "text");
  EXPECT_EQ(text["data"].at(0).get_string().value(), "hi");
  EXPECT_EQ(text["data"].at(1).get_string().value(), "");
  EXPECT_EQ(text["data"].get_array().size(), 2u);

  simdjson::dom::element big = FindOutput(doc, "big");
  EXPECT_EQ(big["data"].at(0).get_uint64().value(), ~0ull);
}

TEST(EncodeInferResponseTest, NoIdWhenEmpty) {
  InferResponse resp;
  resp.model = "m";
  resp.version = 1;
  EncodedResponse enc = EncodeInferResponse(resp, DecodedRequest{});
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(enc.body).get(doc), simdjson::SUCCESS) << enc.body;
  EXPECT_TRUE(doc["id"].error() == simdjson::NO_SUCH_FIELD);
  EXPECT_EQ(doc["outputs"].get_array().size(), 0u);
}

TEST(EncodeInferResponseTest, NonFiniteFloatsBecomeNull) {
  InferResponse resp;
  resp.model = "m";
  const float inf = std::numeric_limits<float>::infinity();
  resp.outputs.push_back(
      {"f", Tensor::FromBytes(DataType::kFp32, {3}, F32({inf, std::nanf(""), 1.0f}))});
  EncodedResponse enc = EncodeInferResponse(resp, DecodedRequest{});
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(enc.body).get(doc), simdjson::SUCCESS) << enc.body;
  simdjson::dom::element f = FindOutput(doc, "f");
  EXPECT_TRUE(f["data"].at(0).is_null());
  EXPECT_TRUE(f["data"].at(1).is_null());
  EXPECT_EQ(f["data"].at(2).get_double().value(), 1.0);
}

TEST(EncodeInferResponseTest, BinaryOutputsSetJsonLengthAndAppendRawBytes) {
  InferResponse resp = SampleResponse();
  DecodedRequest req;
  req.binary_outputs = {"label", "probs"};
  EncodedResponse enc = EncodeInferResponse(resp, req);
  ASSERT_GT(enc.json_length, 0);
  ASSERT_LE(static_cast<size_t>(enc.json_length), enc.body.size());
  std::string json = enc.body.substr(0, static_cast<size_t>(enc.json_length));
  std::string binary = enc.body.substr(static_cast<size_t>(enc.json_length));
  // Raw bytes in the order of the outputs in the response.
  EXPECT_EQ(binary, F32({0.5f, -1.25f, 2}) + LE<int64_t>({-7}));

  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(Str(doc, "model_name"), "resnet");
  simdjson::dom::element probs = FindOutput(doc, "probs");
  EXPECT_EQ(probs["parameters"]["binary_data_size"].get_uint64().value(), 12u);
  EXPECT_TRUE(probs["data"].error() == simdjson::NO_SUCH_FIELD);
  EXPECT_THAT(ShapeOf(probs), ElementsAre(1, 3));
  simdjson::dom::element label = FindOutput(doc, "label");
  EXPECT_EQ(label["parameters"]["binary_data_size"].get_uint64().value(), 8u);
  // Outputs not asked for in binary stay JSON.
  simdjson::dom::element mask = FindOutput(doc, "mask");
  EXPECT_TRUE(mask["parameters"].error() == simdjson::NO_SUCH_FIELD);
  EXPECT_EQ(mask["data"].get_array().size(), 2u);
}

TEST(EncodeInferResponseTest, BinaryDefaultWithJsonExceptions) {
  InferResponse resp;
  resp.model = "m";
  resp.outputs.push_back({"a", Tensor::FromBytes(DataType::kUint8, {2}, "\x01\x02")});
  resp.outputs.push_back({"b", Tensor::FromBytes(DataType::kUint8, {1}, "\x03")});
  resp.outputs.push_back({"c", Tensor::FromBytes(DataType::kUint8, {1}, "\x04")});
  DecodedRequest req;
  req.binary_output_default = true;
  req.json_outputs = {"b"};
  EncodedResponse enc = EncodeInferResponse(resp, req);
  ASSERT_GT(enc.json_length, 0);
  EXPECT_EQ(enc.body.substr(static_cast<size_t>(enc.json_length)), "\x01\x02\x04");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string json = enc.body.substr(0, static_cast<size_t>(enc.json_length));
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(FindOutput(doc, "b")["data"].at(0).get_uint64().value(), 3u);
  EXPECT_EQ(FindOutput(doc, "c")["parameters"]["binary_data_size"].get_uint64().value(), 1u);
}

TEST(EncodeInferResponseTest, DecodedBinaryFlagsDriveTheEncoding) {
  StatusOr<DecodedRequest> req =
      DecodeJson(R"({"inputs":[],"outputs":[{"name":"b","parameters":{"binary_data":true}}]})");
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  InferResponse resp;
  resp.model = "m";
  resp.outputs.push_back({"a", Tensor::FromBytes(DataType::kInt32, {1}, LE<int32_t>({5}))});
  resp.outputs.push_back({"b", Tensor::FromBytes(DataType::kInt32, {1}, LE<int32_t>({6}))});
  EncodedResponse enc = EncodeInferResponse(resp, *req);
  ASSERT_GT(enc.json_length, 0);
  EXPECT_EQ(enc.body.substr(static_cast<size_t>(enc.json_length)), LE<int32_t>({6}));
}

}  // namespace
}  // namespace inferd::kserve::codec_test
