#pragma once
// The protocol-neutral request and response of the inference pipeline. API
// adapters (KServe v2 today, OpenAI-compatible later) decode into these and
// encode from them; the server never sees HTTP or JSON.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "tensor/tensor.h"

namespace inferd {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

struct InferRequest {
  std::string model;
  std::string version;  // empty: the model's default (highest) version
  std::string id;       // echoed back
  std::vector<NamedTensor> inputs;
  std::vector<std::string> outputs;  // requested outputs; empty = all
};

struct InferResponse {
  std::string model;
  int64_t version = 0;
  std::string id;
  std::vector<NamedTensor> outputs;
};

// Called exactly once per request, from any thread.
using InferCallback = std::function<void(StatusOr<InferResponse>)>;

}  // namespace inferd
