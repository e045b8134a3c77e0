#include "model/model_version.h"

#include <filesystem>

#include "common/logging.h"
#include "model/warmup.h"

#include <atomic>
#include "sched/batch_tensors.h"

#include "sched/dynamic_batcher.h"
#include "sched/pass_through.h"
#include "tensor/buffer_pool.h"

namespace inferd {

// The backend instances and what running a batch on one needs. Shared by
// the version and its scheduler's runner: it outlives the version while a
// batch still runs.
struct ModelVersion::Runtime {
  explicit Runtime(const ModelConfig& c) : config(c) {}
  const ModelConfig config;  // the model and instances may keep pointers to it
  Clock* clock = nullptr;
  BatchObserver on_batch;
  BufferPool pool;
  std::unique_ptr<BackendModel> model;                      // outlives the instances
  std::vector<std::unique_ptr<BackendInstance>> instances;  // one per concurrent execution
  BackendMemory memory;
  bool shares_weights = false;
  Duration warmup_time{0};

  std::atomic<size_t> next{0};  // round-robin over asynchronous instances

  void Start(std::unique_ptr<Task> task) {
    const size_t i = next.fetch_add(1, std::memory_order_relaxed) % instances.size();
    task->timings().compute_started = clock->Now();
    instances[i]->Start(std::move(task));
  }

  void ExecuteBatch(int instance, TaskBatch& batch) {
    auto inputs = ConcatBatchInputs(batch, &pool);
    if (!inputs.ok()) {
      CompleteBatch(batch, inputs.status());
      return;
    }
    Time start = clock->Now();
    auto outputs = instances[static_cast<size_t>(instance)]->Execute(*inputs);
    Time end = clock->Now();
    int64_t items = 0;
    for (auto& t : batch) {
      t->timings().compute_started = start;
      t->timings().finished = end;
      items += t->batch_size();
    }
    if (on_batch) on_batch(items, end - start);
    CompleteBatch(batch, std::move(outputs));
  }
};

StatusOr<std::unique_ptr<ModelVersion>> ModelVersion::Load(const Options& options) {
  const ModelConfig& config = *options.config;
  BackendModelFactory fallback;
  const BackendModelFactory* factory = options.factory;
  if (!factory && options.backends) {
    auto it = options.backends->find(config.backend);
    if (it != options.backends->end()) {
      fallback = PerInstance(it->second);
      factory = &fallback;
    }
  }
  if (!factory) return InvalidArgumentError("unknown backend '" + config.backend + "'");
  std::unique_ptr<ModelVersion> mv(new ModelVersion(options.version, options.revision));
  auto runtime = std::make_shared<Runtime>(config);
  runtime->clock = options.clock ? options.clock : Clock::System();
  runtime->on_batch = options.on_batch;
  INFERD_ASSIGN_OR_RETURN(
      runtime->model,
      (*factory)(BackendModelSpec{&runtime->config, options.version_dir, options.version}));
  runtime->memory = runtime->model->Memory();
  runtime->shares_weights = runtime->model->shares_weights();
  // Executions x threads per execution never exceed the executor's threads
  // (an oversubscribed core only adds switches).
  int concurrency = static_cast<int>(config.instance_count);
  if (options.executor != nullptr) {
    const int per = std::max(1, runtime->model->threads_per_execution());
    const int fit = std::max(1, options.executor->threads() / per);
    if (concurrency > fit) {
      INFERD_LOG_WARN(
          "model '{}': instance_count {} x {} intra-op thread(s) exceed the executor's {} "
          "thread(s): {} concurrent execution(s)",
          config.name, concurrency, per, options.executor->threads(), fit);
      concurrency = fit;
    }
  }
  for (int i = 0; i < concurrency; ++i) {
    INFERD_ASSIGN_OR_RETURN(auto instance, runtime->model->CreateInstance(i));
    runtime->instances.push_back(std::move(instance));
  }
  mv->runtime_ = runtime;
  const bool async = runtime->instances.front()->asynchronous();
  // [[warmup]]: before the version can be seen; on one instance when they
  // share their weights. Asynchronous backends are not warmed.
  if (!config.warmup.empty() && !async) {
    std::vector<BackendInstance*> warm;
    for (auto& i : runtime->instances) {
      warm.push_back(i.get());
      if (runtime->shares_weights) break;
    }
    const std::string model_dir = std::filesystem::path(options.version_dir).parent_path().string();
    INFERD_RETURN_IF_ERROR(
        RunWarmup(runtime->config, warm, model_dir, runtime->clock, &runtime->warmup_time));
  }
  for (const auto& instance : runtime->instances) {
    if (instance->asynchronous() != async) {
      return InternalError("backend '" + config.backend +
                           "' made both blocking and asynchronous instances");
    }
  }
  if (config.decoupled && !async) {
    return InvalidArgumentError("model '" + config.name +
                                "' is decoupled (streams), but backend '" + config.backend +
                                "' is blocking and cannot stream");
  }
  if (async) {
    // The backend queues and batches itself: no batcher, no executor thread.
    PassThroughScheduler::Options po;
    po.max_in_flight = static_cast<size_t>(config.max_queue_size);
    po.clock = runtime->clock;
    INFERD_ASSIGN_OR_RETURN(mv->scheduler_,
                            PassThroughScheduler::Create(po, [runtime](std::unique_ptr<Task> t) {
                              runtime->Start(std::move(t));
                            }));
    return mv;
  }
  DynamicBatcher::Options bo;
  bo.batching = config.max_batch_size > 0 && config.dynamic_batching.enabled;
  bo.max_batch_size = std::max<int64_t>(1, config.max_batch_size);
  bo.max_queue_delay = std::chrono::microseconds(config.dynamic_batching.max_queue_delay_us);
  bo.preferred_batch_sizes = config.dynamic_batching.preferred_batch_sizes;
  bo.adaptive = bo.batching && config.dynamic_batching.adaptive;
  bo.latency_target = std::chrono::microseconds(config.dynamic_batching.latency_target_us);
  bo.max_queue_size = static_cast<size_t>(config.max_queue_size);
  bo.num_workers = static_cast<int>(runtime->instances.size());
  bo.priority_levels = static_cast<int>(config.scheduling.priority_levels);
  bo.lower_level_share = config.scheduling.lower_level_share;
  for (const QueuePolicyConfig& p : config.scheduling.queue_policy)
    bo.max_level_size.push_back(static_cast<size_t>(p.max_queue_size));
  // Overload control: at least one full batch running and one waiting per
  // instance (so that there is queued work to push out for higher-priority
  // requests), at most what the queue holds plus what runs (a request
  // past the gate is never refused by a full queue for want of room).
  bo.overload_control = config.overload.enabled;
  bo.overload.min_limit =
      config.overload.min_limit > 0
          ? config.overload.min_limit
          : 2 * static_cast<int64_t>(runtime->instances.size()) * bo.max_batch_size;
  bo.overload.max_limit =
      config.overload.max_limit > 0
          ? config.overload.max_limit
          : config.max_queue_size +
                static_cast<int64_t>(runtime->instances.size()) * bo.max_batch_size;
  bo.overload.target = std::chrono::microseconds(config.overload.target_delay_us);
  bo.overload.interval = std::chrono::microseconds(config.overload.interval_us);
  bo.clock = runtime->clock;
  bo.executor = options.executor;
  INFERD_ASSIGN_OR_RETURN(mv->scheduler_,
                          DynamicBatcher::Create(bo, [runtime](int instance, TaskBatch& batch) {
                            runtime->ExecuteBatch(instance, batch);
                          }));
  return mv;
}

ModelVersion::~ModelVersion() { Shutdown(); }

const ModelConfig& ModelVersion::config() const { return runtime_->config; }

Clock* ModelVersion::clock() const { return runtime_->clock; }

const BackendMemory& ModelVersion::memory() const { return runtime_->memory; }

bool ModelVersion::shares_weights() const { return runtime_->shares_weights; }

BufferPool::Stats ModelVersion::buffer_stats() const { return runtime_->pool.stats(); }

double ModelVersion::warmup_seconds() const {
  return std::chrono::duration<double>(runtime_->warmup_time).count();
}

int ModelVersion::concurrency() const { return static_cast<int>(runtime_->instances.size()); }

void ModelVersion::Shutdown() {
  if (scheduler_) scheduler_->Shutdown();
}

}  // namespace inferd
