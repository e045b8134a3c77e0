// Tests of DecodeInferRequest's checks against the body and the model: a
// client-stated size is checked before anything is allocated by it.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "api/kserve_codec.h"

namespace inferd::kserve {
namespace {

using ::testing::HasSubstr;

ModelConfig Mlp() {
  auto c = ParseModelConfig(R"(
backend = "torchscript"
max_batch_size = 8
[[input]]
name = "input"
datatype = "FP32"
dims = [4]
[[input]]
name = "mask"
datatype = "INT64"
dims = [-1]
[[output]]
name = "output"
datatype = "FP32"
dims = [2]
)",
                            "config.toml", "mlp");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

StatusOr<DecodedRequest> Decode(const std::string& body, int64_t json_length = -1,
                                const ModelConfig* model = nullptr) {
  return DecodeInferRequest(std::make_shared<const std::string>(body), json_length, model);
}

void ExpectInvalid(const StatusOr<DecodedRequest>& r, const std::string& needle) {
  ASSERT_FALSE(r.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(needle));
}

TEST(DecodeValidationTest, HugeShapesAreRefusedBeforeAllocating) {
  // Without a model: the count cannot fit the body.
  ExpectInvalid(
      Decode(R"({"inputs":[{"name":"x","shape":[1,99999999999],"datatype":"FP32","data":[1]}]})"),
      "more than a");
  ExpectInvalid(
      Decode(R"({"inputs":[{"name":"x","shape":[1,4294967312],"datatype":"FP64","data":[1]}]})"),
      "more than a");
  // With the model: the shape is checked first.
  ModelConfig m = Mlp();
  ExpectInvalid(Decode(R"({"inputs":[{"name":"input","shape":[1,99999999999],"datatype":"FP32",)"
                       R"("data":[1]}]})",
                       -1, &m),
                "model expects [-1,4]");
  ExpectInvalid(Decode(R"({"inputs":[{"name":"mask","shape":[1,99999999999],"datatype":"INT64",)"
                       R"("data":[1]}]})",
                       -1, &m),
                "more than a");
}

TEST(DecodeValidationTest, TooManyElementsStopTheDecoder) {
  ExpectInvalid(Decode(R"({"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,2,3]}]})"),
                "more than the 2 elements");
}

TEST(DecodeValidationTest, InputsAreCheckedAgainstTheModelAsTheyAreDecoded) {
  ModelConfig m = Mlp();
  ExpectInvalid(Decode(R"({"inputs":[{"name":"nope","shape":[1,4],"datatype":"FP32",)"
                       R"("data":[1,2,3,4]}]})",
                       -1, &m),
                "unknown input 'nope'");
  ExpectInvalid(Decode(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"INT64",)"
                       R"("data":[1,2,3,4]}]})",
                       -1, &m),
                "datatype INT64, model expects FP32");
  ExpectInvalid(Decode(R"({"inputs":[{"name":"input","shape":[9,4],"datatype":"FP32",)"
                       R"("data":[1,2,3,4]}]})",
                       -1, &m),
                "batch size 9");
  ExpectInvalid(Decode(R"({"inputs":[{"name":"mask","shape":[1,1],"datatype":"INT64","data":[1]},)"
                       R"({"name":"mask","shape":[1,1],"datatype":"INT64","data":[1]}]})",
                       -1, &m),
                "given twice");
  auto ok = Decode(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32",)"
                   R"("data":[1,2,3,4]},{"name":"mask","shape":[1,2],"datatype":"INT64",)"
                   R"("data":[5,6]}]})",
                   -1, &m);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->request.inputs.size(), 2u);
}

TEST(DecodeValidationTest, BinaryInputsMustMatchTheirShape) {
  std::string json =
      R"({"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":4}}]})";
  ExpectInvalid(Decode(json + "abcd", static_cast<int64_t>(json.size())), "needs 8 bytes");
  std::string both = R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],)"
                     R"("parameters":{"binary_data_size":4}}]})";
  ExpectInvalid(Decode(both + "abcd", static_cast<int64_t>(both.size())),
                "both 'data' and parameters.binary_data_size");
}

TEST(DecodeValidationTest, BinarySizesNeverWrapAround) {
  // 3 * 1537228672809129302 * 4 bytes wraps to 8 in 64 bits.
  std::string json =
      R"({"inputs":[{"name":"x","shape":[1,3,1,1537228672809129302],"datatype":"FP32",)"
      R"("parameters":{"binary_data_size":8}}]})";
  ExpectInvalid(Decode(json + "12345678", static_cast<int64_t>(json.size())),
                "more bytes than fit in 64 bits");
}

TEST(DecodeValidationTest, DataBeforeTheHeaderFieldsIsCheckedFirst) {
  ModelConfig m = Mlp();
  // 'data' comes first in the object, yet the unknown name is what fails.
  ExpectInvalid(Decode(R"({"inputs":[{"data":[1,2,3,4],"datatype":"FP32","shape":[1,4],)"
                       R"("name":"nope"}]})",
                       -1, &m),
                "unknown input 'nope'");
  auto ok = Decode(R"({"outputs":[{"name":"output"}],"inputs":[{"data":[[1,2,3,4]],)"
                   R"("shape":[1,4],"name":"input","datatype":"FP32"},{"shape":[1,1],)"
                   R"("datatype":"INT64","data":[7],"name":"mask"}],"id":"x"})",
                   -1, &m);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->request.id, "x");
  ASSERT_EQ(ok->request.inputs.size(), 2u);
  EXPECT_EQ(ok->request.inputs[1].tensor.byte_size(), 8u);
  EXPECT_EQ(ok->request.outputs, std::vector<std::string>{"output"});
}

TEST(DecodeValidationTest, PaddedBodiesAreReadInPlace) {
  auto body = std::make_shared<std::string>();
  body->reserve(200);
  *body = R"({"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1.5,-2]}]})";
  auto r = DecodeInferRequest(body, -1, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request.inputs[0].tensor.byte_size(), 16u);
}

TEST(DecodeValidationTest, DuplicateKeysAndTrailingBytesAreRefused) {
  ExpectInvalid(Decode(R"({"inputs":[],"inputs":[]})"), "duplicate key 'inputs'");
  ExpectInvalid(Decode(R"({"inputs":[{"name":"a","name":"b","datatype":"FP32","shape":[1],)"
                       R"("data":[1]}]})"),
                "one string 'name'");
  ExpectInvalid(Decode(R"({"inputs":[]} {"inputs":[]})"), "malformed JSON");
  ExpectInvalid(Decode("{\"inputs\":[],\"id\":\"\xff\"}"), "malformed JSON");
}

TEST(DecodeValidationTest, InputKeysAreReadAsWritten) {
  // An escaped key is not the key it spells (consistently: never half-read).
  ExpectInvalid(
      Decode(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"d\u0061ta":[1]}]})"),
      "needs 'data'");
}

TEST(DecodeValidationTest, BinaryBodyWithoutTheHeaderNamesTheHeader) {
  std::string json =
      R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}]})";
  ExpectInvalid(Decode(json + "\xff\x00\x01\x02"), "Inference-Header-Content-Length");
}

}  // namespace
}  // namespace inferd::kserve
