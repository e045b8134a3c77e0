#include "api/kserve_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace inferd::kserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

static_assert(std::endian::native == std::endian::little, "the binary format is little-endian");

// ---------------------------------------------------------------- helpers

// Explicit little-endian encoding of integer values of width sizeof(T).
template <typename T>
std::string LE(std::initializer_list<T> values) {
  std::string out;
  for (T v : values) {
    using U = std::make_unsigned_t<T>;
    U u = static_cast<U>(v);
    for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
  }
  return out;
}

std::string F32(std::initializer_list<float> values) {
  std::string out;
  for (float f : values) out += LE<uint32_t>({std::bit_cast<uint32_t>(f)});
  return out;
}

std::string F64(std::initializer_list<double> values) {
  std::string out;
  for (double d : values) out += LE<uint64_t>({std::bit_cast<uint64_t>(d)});
  return out;
}

std::string BytesElements(std::initializer_list<std::string> values) {
  std::string out;
  for (const auto& s : values) {
    out += LE<uint32_t>({static_cast<uint32_t>(s.size())});
    out += s;
  }
  return out;
}

StatusOr<DecodedRequest> DecodeJson(const std::string& json) {
  return DecodeInferRequest(std::make_shared<const std::string>(json), -1);
}

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
}  // namespace inferd::kserve
