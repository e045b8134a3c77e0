#include "model/model_config.h"

#include "model/model_config_parser.h"

#include <algorithm>

#include <toml++/toml.h>

#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

namespace inferd {
namespace {

// The longest keep_alive_s: far from overflowing a Duration in nanoseconds.
constexpr int64_t kMaxKeepAliveS = 315360000;

std::string NodeText(const toml::node& n) {
  if (n.is_string()) return *n.value<std::string>();
  if (n.is_integer()) return std::to_string(*n.value<int64_t>());
  if (n.is_floating_point()) {
    char buf[64];  // shortest text that reads back as the same double
    auto res = std::to_chars(buf, buf + sizeof(buf), *n.value<double>());
    return std::string(buf, res.ptr);
  }
  if (n.is_boolean()) return *n.value<bool>() ? "true" : "false";
  return "";
}

}  // namespace

Shape ModelConfig::FullShape(const TensorConfig& t) const {
  Shape s;
  if (max_batch_size > 0) s.push_back(-1);
  s.insert(s.end(), t.dims.begin(), t.dims.end());
  return s;
}

Status ModelConfig::CheckInput(std::string_view name, DataType dtype, const Shape& shape,
                               size_t* index) const {
  auto it = std::find_if(inputs.begin(), inputs.end(),
                         [&](const TensorConfig& c) { return c.name == name; });
  if (it == inputs.end()) {
    return InvalidArgumentError("unknown input '" + std::string(name) + "' for model '" +
                                this->name + "'");
  }
  *index = static_cast<size_t>(it - inputs.begin());
  if (dtype != it->dtype) {
    return InvalidArgumentError("input '" + it->name + "' has datatype " +
                                std::string(DataTypeName(dtype)) + ", model expects " +
                                std::string(DataTypeName(it->dtype)));
  }
  Shape want = FullShape(*it);
  bool ok = shape.size() == want.size();
  for (size_t d = 0; ok && d < want.size(); ++d) {
    ok = shape[d] >= 0 && (want[d] == -1 || want[d] == shape[d]);
  }
  if (!ok) {
    return InvalidArgumentError("input '" + it->name + "' has shape " + ShapeToString(shape) +
                                ", model expects " + ShapeToString(want));
  }
  if (max_batch_size > 0 && (shape[0] < 1 || shape[0] > max_batch_size)) {
    return InvalidArgumentError("input '" + it->name + "' has batch size " +
                                std::to_string(shape[0]) + ", model accepts 1 to " +
                                std::to_string(max_batch_size));
  }
  return Status::OK();
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& path, const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(path + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return ParseModelConfig(text.str(), path, name);
}

StatusOr<ModelConfig> ParseModelConfig(const std::string& toml_text, const std::string& path,
                                       const std::string& name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, path);
  } catch (const toml::parse_error& e) {
    return InvalidArgumentError(path + ": " + std::string(e.description()) + " at line " +
                                std::to_string(e.source().begin.line));
  }
  Parser p(path);
  ModelConfig c;
  c.name = name;
  static const std::set<std::string> kKnown = {"backend",        "max_batch_size",
                                               "instance_count", "input",
                                               "output",         "dynamic_batching",
                                               "parameters",     "max_queue_size",
                                               "response_cache", "decoupled",
                                               "scheduling",     "overload",
                                               "keep_alive_s",   "pin",
                                               "warmup",         "version_policy"};
  for (const auto& [k, v] : root) {
    if (!kKnown.count(std::string(k.str()))) return p.Error(std::string(k.str()), "is unknown");
  }
  auto backend = root.get("backend");
  if (!backend || !backend->is_string())
    return p.Error("backend", "must be a string such as \"torchscript\"");
  c.backend = *backend->value<std::string>();
  INFERD_RETURN_IF_ERROR(p.Int(root, "max_batch_size", "max_batch_size", 0, &c.max_batch_size));
  INFERD_RETURN_IF_ERROR(p.Int(root, "instance_count", "instance_count", 1, &c.instance_count));
  if (c.instance_count > 64) return p.Error("instance_count", "must be <= 64");
  INFERD_RETURN_IF_ERROR(p.Int(root, "max_queue_size", "max_queue_size", 1, &c.max_queue_size));
  // Bounds that keep the scheduler's arithmetic (batch views, overload
  // limits) far from overflow.
  constexpr int64_t kMaxCount = int64_t{1} << 24;
  if (c.max_batch_size > kMaxCount) return p.Error("max_batch_size", "must be <= 16777216");
  if (c.max_queue_size > kMaxCount) return p.Error("max_queue_size", "must be <= 16777216");
  if (auto d = root.get("decoupled"); d) {
    if (!d->is_boolean()) return p.Error("decoupled", "must be a boolean");
    c.decoupled = *d->value<bool>();
  }
  if (root.get("keep_alive_s")) {
    int64_t keep_alive = 0;
    INFERD_RETURN_IF_ERROR(p.Int(root, "keep_alive_s", "keep_alive_s", -1, &keep_alive));
    if (keep_alive > kMaxKeepAliveS)
      return p.Error("keep_alive_s", "must be <= 315360000 (10 years)");
    c.keep_alive_s = keep_alive;
  }
  INFERD_RETURN_IF_ERROR(p.Bool(root, "pin", "pin", &c.pin));
  INFERD_RETURN_IF_ERROR(p.Tensors(root, "input", &c.inputs));
  INFERD_RETURN_IF_ERROR(p.Tensors(root, "output", &c.outputs));

  if (const toml::node* db = root.get("dynamic_batching")) {
    const toml::table* t = db->as_table();
    if (!t) return p.Error("dynamic_batching", "must be a table");
    c.dynamic_batching.enabled = true;
    if (auto en = t->get("enable"); en) {
      if (!en->is_boolean()) return p.Error("dynamic_batching.enable", "must be a boolean");
      c.dynamic_batching.enabled = *en->value<bool>();
    }
    if (c.dynamic_batching.enabled && c.max_batch_size == 0) {
      return p.Error("dynamic_batching", "needs max_batch_size > 0");
    }
    INFERD_RETURN_IF_ERROR(p.Int(*t, "max_queue_delay_us", "dynamic_batching.max_queue_delay_us", 0,
                                 &c.dynamic_batching.max_queue_delay_us));
    INFERD_RETURN_IF_ERROR(p.IntList(*t, "preferred_batch_sizes",
                                     "dynamic_batching.preferred_batch_sizes", 1,
                                     &c.dynamic_batching.preferred_batch_sizes));
    for (int64_t s : c.dynamic_batching.preferred_batch_sizes) {
      if (s > c.max_batch_size) {
        return p.Error("dynamic_batching.preferred_batch_sizes",
                       "has " + std::to_string(s) + ", more than max_batch_size " +
                           std::to_string(c.max_batch_size));
      }
    }
    INFERD_RETURN_IF_ERROR(
        p.Int(*t, "max_queue_size", "dynamic_batching.max_queue_size", 1, &c.max_queue_size));
    if (c.max_queue_size > kMaxCount)
      return p.Error("dynamic_batching.max_queue_size", "must be <= 16777216");
    INFERD_RETURN_IF_ERROR(p.KnownKeys(*t, "dynamic_batching.",
                                       {"enable", "max_queue_delay_us", "preferred_batch_sizes",
                                        "max_queue_size", "adaptive", "latency_target_us"}));
    DynamicBatchingConfig& batching = c.dynamic_batching;
    INFERD_RETURN_IF_ERROR(p.Bool(*t, "adaptive", "dynamic_batching.adaptive", &batching.adaptive));
    INFERD_RETURN_IF_ERROR(p.Int(*t, "latency_target_us", "dynamic_batching.latency_target_us", 0,
                                 &batching.latency_target_us));
    if (batching.adaptive &&
        (batching.latency_target_us < 1000 || batching.latency_target_us > 60'000'000)) {
      return p.Error("dynamic_batching.latency_target_us",
                     "must be from 1000 to 60000000 (us) with adaptive = true");
    }
  }
  if (const toml::node* rc = root.get("response_cache")) {
    const toml::table* t = rc->as_table();
    if (!t) return p.Error("response_cache", "must be a table");
    if (auto en = t->get("enable"); en) {
      if (!en->is_boolean()) return p.Error("response_cache.enable", "must be a boolean");
      c.response_cache.enabled = *en->value<bool>();
    } else {
      c.response_cache.enabled = true;  // the table's presence enables it
    }
    INFERD_RETURN_IF_ERROR(p.Int(*t, "ttl_s", "response_cache.ttl_s", 1, &c.response_cache.ttl_s));
    constexpr int64_t kTenYears = 10LL * 365 * 24 * 3600;
    if (c.response_cache.ttl_s > kTenYears)
      return p.Error("response_cache.ttl_s", "must be <= 10 years");
    INFERD_RETURN_IF_ERROR(
        p.Int(*t, "max_stale_s", "response_cache.max_stale_s", 0, &c.response_cache.max_stale_s));
    if (c.response_cache.max_stale_s > kTenYears) {
      return p.Error("response_cache.max_stale_s", "must be <= 10 years");
    }
    if (auto scope = t->get("scope"); scope) {
      const std::string* v = scope->is_string() ? &**scope->as_string() : nullptr;
      if (v == nullptr || (*v != "tenant" && *v != "shared"))
        return p.Error("response_cache.scope", "must be \"tenant\" or \"shared\"");
      c.response_cache.shared = *v == "shared";
    }
    for (const auto& [k, v] : *t) {
      std::string ks(k.str());
      if (ks != "enable" && ks != "ttl_s" && ks != "max_stale_s" && ks != "scope") {
        return p.Error("response_cache." + ks, "is unknown");
      }
    }
  }
  INFERD_RETURN_IF_ERROR(ParseScheduling(p, root, &c));
  INFERD_RETURN_IF_ERROR(ParseWarmup(p, root, &c));
  INFERD_RETURN_IF_ERROR(ParseVersionPolicy(p, root, &c));
  if (c.decoupled && c.response_cache.enabled) {
    return p.Error("response_cache", "cannot be enabled for a decoupled (streaming) model");
  }
  if (const toml::node* params = root.get("parameters")) {
    const toml::table* t = params->as_table();
    if (!t) return p.Error("parameters", "must be a table");
    for (const auto& [k, v] : *t) {
      std::string text = NodeText(v);
      if (text.empty() && !v.is_string()) {
        return p.Error("parameters." + std::string(k.str()), "must be a string, number or boolean");
      }
      c.parameters[std::string(k.str())] = text;
    }
  }
  return c;
}

}  // namespace inferd
