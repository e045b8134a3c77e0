#pragma once
// InferenceServer::Call: one request's state on its way through the
// pipeline. Private to src/server/; shared by the pipeline's .cc files.

#include <memory>
#include <string>
#include <vector>

#include "cache/cache_entry.h"
#include "server/inference_server.h"

namespace inferd {

struct InferenceServer::Call {
  InferRequest request;  // its inputs are moved into `inputs`
  InferCallback done;    // called once, by Finish
  Time start;
  std::shared_ptr<ModelVersion> mv;
  ModelMetrics* mm = nullptr;
  std::vector<Tensor> inputs;  // in the model's declared input order
  int64_t batch = 1;
  std::string signature;
  bool cached = false;  // the model caches its responses
  bool leader = false;  // leads the coalesced flight for `key`
  CacheKey key;
};

}  // namespace inferd
