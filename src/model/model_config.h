#pragma once
// ModelConfig: what DIR/<model>/config.toml says about a model, validated.
//
//   backend = "torchscript"
//   max_batch_size = 32            # 0: no batch dimension
//   instance_count = 2
//   [[input]]  name, datatype, dims (batch dim excluded; -1 = variable)
//   [[output]] name, datatype, dims
//   max_queue_size = 1024          # bounded queue, batching or not
//   decoupled = false              # true: streams chunks (Triton's decoupled policy)
//   [dynamic_batching]             # presence enables it (needs max_batch_size > 0)
//   enable (default true), max_queue_delay_us, preferred_batch_sizes,
//   max_queue_size (same as the top-level key), adaptive = false,
//   latency_target_us (required with adaptive, 1000..60000000)
//   [response_cache]               # presence enables it: enable (default true),
//                                  # ttl_s (1 s to 10 years), max_stale_s,
//                                  # scope ("tenant" default, or "shared")
//   [scheduling]                   # priorities (docs/configuration.md)
//   priority_levels = 1 (1..16), default_priority (default: the lowest),
//   lower_level_share = 0.1 (0..0.5; 0: strict priority)
//   [scheduling.default_queue_policy], [scheduling.priority_queue_policy.N]
//   max_queue_size, default_timeout_us, max_timeout_us,
//   timeout_action ("reject" | "delay")
//   [overload]                     # presence enables an adaptive limit on
//   enable = true, target_delay_us  # queued + running work (0: auto),
//   interval_us = 100000, min_limit, max_limit (0: derived)
//   [parameters]                   # backend parameters, e.g. intra_op_threads
//
// Errors name the file and the field.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "tensor/tensor.h"

namespace inferd {

struct TensorConfig {
  std::string name;
  DataType dtype = DataType::kFp32;
  Shape dims;  // without the batch dimension when the model batches
};

// [[warmup]]: inputs run through a model version before it is marked
// READY (docs/configuration.md, "Warm-up").
enum class WarmupFill { kZero, kRandom, kValues, kFile };

struct WarmupInputConfig {
  std::string name;
  Shape dims;                      // empty: the input's configured dims (then fixed)
  std::optional<WarmupFill> fill;  // absent: the entry's
  std::vector<double> values;      // kValues: repeated to fill the shape
  std::string file;  // kFile: raw little-endian bytes, relative to the model directory
};

struct WarmupConfig {
  std::string name;
  std::vector<int64_t> batch_sizes;  // each 1..max_batch_size; {1} by default
  int64_t count = 1;                 // runs per batch size
  WarmupFill fill = WarmupFill::kRandom;
  std::vector<WarmupInputConfig> inputs;  // per-input overrides, by name
};

// [version_policy]: which version directories are served (Triton's
// version policy). latest(N): the N highest; all; specific: the listed ones.
struct VersionPolicyConfig {
  enum class Kind { kLatest, kAll, kSpecific };
  Kind kind = Kind::kLatest;
  int64_t num_versions = 1;
  std::vector<int64_t> versions;  // kSpecific
  // The served subset of `available` (ascending).
  std::vector<int64_t> Select(const std::vector<int64_t>& available) const;
  // "latest(1)", "all", "specific(1, 3)".
  std::string Describe() const;
};

struct DynamicBatchingConfig {
  bool enabled = false;
  int64_t max_queue_delay_us = 0;
  std::vector<int64_t> preferred_batch_sizes;
  // Cap and delay chosen online to keep queue + compute under the target
  // (sched/adaptive_batching.h); max_queue_delay_us is then the delay
  // before the first batch.
  bool adaptive = false;
  int64_t latency_target_us = 0;
};

struct ResponseCacheConfig {
  bool enabled = false;
  int64_t ttl_s = 3600;     // entries expire after this
  int64_t max_stale_s = 0;  // stale-if-error window after expiry
  // false ("tenant"): each tenant has its own entries, and no request is
  // ever answered from another tenant's; true ("shared"): one set for all.
  bool shared = false;
};

// Triton's ModelQueuePolicy, for one priority level.
struct QueuePolicyConfig {
  int64_t max_queue_size = 0;      // 0: only the model's max_queue_size bounds the level
  int64_t default_timeout_us = 0;  // 0: the server's default timeout
  int64_t max_timeout_us = 0;      // 0: no cap; a request may shorten, never lengthen past it
  bool delay = false;              // timeout_action "delay": run late instead of a 504
};

struct SchedulingConfig {
  int64_t priority_levels = 1;   // 1 is the highest level
  int64_t default_priority = 1;  // default: the lowest level (priority_levels)
  double lower_level_share = 0.1;
  std::vector<QueuePolicyConfig> queue_policy;  // one per level (index level - 1)

  // The level a request runs at: `asked` (0: the default) clamped to the
  // levels, and never above `max_priority` (0 or 1: no cap).
  int Level(int64_t asked, int64_t max_priority) const;
  const QueuePolicyConfig& Policy(int level) const;
};

struct OverloadConfig {
  bool enabled = false;         // the [overload] table's presence enables it
  int64_t target_delay_us = 0;  // standing queueing delay allowed; 0: derived
  int64_t interval_us = 100000;
  int64_t min_limit = 0;  // 0: 2 x instance_count x max(1, max_batch_size)
  int64_t max_limit = 0;  // 0: max_queue_size + min_limit
};

struct ModelConfig {
  std::string name;
  std::string backend;
  int64_t max_batch_size = 0;
  int64_t instance_count = 1;
  int64_t max_queue_size = 1024;  // applies with and without dynamic batching
  // Streams its responses: any number of chunks per request, then an end
  // (Triton's decoupled transaction policy). Needs an asynchronous backend
  // and a client that takes a stream; never cached.
  bool decoupled = false;
  std::vector<TensorConfig> inputs;
  std::vector<TensorConfig> outputs;
  DynamicBatchingConfig dynamic_batching;
  ResponseCacheConfig response_cache;
  SchedulingConfig scheduling;
  OverloadConfig overload;
  std::map<std::string, std::string> parameters;  // backend parameters, as text
  // Lifecycle (docs/design-lifecycle.md): seconds a loaded version stays
  // after its last request (-1: forever, 0: unloads as soon as idle;
  // absent: the server's model_keep_alive_s), and whether it stays loaded
  // whatever the keep-alive and the memory budget say.
  std::optional<int64_t> keep_alive_s;
  bool pin = false;
  // Run in order before a loaded version is marked READY.
  std::vector<WarmupConfig> warmup;
  VersionPolicyConfig version_policy;

  // The full shape a request tensor must match, with -1 for a variable
  // dimension (and for the batch dimension of batching models).
  Shape FullShape(const TensorConfig& t) const;

  // Checks one request input against the declared inputs: a known name, its
  // datatype, its shape against FullShape and its batch size against
  // max_batch_size. *index receives the input's position in `inputs`.
  // Cheap, and needs no tensor data: decoders call it before they allocate.
  Status CheckInput(std::string_view name, DataType dtype, const Shape& shape, size_t* index) const;
};

// Parses and validates `path` for model `name`.
StatusOr<ModelConfig> LoadModelConfig(const std::string& path, const std::string& name);
// The same, from TOML text (for tests); `path` is only used in messages.
StatusOr<ModelConfig> ParseModelConfig(const std::string& toml_text, const std::string& path,
                                       const std::string& name);

}  // namespace inferd
