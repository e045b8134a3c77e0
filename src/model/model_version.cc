#include "model/model_version.h"

#include "sched/batch_tensors.h"

namespace inferd {

StatusOr<std::unique_ptr<ModelVersion>> ModelVersion::Load(const Options& options) {
  const ModelConfig& config = *options.config;
  auto factory = options.backends->find(config.backend);
  if (factory == options.backends->end()) {
    return InvalidArgumentError("unknown backend '" + config.backend + "'");
  }
  std::unique_ptr<ModelVersion> mv(new ModelVersion(config, options.version));
  mv->clock_ = options.clock ? options.clock : Clock::System();
  mv->on_batch_ = options.on_batch;
  for (int i = 0; i < config.instance_count; ++i) {
    BackendInstanceSpec spec{&mv->config_, options.version_dir, i};
    INFERD_ASSIGN_OR_RETURN(auto instance, factory->second(spec));
    mv->instances_.push_back(std::move(instance));
  }
  DynamicBatcher::Options bo;
  bo.batching = config.max_batch_size > 0 && config.dynamic_batching.enabled;
  bo.max_batch_size = std::max<int64_t>(1, config.max_batch_size);
  bo.max_queue_delay = std::chrono::microseconds(config.dynamic_batching.max_queue_delay_us);
  bo.preferred_batch_sizes = config.dynamic_batching.preferred_batch_sizes;
  bo.max_queue_size = static_cast<size_t>(config.max_queue_size);
  bo.num_workers = static_cast<int>(config.instance_count);
  bo.clock = mv->clock_;
  ModelVersion* raw = mv.get();
  INFERD_ASSIGN_OR_RETURN(mv->batcher_,
                          DynamicBatcher::Create(bo, [raw](int worker, TaskBatch& batch) {
                            raw->ExecuteBatch(worker, batch);
                          }));
  return mv;
}

ModelVersion::~ModelVersion() { Shutdown(); }

Status ModelVersion::Submit(std::unique_ptr<Task>& task) { return batcher_->Enqueue(task); }

size_t ModelVersion::queue_depth() { return batcher_->queue_depth(); }

void ModelVersion::Shutdown() {
  if (batcher_) batcher_->Shutdown();
}

void ModelVersion::ExecuteBatch(int worker, TaskBatch& batch) {
  auto inputs = ConcatBatchInputs(batch, &pool_);
  if (!inputs.ok()) {
    CompleteBatch(batch, inputs.status());
    return;
  }
  Time start = clock_->Now();
  auto outputs = instances_[static_cast<size_t>(worker)]->Execute(*inputs);
  Time end = clock_->Now();
  int64_t items = 0;
  for (auto& t : batch) {
    t->timings().compute_started = start;
    t->timings().finished = end;
    items += t->batch_size();
  }
  if (on_batch_) on_batch_(items, end - start);
  CompleteBatch(batch, std::move(outputs));
}

}  // namespace inferd
