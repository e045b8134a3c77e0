#pragma once
// ModelVersion: one loaded version of a model, ready to serve: its config,
// one backend instance per configured instance_count, and the dynamic
// batcher whose workers drive those instances.
//
// Threading: Submit and queue_depth from any thread. Shutdown() drains the
// queue (every queued task still runs) and joins the workers.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "model/backend.h"
#include "model/model_config.h"
#include "sched/dynamic_batcher.h"
#include "tensor/buffer_pool.h"

namespace inferd {

class ModelVersion {
 public:
  // Called after each executed batch, from the worker thread.
  using BatchObserver = std::function<void(int64_t batch_items, Duration compute_time)>;

  struct Options {
    const ModelConfig* config = nullptr;  // copied
    int64_t version = 1;
    std::string version_dir;
    const BackendRegistry* backends = nullptr;
    Clock* clock = nullptr;  // default: Clock::System()
    BatchObserver on_batch;  // optional
  };
  static StatusOr<std::unique_ptr<ModelVersion>> Load(const Options& options);
  ~ModelVersion();

  const ModelConfig& config() const { return config_; }
  int64_t version() const { return version_; }

  // See DynamicBatcher::Enqueue: ownership moves only on success.
  Status Submit(std::unique_ptr<Task>& task);
  size_t queue_depth();
  void Shutdown();
  void Flush() { batcher_->Flush(); }
  // Answers queued requests whose cancellation fired or deadline passed.
  void DropCancelled() { batcher_->DropCancelled(); }

 private:
  ModelVersion(ModelConfig config, int64_t version)
      : config_(std::move(config)), version_(version) {}
  void ExecuteBatch(int worker, TaskBatch& batch);

  const ModelConfig config_;
  const int64_t version_;
  Clock* clock_ = nullptr;
  BatchObserver on_batch_;
  BufferPool pool_;
  std::vector<std::unique_ptr<BackendInstance>> instances_;  // one per worker
  std::unique_ptr<DynamicBatcher> batcher_;
};

}  // namespace inferd
