#pragma once
// ModelVersion: one loaded version of a model, ready to serve: its config,
// one backend instance per configured instance_count, and its scheduler: a
// DynamicBatcher on the shared Executor for blocking backends, a
// PassThroughScheduler for asynchronous ones.
//
// Lifetime: the instances live in a runtime shared with the scheduler's
// queue, so a version may be released anywhere, even by the last request
// it completes on an executor thread: the batch still running keeps the
// instances alive and nothing joins itself.
//
// Threading: Submit and queue_depth from any thread. Shutdown() drains the
// queue (every queued task still runs) and waits for running batches.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "model/backend.h"
#include "model/model_config.h"
#include "sched/executor.h"
#include "sched/scheduler.h"
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
    // The backend's model factory; when null, config.backend is looked up
    // in `backends` (instance factories: a copy per instance).
    const BackendModelFactory* factory = nullptr;
    const BackendRegistry* backends = nullptr;
    Clock* clock = nullptr;  // default: Clock::System()
    BatchObserver on_batch;  // optional
    // The shared executor; null: the version's batcher makes its own
    // (instance_count threads).
    Executor* executor = nullptr;
    // What it was loaded from (model/repository.h Revision); 0: unknown.
    uint64_t revision = 0;
  };
  static StatusOr<std::unique_ptr<ModelVersion>> Load(const Options& options);
  ~ModelVersion();

  const ModelConfig& config() const;
  int64_t version() const { return version_; }
  uint64_t revision() const { return revision_; }
  Clock* clock() const;
  // What the backend holds for this version, measured at load.
  const BackendMemory& memory() const;
  bool shares_weights() const;
  BufferPool::Stats buffer_stats() const;
  // Time the [[warmup]] entries took at load.
  double warmup_seconds() const;
  // Executions that may run at once: instance_count, unless clamped so
  // that executions x threads per execution fit the executor.
  int concurrency() const;

  // Who uses the version (model/version_lease.h): the requests holding a
  // lease, and when the last one ended.
  struct Usage {
    std::atomic<int64_t> leases{0};
    std::atomic<int64_t> last_use_ns{0};  // Clock::CoarseNow() since its epoch
    // What the memory budget charges it (set before it is handed out).
    std::atomic<int64_t> charged{0};
    // Runs when the last lease ends while notify_idle is set (keep-alive
    // 0, or a load waiting for memory); set before it is handed out.
    std::atomic<bool> notify_idle{false};
    std::function<void()> on_idle;
  };
  Usage& usage() { return usage_; }

  // See Scheduler::Schedule: ownership moves only on success.
  Status Submit(std::unique_ptr<Task>& task) { return scheduler_->Schedule(task); }
  size_t queue_depth() { return scheduler_->queue_depth(); }
  size_t queue_depth(int level) { return scheduler_->queue_depth(level); }
  // See Scheduler::Reserve (overload control).
  StatusOr<OverloadSlot> Reserve(const QueueKey& key, int64_t* retry_after_s) {
    return scheduler_->Reserve(key, retry_after_s);
  }
  OverloadControl::Stats overload_stats() { return scheduler_->overload_stats(); }
  AdaptiveStats adaptive_stats() { return scheduler_->adaptive_stats(); }
  void CountByTenant(std::vector<int64_t>* out) { scheduler_->CountByTenant(out); }
  void Shutdown();
  void Flush() { scheduler_->Flush(); }
  // Answers queued requests whose cancellation fired or deadline passed.
  void DropCancelled() { scheduler_->DropCancelled(); }

 private:
  struct Runtime;  // what running a batch needs (model_version.cc)
  ModelVersion(int64_t version, uint64_t revision) : version_(version), revision_(revision) {}

  const int64_t version_;
  const uint64_t revision_;
  Usage usage_;
  std::shared_ptr<Runtime> runtime_;
  std::unique_ptr<Scheduler> scheduler_;
};

}  // namespace inferd
