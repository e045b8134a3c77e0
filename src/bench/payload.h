#pragma once
// The request the load generator sends: the model's metadata (KServe v2
// `GET /v2/models/{model}`), concrete input shapes, and one random request
// body built up front, either as JSON or in the binary tensor extension.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "tensor/data_type.h"
#include "tensor/tensor.h"

namespace inferd::bench {

// One input or output as the metadata describes it; -1 marks a variable dim.
struct TensorSpec {
  std::string name;
  DataType dtype = DataType::kFp32;
  Shape shape;
};

struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;
  std::string platform;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

// Parses the metadata JSON; fails on missing fields or unknown datatypes.
StatusOr<ModelMetadata> ParseModelMetadata(std::string_view json);

// Parses a --shape flag "name=d1,d2,..." (dims >= 0).
StatusOr<std::pair<std::string, Shape>> ParseShapeOverride(std::string_view text);
// Parses every flag; a name given twice is an error.
StatusOr<std::map<std::string, Shape>> ParseShapeOverrides(const std::vector<std::string>& texts);

// The concrete shape to send for `spec`. When the first dim is -1 it is the
// batch dim and becomes `batch_size`; other -1 dims become 1. An override may
// give the whole shape, or (when the first dim is -1) the shape without the
// batch dim; fixed dims must match the metadata, and a batch dim given by an
// override must equal `batch_size`. `batch_size` > 1 needs a -1 first dim.
StatusOr<Shape> ResolveShape(const TensorSpec& spec, int64_t batch_size,
                             const Shape* override_shape);

enum class PayloadFormat { kJson, kBinary };

// A ready-to-send request body.
struct Payload {
  std::string body;
  std::string content_type;  // application/json or application/octet-stream
  // Binary format: length of the JSON header at the start of `body`, sent as
  // Inference-Header-Content-Length. 0 for JSON.
  size_t header_length = 0;
};

// Builds one request for all inputs of `metadata`, filled with deterministic
// random data from `seed`: FP in [0, 1), integers in [0, 100) (unsigned and
// signed alike), BOOL 0/1, BYTES 8 random letters per element. The binary
// format also asks for every output as binary data.
StatusOr<Payload> BuildPayload(const ModelMetadata& metadata, PayloadFormat format,
                               int64_t batch_size, const std::map<std::string, Shape>& overrides,
                               uint64_t seed);

}  // namespace inferd::bench
