#pragma once
// KServe v2 / Triton infer request and response codecs: JSON tensors (flat
// or nested data) and the binary tensor data extension. Decoding validates
// datatype names, shapes, element counts and value ranges, and, given the
// model config, names, datatypes and shapes against the model, each input
// before its data is decoded. Nothing is allocated from a size the client
// states before that size is checked against the body: a request's decoded
// tensors take at most 4 bytes per byte of its JSON (8-byte numbers written
// as "1,"), and binary tensors are views into the body.

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "model/model_config.h"
#include "server/infer_types.h"

namespace inferd::kserve {

struct DecodedRequest {
  InferRequest request;
  bool binary_output_default = false;       // parameters.binary_data_output
  std::vector<std::string> binary_outputs;  // outputs with parameters.binary_data = true
  std::vector<std::string> json_outputs;    // outputs with parameters.binary_data = false
};

// `body` is the whole HTTP body; `json_length` is Inference-Header-Content-Length
// (or -1 when absent: the body is all JSON). Binary inputs are views into
// `body`, which the returned tensors keep alive. `model`, when given, is
// checked input by input while decoding (unknown names, datatypes, shapes,
// duplicates).
StatusOr<DecodedRequest> DecodeInferRequest(std::shared_ptr<const std::string> body,
                                            int64_t json_length,
                                            const ModelConfig* model = nullptr);

// The "model" and optional "model_version" fields of a cache-warm line.
struct WarmTarget {
  std::string model, version;
  std::string tenant;  // "" for the default tenant
};
StatusOr<WarmTarget> DecodeWarmTarget(const std::string& json);

struct EncodedResponse {
  std::string body;
  int64_t json_length = -1;  // set when binary data follows the JSON header
};

EncodedResponse EncodeInferResponse(const InferResponse& response, const DecodedRequest& request);

}  // namespace inferd::kserve
