// Fuzz target: the KServe v2 request decoder, JSON and binary tensor data.
// The first byte picks the framing (all JSON, or an
// Inference-Header-Content-Length from the next two bytes) and whether a
// model config is checked while decoding.
// Invariants: decoding returns a Status (nothing escapes); a decoded
// request satisfies the model it was checked against; and it re-encodes
// (as JSON tensors) to a request that decodes to the same tensors.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "api/kserve_codec.h"
#include "fuzz_check.h"

namespace {

using namespace inferd;

const ModelConfig& Model() {
  static const ModelConfig* model = [] {
    auto c = ParseModelConfig(R"(
backend = "torchscript"
max_batch_size = 4
[[input]]
name = "a"
datatype = "FP32"
dims = [2]
[[input]]
name = "b"
datatype = "INT64"
dims = [-1]
[[input]]
name = "c"
datatype = "BYTES"
dims = [-1]
[[input]]
name = "d"
datatype = "FP16"
dims = [-1, 2]
[[output]]
name = "y"
datatype = "FP32"
dims = [1]
)",
                              "fuzz.toml", "m");
    FUZZ_CHECK(c.ok());
    return new ModelConfig(*c);
  }();
  return *model;
}

// Element values compared by value: -0 and 0 are one number in JSON.
bool SameValues(const Tensor& x, const Tensor& y) {
  if (x.dtype() != y.dtype() || x.shape() != y.shape()) return false;
  switch (x.dtype()) {
    case DataType::kFp32:
    case DataType::kFp64:
    case DataType::kFp16: {
      size_t w = DataTypeSize(x.dtype());
      if (x.byte_size() != y.byte_size()) return false;
      for (size_t i = 0; i + w <= x.byte_size(); i += w) {
        double a, b;
        if (w == 4) {
          float fa, fb;
          std::memcpy(&fa, x.data() + i, 4);
          std::memcpy(&fb, y.data() + i, 4);
          a = fa, b = fb;
        } else if (w == 8) {
          std::memcpy(&a, x.data() + i, 8);
          std::memcpy(&b, y.data() + i, 8);
        } else {
          uint16_t ha, hb;
          std::memcpy(&ha, x.data() + i, 2);
          std::memcpy(&hb, y.data() + i, 2);
          a = HalfToFloat(ha), b = HalfToFloat(hb);
        }
        if (a != b) return false;
      }
      return true;
    }
    case DataType::kBool:
      for (size_t i = 0; i < x.byte_size(); ++i) {
        if ((x.data()[i] != 0) != (y.data()[i] != 0)) return false;
      }
      return x.byte_size() == y.byte_size();
    default:
      return x.bytes() == y.bytes();
  }
}

// Whether JSON can carry the tensor's values exactly (no NaN or infinity;
// BYTES from binary data may not be UTF-8).
bool JsonRepresentable(const Tensor& t, bool from_binary) {
  if (t.dtype() == DataType::kBytes) return !from_binary;
  size_t w = DataTypeSize(t.dtype());
  for (size_t i = 0; i + w <= t.byte_size(); i += w) {
    double v = 0;
    if (t.dtype() == DataType::kFp32) {
      float f;
      std::memcpy(&f, t.data() + i, 4);
      v = f;
    } else if (t.dtype() == DataType::kFp64) {
      std::memcpy(&v, t.data() + i, 8);
    } else if (t.dtype() == DataType::kFp16) {
      uint16_t h;
      std::memcpy(&h, t.data() + i, 2);
      v = HalfToFloat(h);
    }
    if (!std::isfinite(v)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const bool with_model = data[0] & 1;
  const bool binary = data[0] & 2;
  int64_t json_length = binary ? (data[1] | (data[2] << 8)) : -1;
  auto body =
      std::make_shared<const std::string>(reinterpret_cast<const char*>(data + 3), size - 3);
  if (json_length > static_cast<int64_t>(body->size()))
    json_length = static_cast<int64_t>(body->size());
  auto decoded = kserve::DecodeInferRequest(body, json_length, with_model ? &Model() : nullptr);
  if (!decoded.ok()) {
    FUZZ_CHECK(!decoded.status().message().empty());
    return 0;
  }
  const InferRequest& req = decoded->request;
  if (with_model) {
    for (const auto& in : req.inputs) {
      size_t index;
      FUZZ_CHECK(Model().CheckInput(in.name, in.tensor.dtype(), in.tensor.shape(), &index).ok());
    }
  }
  // Re-encode the inputs as JSON tensors; a response's outputs have the
  // same form as a request's inputs.
  InferResponse as_outputs;
  for (const auto& in : req.inputs) {
    if (!JsonRepresentable(in.tensor, binary)) return 0;
    FUZZ_CHECK(in.tensor.element_count() >= 0);
    as_outputs.outputs.push_back(in);
  }
  kserve::DecodedRequest json_prefs;
  std::string encoded = kserve::EncodeInferResponse(as_outputs, json_prefs).body;
  size_t key = encoded.find("\"outputs\":");
  FUZZ_CHECK(key != std::string::npos);
  encoded.replace(key, 10, "\"inputs\":");
  auto again = kserve::DecodeInferRequest(std::make_shared<const std::string>(encoded), -1,
                                          with_model ? &Model() : nullptr);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->request.inputs.size() == req.inputs.size());
  for (size_t i = 0; i < req.inputs.size(); ++i) {
    FUZZ_CHECK(again->request.inputs[i].name == req.inputs[i].name);
    FUZZ_CHECK(SameValues(again->request.inputs[i].tensor, req.inputs[i].tensor));
  }
  return 0;
}
