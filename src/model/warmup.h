#pragma once
// Warm-up: the [[warmup]] entries of a model's config run through a loaded
// version's instances before it is marked READY, so that the first real
// request does not pay for lazy initialization (TorchScript's profiling
// runs, oneDNN's kernel choice, allocator growth).

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "model/backend.h"
#include "model/model_config.h"
#include "tensor/tensor.h"

namespace inferd {

// The inputs of `entry` (the `index`th) at batch size `batch`, in the
// config's input order. Random fills are seeded from the model name and
// the entry's index, so a warm-up is the same at every load. Files are read
// relative to `model_dir` and must hold exactly one item's bytes.
StatusOr<std::vector<Tensor>> WarmupInputs(const ModelConfig& config, const WarmupConfig& entry,
                                           size_t index, int64_t batch,
                                           const std::string& model_dir);

// Runs every entry, `count` times per batch size, on each instance (blocking
// backends; asynchronous ones are not warmed). Errors name the entry and the
// batch size. `took` receives the time spent.
Status RunWarmup(const ModelConfig& config, const std::vector<BackendInstance*>& instances,
                 const std::string& model_dir, Clock* clock, Duration* took);

}  // namespace inferd
