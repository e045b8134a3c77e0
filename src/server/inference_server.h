#pragma once
// InferenceServer: the one request pipeline of DESIGN.md section 1, without
// any protocol. Every request goes admission -> cache -> model -> schedule ->
// execute -> respond, in that order; stages that do not exist yet (admission,
// cache) are no-ops here, not branches elsewhere.
//
// Guarantees: `done` is called exactly once per Infer() call, from any
// thread (the caller's for early errors, a backend worker's otherwise).
//
// Threading: Infer is safe from any thread and never blocks on model
// execution.

#include <atomic>
#include <memory>

#include "common/clock.h"
#include "model/model_manager.h"
#include "server/infer_types.h"
#include "server/server_metrics.h"

namespace inferd {

class InferenceServer {
 public:
  struct Options {
    ModelManager* models = nullptr;    // required, outlives the server
    ServerMetrics* metrics = nullptr;  // required, outlives the server
    Clock* clock = nullptr;            // default: Clock::System()
  };
  static StatusOr<std::unique_ptr<InferenceServer>> Create(const Options& options);

  void Infer(InferRequest request, InferCallback done);

  // Refreshes gauges that are sampled rather than counted (queue depths).
  void CollectGauges();

  ModelManager* models() { return options_.models; }

 private:
  explicit InferenceServer(const Options& options) : options_(options) {}
  // Checks the request against the model config and orders the inputs as
  // the model declares them. Sets *batch and *signature.
  Status Validate(const ModelConfig& config, InferRequest& request, std::vector<Tensor>* inputs,
                  int64_t* batch, std::string* signature) const;

  Options options_;
};

}  // namespace inferd
