// Fuzz target: the binary tensor data extension, structured. The fuzz bytes
// choose up to 4 inputs (datatype, shape, declared binary_data_size) and
// the binary bytes after the JSON header, so the fuzzer explores sizes,
// shapes and framing instead of having to spell valid JSON.
// Invariants: decoding returns a Status; on success the inputs are views
// that tile the binary part exactly, in order (each view's bytes are the
// body's bytes at its offset), each fixed-size tensor holds exactly its
// shape's byte size, and the body is kept alive by the views.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "api/kserve_codec.h"
#include "fuzz_check.h"

namespace {

using namespace inferd;

const char* kTypes[] = {"BOOL", "UINT8", "INT16", "INT32", "INT64",
                        "FP16", "FP32",  "FP64",  "BYTES"};

struct Cursor {
  const uint8_t* p;
  size_t n;
  uint64_t Take(size_t bytes) {
    uint64_t v = 0;
    for (size_t i = 0; i < bytes && n > 0; ++i, ++p, --n) v |= static_cast<uint64_t>(*p) << (8 * i);
    return v;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Cursor c{data, size};
  size_t inputs = 1 + c.Take(1) % 4;
  std::string json = "{\"inputs\":[";
  for (size_t i = 0; i < inputs; ++i) {
    const char* type = kTypes[c.Take(1) % (sizeof(kTypes) / sizeof(kTypes[0]))];
    size_t rank = c.Take(1) % 4;
    std::string shape = "[";
    for (size_t d = 0; d < rank; ++d) {
      uint64_t dim = c.Take(1) & 0x80 ? c.Take(8) : c.Take(1);  // small, or anything
      if (dim > static_cast<uint64_t>(INT64_MAX)) dim >>= 1;
      shape += (d ? "," : "") + std::to_string(dim);
    }
    shape += "]";
    uint64_t declared = c.Take(1) & 0x80 ? c.Take(8) : c.Take(2);
    json += std::string(i ? "," : "") + "{\"name\":\"in" + std::to_string(i) +
            "\",\"datatype\":\"" + type + "\",\"shape\":" + shape +
            ",\"parameters\":{\"binary_data_size\":" + std::to_string(declared) + "}}";
  }
  json += "]}";
  auto body = std::make_shared<std::string>(json);
  body->append(reinterpret_cast<const char*>(c.p), c.n);  // the binary part
  const size_t jlen = json.size();
  auto decoded = kserve::DecodeInferRequest(body, static_cast<int64_t>(jlen), nullptr);
  if (!decoded.ok()) {
    FUZZ_CHECK(!decoded.status().message().empty());
    return 0;
  }
  size_t offset = jlen;
  for (const auto& in : decoded->request.inputs) {
    const Tensor& t = in.tensor;
    FUZZ_CHECK(t.byte_size() <= body->size() - offset);
    FUZZ_CHECK(t.byte_size() == 0 ||
               std::memcmp(t.data(), body->data() + offset, t.byte_size()) == 0);
    if (t.dtype() != DataType::kBytes) {
      FUZZ_CHECK(FixedByteSize(t.dtype(), t.shape()) == static_cast<int64_t>(t.byte_size()));
    }
    offset += t.byte_size();
  }
  FUZZ_CHECK(offset == body->size());
  std::weak_ptr<std::string> weak = body;
  body.reset();
  FUZZ_CHECK(decoded->request.inputs.empty() || !weak.expired());
  return 0;
}
