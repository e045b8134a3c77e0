#pragma once
// ModelConfig: what DIR/<model>/config.toml says about a model, validated.
//
//   backend = "torchscript"
//   max_batch_size = 32            # 0: no batch dimension
//   instance_count = 2
//   [[input]]  name, datatype, dims (batch dim excluded; -1 = variable)
//   [[output]] name, datatype, dims
//   max_queue_size = 1024          # bounded queue, batching or not
//   decoupled = false              # true: streams chunks (Triton's decoupled policy)
//   [dynamic_batching]             # presence enables it (needs max_batch_size > 0)
//   enable (default true), max_queue_delay_us, preferred_batch_sizes,
//   max_queue_size (same as the top-level key)
//   [response_cache]               # presence enables it: enable (default true),
//                                  # ttl_s (1 s to 10 years), max_stale_s,
//                                  # scope ("tenant" default, or "shared")
//   [parameters]                   # backend parameters, e.g. intra_op_threads
//
// Errors name the file and the field.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "tensor/tensor.h"

namespace inferd {

struct TensorConfig {
  std::string name;
  DataType dtype = DataType::kFp32;
  Shape dims;  // without the batch dimension when the model batches
};

struct DynamicBatchingConfig {
  bool enabled = false;
  int64_t max_queue_delay_us = 0;
  std::vector<int64_t> preferred_batch_sizes;
};

struct ResponseCacheConfig {
  bool enabled = false;
  int64_t ttl_s = 3600;     // entries expire after this
  int64_t max_stale_s = 0;  // stale-if-error window after expiry
  // false ("tenant"): each tenant has its own entries, and no request is
  // ever answered from another tenant's; true ("shared"): one set for all.
  bool shared = false;
};

struct ModelConfig {
  std::string name;
  std::string backend;
  int64_t max_batch_size = 0;
  int64_t instance_count = 1;
  int64_t max_queue_size = 1024;  // applies with and without dynamic batching
  // Streams its responses: any number of chunks per request, then an end
  // (Triton's decoupled transaction policy). Needs an asynchronous backend
  // and a client that takes a stream; never cached.
  bool decoupled = false;
  std::vector<TensorConfig> inputs;
  std::vector<TensorConfig> outputs;
  DynamicBatchingConfig dynamic_batching;
  ResponseCacheConfig response_cache;
  std::map<std::string, std::string> parameters;  // backend parameters, as text

  // The full shape a request tensor must match, with -1 for a variable
  // dimension (and for the batch dimension of batching models).
  Shape FullShape(const TensorConfig& t) const;

  // Checks one request input against the declared inputs: a known name, its
  // datatype, its shape against FullShape and its batch size against
  // max_batch_size. *index receives the input's position in `inputs`.
  // Cheap, and needs no tensor data: decoders call it before they allocate.
  Status CheckInput(std::string_view name, DataType dtype, const Shape& shape, size_t* index) const;
};

// Parses and validates `path` for model `name`.
StatusOr<ModelConfig> LoadModelConfig(const std::string& path, const std::string& name);
// The same, from TOML text (for tests); `path` is only used in messages.
StatusOr<ModelConfig> ParseModelConfig(const std::string& toml_text, const std::string& path,
                                       const std::string& name);

}  // namespace inferd
