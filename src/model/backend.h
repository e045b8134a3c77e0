#pragma once
// The backend interface: how the model layer runs a loaded model without
// knowing what runtime executes it (Triton's model / model instance split).
// A backend is registered by name ("torchscript") with a factory that
// loads a BackendModel once per model version; the model makes one
// instance per configured instance_count, which may share its weights
// (instance_count then means concurrent executions, not copies). A
// blocking instance runs one batch at a time (the
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

// Makes one instance (a backend without a model-level load, and test
// doubles).
using BackendFactory =
    std::function<StatusOr<std::unique_ptr<BackendInstance>>(const BackendInstanceSpec&)>;
using BackendRegistry = std::map<std::string, BackendFactory>;

// What a loaded version holds in memory, as its runtime reports it.
struct BackendMemory {
  bool known = false;         // false: the backend cannot tell
  int64_t weights_bytes = 0;  // parameters, buffers, tensor constants (by storage)
  int64_t packed_bytes = 0;   // the runtime's pre-packed copies (e.g. oneDNN layouts)
  bool approximate = false;   // some parts counted at their logical size, or not visible
  int64_t total() const { return weights_bytes + packed_bytes; }
};

struct BackendModelSpec {
  const ModelConfig* config = nullptr;  // outlives the model and its instances
  std::string version_dir;              // DIR/<model>/<version>
  int64_t version = 0;
};

// One loaded version of a model. It outlives its instances.
class BackendModel {
 public:
  virtual ~BackendModel() = default;
  // Instance `index` (0 .. concurrency-1); called on one thread before any
  // instance runs.
  virtual StatusOr<std::unique_ptr<BackendInstance>> CreateInstance(int index) = 0;
  // Measured once, at load; for the memory view and the memory budget.
  virtual BackendMemory Memory() const { return {}; }
  // True when the instances share one copy of the weights.
  virtual bool shares_weights() const { return false; }
  // Threads one execution uses (libtorch's intra-op threads): instances x
  // this never exceed the executor's threads.
  virtual int threads_per_execution() const { return 1; }
};

using BackendModelFactory =
    std::function<StatusOr<std::unique_ptr<BackendModel>>(const BackendModelSpec&)>;

// A model whose instances are each made by `factory` (a copy each).
inline BackendModelFactory PerInstance(BackendFactory factory) {
  class Model final : public BackendModel {
   public:
    Model(BackendFactory f, BackendModelSpec spec) : f_(std::move(f)), spec_(std::move(spec)) {}
    StatusOr<std::unique_ptr<BackendInstance>> CreateInstance(int index) override {
      return f_(BackendInstanceSpec{spec_.config, spec_.version_dir, index});
    }

   private:
    BackendFactory f_;
    BackendModelSpec spec_;
  };
  return [factory = std::move(factory)](
             const BackendModelSpec& spec) -> StatusOr<std::unique_ptr<BackendModel>> {
    return std::unique_ptr<BackendModel>(new Model(factory, spec));
  };
}

// The version of this interface (and of the C++ types it passes) that
// backend plugins are built against; see model/backend_loader.h.
// 3: plugins register a BackendModelFactory.
inline constexpr uint32_t kBackendApiVersion = 3;

}  // namespace inferd
