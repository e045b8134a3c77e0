#pragma once
// The backend interface: how the model layer runs a loaded model without
// knowing what runtime executes it. A backend is registered by name
// ("torchscript") with a factory that creates one instance per configured
// instance_count; each instance is driven by exactly one batcher worker
// thread, so an instance need not be thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/model_config.h"
#include "tensor/tensor.h"

namespace inferd {

class BackendInstance {
 public:
  virtual ~BackendInstance() = default;
  // `inputs` follow config.inputs' order (batched along dim 0 when the model
  // batches). Returns outputs in config.outputs' order. Never throws.
  virtual StatusOr<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) = 0;
};

struct BackendInstanceSpec {
  const ModelConfig* config = nullptr;
  std::string version_dir;  // DIR/<model>/<version>
  int instance_index = 0;
};

using BackendFactory =
    std::function<StatusOr<std::unique_ptr<BackendInstance>>(const BackendInstanceSpec&)>;
using BackendRegistry = std::map<std::string, BackendFactory>;

// The version of this interface (and of the C++ types it passes) that
// backend plugins are built against; see model/backend_loader.h.
inline constexpr uint32_t kBackendApiVersion = 1;

}  // namespace inferd
