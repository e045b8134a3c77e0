#pragma once
// The backend interface: how the model layer runs a loaded model without
// knowing what runtime executes it. A backend is registered by name
// ("torchscript") with a factory that creates one instance per configured
// instance_count. A blocking instance runs one batch at a time (the
// DynamicBatcher hands batches to free instances), so it need not be
// thread-safe; an asynchronous instance's Start may be called from any
// thread, concurrently.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/model_config.h"
#include "sched/task.h"
#include "tensor/tensor.h"

namespace inferd {

class BackendInstance {
 public:
  virtual ~BackendInstance() = default;

  // Blocking backends (compute in-process, e.g. TorchScript): the model's
  // DynamicBatcher calls Execute on an executor thread with a whole batch.
  // `inputs` follow config.inputs' order (batched along dim 0 when the model
  // batches). Returns outputs in config.outputs' order. Never throws.
  virtual StatusOr<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) {
    (void)inputs;
    return UnimplementedError("this backend does not run batches (it is asynchronous)");
  }

  // Asynchronous backends (streams, remote servers) return true and take
  // each request through Start instead, with no batcher and no executor
  // thread (PassThroughScheduler); they may have any number in flight.
  virtual bool asynchronous() const { return false; }
  // Starts `task` (inputs in task->inputs(), config.inputs' order) and
  // returns at once; never blocks. The task is answered later, from any
  // thread, exactly once in total: Complete(outputs) for one result, or
  // task->Chunk(...) any number of times (honouring its backpressure) then
  // Complete(empty outputs) for a stream (streaming() tells), or
  // Complete(error). A stream stops early, completing with
  // task->cancel_reason(), once task->cancelled() is true.
  virtual void Start(std::unique_ptr<Task> task) {
    task->Complete(UnimplementedError("this backend runs batches (it is blocking)"));
  }
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
inline constexpr uint32_t kBackendApiVersion = 2;

}  // namespace inferd
