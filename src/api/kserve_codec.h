#pragma once
// KServe v2 / Triton infer request and response codecs: JSON tensors (flat
// or nested data) and the binary tensor data extension. Decoding validates
// everything it can without the model config (datatype names, shapes,
// element counts, value ranges) and names the offending input in errors.

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
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
// `body`, which the returned tensors keep alive.
StatusOr<DecodedRequest> DecodeInferRequest(std::shared_ptr<const std::string> body,
                                            int64_t json_length);

// The "model" and optional "model_version" fields of a cache-warm line.
StatusOr<std::pair<std::string, std::string>> DecodeWarmTarget(const std::string& json);

struct EncodedResponse {
  std::string body;
  int64_t json_length = -1;  // set when binary data follows the JSON header
};

EncodedResponse EncodeInferResponse(const InferResponse& response, const DecodedRequest& request);

}  // namespace inferd::kserve
