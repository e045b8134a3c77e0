// Tests of DecodeInferRequest: JSON and binary inputs, output selection.

#include "api/kserve_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "api/kserve_codec_test_util.h"

namespace inferd::kserve::codec_test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---------------------------------------------------------------- helpers

// A JSON request with one input.
std::string OneInput(const std::string& name, const std::string& dtype, const std::string& shape,
                     const std::string& data) {
  return R"({"inputs":[{"name":")" + name + R"(","datatype":")" + dtype + R"(","shape":)" + shape +
         R"(,"data":)" + data + "}]}";
}

void ExpectInvalid(const StatusOr<DecodedRequest>& r, const std::string& needle) {
  ASSERT_FALSE(r.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(needle));
}

// ---------------------------------------------------------------- decode: JSON

TEST(DecodeInferRequestTest, BasicFields) {
  StatusOr<DecodedRequest> r = DecodeJson(
      R"({"id":"req-7","inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1,2]}]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request.id, "req-7");
  ASSERT_EQ(r->request.inputs.size(), 1u);
  const NamedTensor& in = r->request.inputs[0];
  EXPECT_EQ(in.name, "x");
  EXPECT_EQ(in.tensor.dtype(), DataType::kFp32);
  EXPECT_EQ(in.tensor.shape(), (Shape{2}));
  EXPECT_EQ(in.tensor.bytes(), F32({1, 2}));
  EXPECT_TRUE(r->request.outputs.empty());
  EXPECT_FALSE(r->binary_output_default);
}

TEST(DecodeInferRequestTest, FlatAndNestedDataGiveIdenticalBytes) {
  StatusOr<DecodedRequest> flat = DecodeJson(OneInput("x", "FP32", "[2,3]", "[1,2,3,4,5,6]"));
  StatusOr<DecodedRequest> nested = DecodeJson(OneInput("x", "FP32", "[2,3]", "[[1,2,3],[4,5,6]]"));
  ASSERT_TRUE(flat.ok()) << flat.status().ToString();
  ASSERT_TRUE(nested.ok()) << nested.status().ToString();
  EXPECT_EQ(flat->request.inputs[0].tensor.bytes(), nested->request.inputs[0].tensor.bytes());
  EXPECT_EQ(flat->request.inputs[0].tensor.shape(), nested->request.inputs[0].tensor.shape());
  EXPECT_EQ(flat->request.inputs[0].tensor.bytes(), F32({1, 2, 3, 4, 5, 6}));

  StatusOr<DecodedRequest> deep =
      DecodeJson(OneInput("x", "INT32", "[2,1,2]", "[[[1,-2]],[[3,-4]]]"));
  ASSERT_TRUE(deep.ok()) << deep.status().ToString();
  EXPECT_EQ(deep->request.inputs[0].tensor.bytes(), LE<int32_t>({1, -2, 3, -4}));
}

struct DtypeCase {
  const char* dtype;
  const char* shape;
  const char* data;
  std::string bytes;
};

TEST(DecodeInferRequestTest, EveryDatatypeDecodesToLittleEndianBytes) {
  const DtypeCase cases[] = {
      {"BOOL", "[3]", "[true,false,true]", std::string("\x01\x00\x01", 3)},
      {"UINT8", "[3]", "[0,7,255]", LE<uint8_t>({0, 7, 255})},
      {"UINT16", "[3]", "[0,258,65535]", LE<uint16_t>({0, 258, 65535})},
      {"UINT32", "[2]", "[16909060,4294967295]", LE<uint32_t>({0x01020304u, 4294967295u})},
      {"UINT64", "[3]", "[0,72623859790382856,18446744073709551615]",
       LE<uint64_t>({0, 0x0102030405060708ull, 18446744073709551615ull})},
      {"INT8", "[3]", "[-128,-1,127]", LE<int8_t>({-128, -1, 127})},
      {"INT16", "[3]", "[-32768,-2,32767]", LE<int16_t>({-32768, -2, 32767})},
      {"INT32", "[3]", "[-2147483648,-3,2147483647]",
       LE<int32_t>({std::numeric_limits<int32_t>::min(), -3, 2147483647})},
      {"INT64", "[3]", "[-9223372036854775808,-4,9223372036854775807]",
       LE<int64_t>({std::numeric_limits<int64_t>::min(), -4, std::numeric_limits<int64_t>::max()})},
      {"FP16", "[4]", "[1.0,-2,0.5,65504]", LE<uint16_t>({0x3c00, 0xc000, 0x3800, 0x7bff})},
      {"FP32", "[4]", "[1.5,-0.25,3,1e-3]", F32({1.5f, -0.25f, 3.0f, 1e-3f})},
      {"FP64", "[3]", "[0.1,-1e300,42]", F64({0.1, -1e300, 42.0})},
      {"BYTES", "[3]", R"(["ab","","x\"y"])", BytesElements({"ab", "", "x\"y"})},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.dtype);
    StatusOr<DecodedRequest> r = DecodeJson(OneInput("in", c.dtype, c.shape, c.data));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const Tensor& t = r->request.inputs[0].tensor;
    EXPECT_EQ(t.dtype(), *DataTypeFromName(c.dtype));
    EXPECT_EQ(t.bytes(), c.bytes);
  }
}

TEST(DecodeInferRequestTest, EmptyTensor) {
  StatusOr<DecodedRequest> r = DecodeJson(OneInput("e", "FP32", "[0,3]", "[]"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request.inputs[0].tensor.byte_size(), 0u);
  EXPECT_EQ(r->request.inputs[0].tensor.shape(), (Shape{0, 3}));
}

TEST(DecodeInferRequestTest, OutOfRangeIntegersNameTheInput) {
  const struct {
    const char* dtype;
    const char* value;
  } cases[] = {
      {"UINT8", "256"},        {"UINT8", "-1"},          {"INT8", "128"},
      {"INT8", "-129"},        {"UINT16", "65536"},      {"INT16", "-32769"},
      {"INT16", "32768"},      {"UINT32", "4294967296"}, {"UINT32", "-1"},
      {"INT32", "2147483648"}, {"INT32", "-2147483649"}, {"INT64", "9223372036854775808"},
      {"UINT64", "-1"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.dtype) + " " + c.value);
    StatusOr<DecodedRequest> r =
        DecodeJson(OneInput("ranged", c.dtype, "[2]", std::string("[1,") + c.value + "]"));
    ExpectInvalid(r, "'ranged'");
    EXPECT_THAT(r.status().message(), HasSubstr("out of range"));
  }
}

TEST(DecodeInferRequestTest, IntegerBeyondUint64IsAnError) {
  EXPECT_FALSE(DecodeJson(OneInput("big", "UINT64", "[1]", "[18446744073709551616]")).ok());
}

TEST(DecodeInferRequestTest, WrongElementTypesNameTheInput) {
  const struct {
    const char* dtype;
    const char* data;
  } cases[] = {
      {"INT32", "[1.5]"},   {"INT32", R"(["1"])"},   {"UINT8", "[true]"}, {"INT64", "[null]"},
      {"FP32", R"(["x"])"}, {"FP32", "[true]"},      {"FP16", "[null]"},  {"FP64", "[{}]"},
      {"BOOL", "[1]"},      {"BOOL", R"(["true"])"}, {"BYTES", "[5]"},    {"BYTES", "[true]"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.dtype) + " " + c.data);
    ExpectInvalid(DecodeJson(OneInput("typed", c.dtype, "[1]", c.data)), "'typed'");
  }
}

TEST(DecodeInferRequestTest, ElementCountMismatchNamesTheInput) {
  StatusOr<DecodedRequest> few = DecodeJson(OneInput("counted", "FP32", "[2,2]", "[1,2,3]"));
  ExpectInvalid(few, "'counted'");
  EXPECT_THAT(few.status().message(), HasSubstr("[2,2]"));
  ExpectInvalid(DecodeJson(OneInput("counted", "FP32", "[2]", "[[1,2],[3]]")), "'counted'");
  ExpectInvalid(DecodeJson(OneInput("counted", "BYTES", "[1]", R"(["a","b"])")), "'counted'");
  ExpectInvalid(DecodeJson(OneInput("counted", "INT8", "[0]", "[1]")), "'counted'");
  // A scalar where an array is expected still counts as one element.
  StatusOr<DecodedRequest> scalar = DecodeJson(OneInput("s", "INT8", "[1]", "5"));
  ASSERT_TRUE(scalar.ok()) << scalar.status().ToString();
  EXPECT_EQ(scalar->request.inputs[0].tensor.bytes(), LE<int8_t>({5}));
}

TEST(DecodeInferRequestTest, BadShapesAndDatatypesNameTheInput) {
  ExpectInvalid(DecodeJson(OneInput("sh", "FP32", "[-1]", "[]")), "'sh'");
  ExpectInvalid(DecodeJson(OneInput("sh", "FP32", "[1.5]", "[1]")), "'sh'");
  ExpectInvalid(DecodeJson(OneInput("sh", "FP32", "\"2\"", "[1,2]")), "'sh'");
  ExpectInvalid(DecodeJson(OneInput("dt", "FLOAT32", "[1]", "[1]")), "'dt'");
  ExpectInvalid(DecodeJson(R"({"inputs":[{"name":"ns","datatype":"FP32","data":[1]}]})"), "'ns'");
  ExpectInvalid(DecodeJson(R"({"inputs":[{"name":"nd","datatype":"FP32","shape":[1]}]})"), "'nd'");
  ExpectInvalid(DecodeJson(R"({"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]})"), "name");
}

TEST(DecodeInferRequestTest, MalformedJson) {
  for (const char* body : {"", "{", "not json", R"({"inputs":[})", R"({"inputs":[{"name":"x",}]})",
                           "{\"inputs\":[]} trailing"}) {
    SCOPED_TRACE(body);
    StatusOr<DecodedRequest> r = DecodeJson(body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(DecodeInferRequestTest, StructuralErrors) {
  ExpectInvalid(DecodeJson("[]"), "object");
  ExpectInvalid(DecodeJson("{}"), "inputs");
  ExpectInvalid(DecodeJson(R"({"inputs":{}})"), "inputs");
  ExpectInvalid(DecodeJson(R"({"id":5,"inputs":[]})"), "id");
  ExpectInvalid(DecodeJson(R"({"inputs":[],"outputs":{}})"), "outputs");
  ExpectInvalid(DecodeJson(R"({"inputs":[],"outputs":[{"parameters":{}}]})"), "name");
}

// ---------------------------------------------------------------- decode: binary

struct BinaryBody {
  std::shared_ptr<const std::string> body;
  int64_t json_length;
};

BinaryBody MakeBinary(const std::string& json, const std::string& binary) {
  return {std::make_shared<const std::string>(json + binary), static_cast<int64_t>(json.size())};
}

bool PointsInto(const Tensor& t, const std::string& body, size_t from) {
  const uint8_t* begin = reinterpret_cast<const uint8_t*>(body.data());
  return t.data() >= begin + from && t.data() + t.byte_size() <= begin + body.size();
}

TEST(DecodeInferRequestTest, BinaryInputsViewTheBody) {
  std::string json =
      R"({"inputs":[)"
      R"({"name":"a","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}},)"
      R"({"name":"j","datatype":"INT8","shape":[2],"data":[1,2]},)"
      R"({"name":"b","datatype":"INT16","shape":[1,2],"parameters":{"binary_data_size":4}})"
      R"(]})";
  std::string binary = F32({1.5f, -2.0f}) + LE<int16_t>({300, -300});
  BinaryBody in = MakeBinary(json, binary);
  StatusOr<DecodedRequest> r = DecodeInferRequest(in.body, in.json_length);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->request.inputs.size(), 3u);

  const Tensor& a = r->request.inputs[0].tensor;
  EXPECT_EQ(r->request.inputs[0].name, "a");
  EXPECT_EQ(a.dtype(), DataType::kFp32);
  EXPECT_EQ(a.shape(), (Shape{2}));
  EXPECT_EQ(a.bytes(), F32({1.5f, -2.0f}));
  EXPECT_TRUE(PointsInto(a, *in.body, json.size()));
  EXPECT_EQ(a.data(), reinterpret_cast<const uint8_t*>(in.body->data()) + json.size());

  const Tensor& j = r->request.inputs[1].tensor;
  EXPECT_EQ(j.bytes(), LE<int8_t>({1, 2}));
  EXPECT_FALSE(PointsInto(j, *in.body, 0));  // JSON data is decoded into its own buffer

  const Tensor& b = r->request.inputs[2].tensor;
  EXPECT_EQ(b.shape(), (Shape{1, 2}));
  EXPECT_EQ(b.bytes(), LE<int16_t>({300, -300}));
  EXPECT_EQ(b.data(), a.data() + 8);

  // The views keep the body alive on their own.
  std::weak_ptr<const std::string> weak = in.body;
  in.body.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(b.bytes(), LE<int16_t>({300, -300}));
  r = InternalError("drop");
  EXPECT_TRUE(weak.expired());
}

TEST(DecodeInferRequestTest, BinarySizePastTheEndIsAnError) {
  std::string json =
      R"({"inputs":[{"name":"big","datatype":"FP32","shape":[3],"parameters":{"binary_data_size":12}}]})";
  BinaryBody in = MakeBinary(json, F32({1, 2}));
  ExpectInvalid(DecodeInferRequest(in.body, in.json_length), "'big'");
}

TEST(DecodeInferRequestTest, SecondBinaryInputPastTheEndIsAnError) {
  std::string json =
      R"({"inputs":[)"
      R"({"name":"a","datatype":"UINT8","shape":[2],"parameters":{"binary_data_size":2}},)"
      R"({"name":"b","datatype":"UINT8","shape":[2],"parameters":{"binary_data_size":2}})"
      R"(]})";
  BinaryBody in = MakeBinary(json, "xyz");
  ExpectInvalid(DecodeInferRequest(in.body, in.json_length), "'b'");
}

TEST(DecodeInferRequestTest, LeftOverBinaryBytesAreAnError) {
  std::string json =
      R"({"inputs":[{"name":"a","datatype":"UINT8","shape":[2],"parameters":{"binary_data_size":2}}]})";
  BinaryBody in = MakeBinary(json, "abc");
  StatusOr<DecodedRequest> r = DecodeInferRequest(in.body, in.json_length);
  ExpectInvalid(r, "1 bytes");

  // A JSON-only request with a header length shorter than the body.
  std::string plain = OneInput("x", "UINT8", "[1]", "[1]");
  BinaryBody extra = MakeBinary(plain, "zz");
  EXPECT_FALSE(DecodeInferRequest(extra.body, extra.json_length).ok());
}

TEST(DecodeInferRequestTest, JsonLengthLargerThanBodyIsAnError) {
  auto body = std::make_shared<const std::string>(OneInput("x", "UINT8", "[1]", "[1]"));
  ExpectInvalid(DecodeInferRequest(body, static_cast<int64_t>(body->size()) + 1),
                "Inference-Header-Content-Length");
}

TEST(DecodeInferRequestTest, JsonLengthEqualToBodyIsPlainJson) {
  auto body = std::make_shared<const std::string>(OneInput("x", "UINT8", "[1]", "[9]"));
  StatusOr<DecodedRequest> r = DecodeInferRequest(body, static_cast<int64_t>(body->size()));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request.inputs[0].tensor.bytes(), LE<uint8_t>({9}));
}

TEST(DecodeInferRequestTest, BinaryDataSizeWithoutJsonLengthIsAnError) {
  std::string json =
      R"({"inputs":[{"name":"nolen","datatype":"UINT8","shape":[2],"parameters":{"binary_data_size":2}}]})";
  auto body = std::make_shared<const std::string>(json + "ab");
  StatusOr<DecodedRequest> r = DecodeInferRequest(body, -1);
  ASSERT_FALSE(r.ok());  // the body is not JSON past the header either way
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);

  // With the JSON alone the message names the input and the missing header.
  auto json_only = std::make_shared<const std::string>(json);
  StatusOr<DecodedRequest> r2 = DecodeInferRequest(json_only, -1);
  ExpectInvalid(r2, "'nolen'");
  EXPECT_THAT(r2.status().message(), HasSubstr("Inference-Header-Content-Length"));
}

TEST(DecodeInferRequestTest, NegativeBinaryDataSizeIsAnError) {
  std::string json =
      R"({"inputs":[{"name":"neg","datatype":"UINT8","shape":[2],"parameters":{"binary_data_size":-2}}]})";
  BinaryBody in = MakeBinary(json, "ab");
  ExpectInvalid(DecodeInferRequest(in.body, in.json_length), "'neg'");
}

TEST(DecodeInferRequestTest, JsonAndBinaryOfTheSameTensorDecodeToTheSameBytes) {
  const struct {
    const char* dtype;
    const char* data;
    std::string raw;
  } cases[] = {
      {"FP32", "[[0.5,-1],[2,1e10]]", F32({0.5f, -1.0f, 2.0f, 1e10f})},
      {"INT16", "[[1,-1],[32767,-32768]]", LE<int16_t>({1, -1, 32767, -32768})},
      {"UINT64", "[[0,1],[2,18446744073709551615]]", LE<uint64_t>({0, 1, 2, ~0ull})},
      {"FP16", "[[1,0.5],[-2,0]]", LE<uint16_t>({0x3c00, 0x3800, 0xc000, 0})},
      {"BOOL", "[[true,true],[false,true]]", std::string("\x01\x01\x00\x01", 4)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.dtype);
    StatusOr<DecodedRequest> from_json = DecodeJson(OneInput("t", c.dtype, "[2,2]", c.data));
    ASSERT_TRUE(from_json.ok()) << from_json.status().ToString();
    std::string json = std::string(R"({"inputs":[{"name":"t","datatype":")") + c.dtype +
                       R"(","shape":[2,2],"parameters":{"binary_data_size":)" +
                       std::to_string(c.raw.size()) + "}}]}";
    BinaryBody in = MakeBinary(json, c.raw);
    StatusOr<DecodedRequest> from_binary = DecodeInferRequest(in.body, in.json_length);
    ASSERT_TRUE(from_binary.ok()) << from_binary.status().ToString();
    const Tensor& a = from_json->request.inputs[0].tensor;
    const Tensor& b = from_binary->request.inputs[0].tensor;
    EXPECT_EQ(a.bytes(), b.bytes());
    EXPECT_EQ(a.shape(), b.shape());
    EXPECT_EQ(a.dtype(), b.dtype());
  }
}

TEST(DecodeInferRequestTest, BytesTensorJsonAndBinaryAgree) {
  std::string raw = BytesElements({"hello", "", "w"});
  StatusOr<DecodedRequest> from_json =
      DecodeJson(OneInput("s", "BYTES", "[3]", R"(["hello","","w"])"));
  ASSERT_TRUE(from_json.ok()) << from_json.status().ToString();
  std::string json =
      R"({"inputs":[{"name":"s","datatype":"BYTES","shape":[3],"parameters":{"binary_data_size":)" +
      std::to_string(raw.size()) + "}}]}";
  BinaryBody in = MakeBinary(json, raw);
  StatusOr<DecodedRequest> from_binary = DecodeInferRequest(in.body, in.json_length);
  ASSERT_TRUE(from_binary.ok()) << from_binary.status().ToString();
  EXPECT_EQ(from_json->request.inputs[0].tensor.bytes(), raw);
  EXPECT_EQ(from_binary->request.inputs[0].tensor.bytes(), raw);
}

// ---------------------------------------------------------------- decode: outputs

TEST(DecodeInferRequestTest, OutputSelectionAndBinaryFlags) {
  StatusOr<DecodedRequest> r = DecodeJson(R"({
    "inputs": [],
    "parameters": {"binary_data_output": true},
    "outputs": [
      {"name": "bin", "parameters": {"binary_data": true}},
      {"name": "txt", "parameters": {"binary_data": false}},
      {"name": "plain"}
    ]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_THAT(r->request.outputs, ElementsAre("bin", "txt", "plain"));
  EXPECT_THAT(r->binary_outputs, ElementsAre("bin"));
  EXPECT_THAT(r->json_outputs, ElementsAre("txt"));
  EXPECT_TRUE(r->binary_output_default);
}

TEST(DecodeInferRequestTest, NonBooleanBinaryFlagsAreRejected) {
  StatusOr<DecodedRequest> out =
      DecodeJson(R"({"inputs":[],"outputs":[{"name":"odd","parameters":{"binary_data":"yes"}}]})");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("odd"));
  StatusOr<DecodedRequest> req =
      DecodeJson(R"({"inputs":[],"parameters":{"binary_data_output":1}})");
  ASSERT_FALSE(req.ok());
  EXPECT_THAT(req.status().message(), HasSubstr("binary_data_output"));
}

TEST(DecodeInferRequestTest, BinaryDataOutputDefaultsToFalse) {
  StatusOr<DecodedRequest> r =
      DecodeJson(R"({"inputs":[],"parameters":{"binary_data_output":false},"outputs":[]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->binary_output_default);
  EXPECT_TRUE(r->request.outputs.empty());
  StatusOr<DecodedRequest> none = DecodeJson(R"({"inputs":[],"parameters":{}})");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->binary_output_default);
}

}  // namespace
}  // namespace inferd::kserve::codec_test
