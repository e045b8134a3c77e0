// Fuzz target: the model config.toml parser.
// Invariants: the parser returns a Status (toml++'s exceptions never
// escape); an accepted config holds what its validation promises; every
// accepted [[warmup]] entry makes inputs the model itself accepts.
#include <cstdint>
#include <set>
#include <string>

#include "fuzz_check.h"
#include "model/model_config.h"
#include "model/warmup.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace inferd;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto config = ParseModelConfig(text, "config.toml", "m");
  if (!config.ok()) {
    FUZZ_CHECK(!config.status().message().empty());
    return 0;
  }
  FUZZ_CHECK(config->max_batch_size >= 0);
  FUZZ_CHECK(config->instance_count >= 1);
  FUZZ_CHECK(!config->inputs.empty() && !config->outputs.empty());
  // Scheduling: levels and policies in range, every level resolvable.
  const SchedulingConfig& s = config->scheduling;
  FUZZ_CHECK(s.priority_levels >= 1 && s.priority_levels <= 16);
  FUZZ_CHECK(s.default_priority >= 1 && s.default_priority <= s.priority_levels);
  FUZZ_CHECK(s.lower_level_share >= 0 && s.lower_level_share <= 0.5);
  FUZZ_CHECK(s.queue_policy.size() == static_cast<size_t>(s.priority_levels));
  for (int64_t asked : {int64_t{0}, int64_t{1}, int64_t{255}}) {
    const int level = s.Level(asked, 3);
    FUZZ_CHECK(level >= 1 && level <= s.priority_levels);
  }
  if (config->dynamic_batching.adaptive)
    FUZZ_CHECK(config->dynamic_batching.latency_target_us >= 1000);
  for (const auto* list : {&config->inputs, &config->outputs}) {
    std::set<std::string> names;
    for (const TensorConfig& t : *list) {
      FUZZ_CHECK(!t.name.empty());
      FUZZ_CHECK(names.insert(t.name).second);
      for (int64_t d : t.dims) FUZZ_CHECK(d == -1 || d > 0);
      // A config's own full shape is accepted by CheckInput (with -1 read
      // as 1 and the batch dimension as 1).
      Shape shape = config->FullShape(t);
      for (int64_t& d : shape) {
        if (d == -1) d = 1;
      }
      size_t index;
      if (list == &config->inputs) {
        FUZZ_CHECK(config->CheckInput(t.name, t.dtype, shape, &index).ok());
        FUZZ_CHECK(config->inputs[index].name == t.name);
      }
    }
  }
  for (size_t e = 0; e < config->warmup.size(); ++e) {
    const WarmupConfig& w = config->warmup[e];
    FUZZ_CHECK(!w.batch_sizes.empty() && w.count >= 1 && w.count <= 100);
    bool small = true, files = false;
    for (const auto& in : w.inputs) files = files || !in.file.empty();
    for (int64_t b : w.batch_sizes) {
      FUZZ_CHECK(b >= 1 && (config->max_batch_size == 0 ? b == 1 : b <= config->max_batch_size));
      for (const TensorConfig& t : config->inputs) {
        Shape item = t.dims;
        for (const auto& in : w.inputs) {
          if (in.name == t.name && !in.dims.empty()) item = in.dims;
        }
        const int64_t n = ElementCount(item);
        FUZZ_CHECK(n >= 0);
        small = small && n * b <= 4096;
      }
      if (!small || files) continue;
      auto inputs = WarmupInputs(*config, w, e, b, "/nonexistent");
      FUZZ_CHECK(inputs.ok());
      FUZZ_CHECK(inputs->size() == config->inputs.size());
      for (const Tensor& t : *inputs) {
        size_t index;
        FUZZ_CHECK(
            config
                ->CheckInput(config->inputs[&t - inputs->data()].name, t.dtype(), t.shape(), &index)
                .ok());
      }
    }
  }
  return 0;
}
