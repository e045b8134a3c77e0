// [scheduling] and [overload] of a model's config.toml.

#include <algorithm>

#include "model/model_config.h"
#include "model/model_config_parser.h"

namespace inferd {
namespace {

constexpr int64_t kMaxLevels = 16;
constexpr int64_t kMaxTimeoutUs = int64_t{1} << 40;  // as parameters.timeout

Status ParsePolicy(const Parser& p, const toml::node& node, const std::string& field,
                   QueuePolicyConfig* out) {
  const toml::table* t = node.as_table();
  if (!t) return p.Error(field, "must be a table");
  INFERD_RETURN_IF_ERROR(
      p.KnownKeys(*t, field + ".",
                  {"max_queue_size", "default_timeout_us", "max_timeout_us", "timeout_action"}));
  INFERD_RETURN_IF_ERROR(
      p.Int(*t, "max_queue_size", field + ".max_queue_size", 0, &out->max_queue_size));
  INFERD_RETURN_IF_ERROR(
      p.Int(*t, "default_timeout_us", field + ".default_timeout_us", 0, &out->default_timeout_us));
  INFERD_RETURN_IF_ERROR(
      p.Int(*t, "max_timeout_us", field + ".max_timeout_us", 0, &out->max_timeout_us));
  if (out->default_timeout_us > kMaxTimeoutUs || out->max_timeout_us > kMaxTimeoutUs)
    return p.Error(field, "timeouts must be <= 2^40 us");
  if (out->default_timeout_us > 0 && out->max_timeout_us > 0 &&
      out->default_timeout_us > out->max_timeout_us) {
    return p.Error(field + ".default_timeout_us", "must be <= max_timeout_us");
  }
  if (const toml::node* a = t->get("timeout_action")) {
    const std::string* v = a->is_string() ? &**a->as_string() : nullptr;
    if (v == nullptr || (*v != "reject" && *v != "delay"))
      return p.Error(field + ".timeout_action", "must be \"reject\" or \"delay\"");
    out->delay = *v == "delay";
  }
  return Status::OK();
}

Status ParseSchedulingTable(const Parser& p, const toml::table& t, ModelConfig* c) {
  SchedulingConfig& s = c->scheduling;
  INFERD_RETURN_IF_ERROR(p.KnownKeys(t, "scheduling.",
                                     {"priority_levels", "default_priority", "lower_level_share",
                                      "default_queue_policy", "priority_queue_policy"}));
  INFERD_RETURN_IF_ERROR(
      p.Int(t, "priority_levels", "scheduling.priority_levels", 1, &s.priority_levels));
  if (s.priority_levels > kMaxLevels) return p.Error("scheduling.priority_levels", "must be <= 16");
  s.default_priority = s.priority_levels;
  INFERD_RETURN_IF_ERROR(
      p.Int(t, "default_priority", "scheduling.default_priority", 1, &s.default_priority));
  if (s.default_priority > s.priority_levels)
    return p.Error("scheduling.default_priority", "must be <= priority_levels");
  if (const toml::node* share = t.get("lower_level_share")) {
    std::optional<double> v = share->value<double>();  // integers convert too
    if (!v || !(*v == 0 || (*v >= 0.001 && *v <= 0.5)))
      return p.Error("scheduling.lower_level_share", "must be 0 or a number in [0.001, 0.5]");
    s.lower_level_share = *v;
  }
  QueuePolicyConfig fallback;
  if (const toml::node* d = t.get("default_queue_policy"))
    INFERD_RETURN_IF_ERROR(ParsePolicy(p, *d, "scheduling.default_queue_policy", &fallback));
  s.queue_policy.assign(static_cast<size_t>(s.priority_levels), fallback);
  if (const toml::node* per = t.get("priority_queue_policy")) {
    const toml::table* levels = per->as_table();
    if (!levels) return p.Error("scheduling.priority_queue_policy", "must be a table of levels");
    for (const auto& [k, v] : *levels) {
      const std::string field = "scheduling.priority_queue_policy." + std::string(k.str());
      int64_t level = 0;
      const std::string ks(k.str());
      if (ks.empty() || ks.size() > 2 || !std::all_of(ks.begin(), ks.end(), ::isdigit) ||
          (level = std::stoll(ks)) < 1 || level > s.priority_levels) {
        return p.Error(field, "must name a level from 1 to priority_levels");
      }
      QueuePolicyConfig policy = fallback;
      INFERD_RETURN_IF_ERROR(ParsePolicy(p, v, field, &policy));
      s.queue_policy[static_cast<size_t>(level - 1)] = policy;
    }
  }
  return Status::OK();
}

}  // namespace

int SchedulingConfig::Level(int64_t asked, int64_t max_priority) const {
  int64_t level = asked <= 0 ? default_priority : std::min(asked, priority_levels);
  if (max_priority > 1) level = std::max(level, std::min(max_priority, priority_levels));
  return static_cast<int>(level);
}

const QueuePolicyConfig& SchedulingConfig::Policy(int level) const {
  static const QueuePolicyConfig kNone;
  if (level < 1 || static_cast<size_t>(level) > queue_policy.size()) return kNone;
  return queue_policy[static_cast<size_t>(level - 1)];
}

Status ParseScheduling(const Parser& p, const toml::table& root, ModelConfig* c) {
  if (const toml::node* n = root.get("scheduling")) {
    const toml::table* t = n->as_table();
    if (!t) return p.Error("scheduling", "must be a table");
    INFERD_RETURN_IF_ERROR(ParseSchedulingTable(p, *t, c));
  } else {
    c->scheduling.queue_policy.assign(1, QueuePolicyConfig{});
  }
  if (const toml::node* n = root.get("overload")) {
    const toml::table* t = n->as_table();
    if (!t) return p.Error("overload", "must be a table");
    OverloadConfig& o = c->overload;
    o.enabled = true;
    INFERD_RETURN_IF_ERROR(p.KnownKeys(
        *t, "overload.", {"enable", "target_delay_us", "interval_us", "min_limit", "max_limit"}));
    INFERD_RETURN_IF_ERROR(p.Bool(*t, "enable", "overload.enable", &o.enabled));
    INFERD_RETURN_IF_ERROR(
        p.Int(*t, "target_delay_us", "overload.target_delay_us", 0, &o.target_delay_us));
    INFERD_RETURN_IF_ERROR(p.Int(*t, "interval_us", "overload.interval_us", 10000, &o.interval_us));
    INFERD_RETURN_IF_ERROR(p.Int(*t, "min_limit", "overload.min_limit", 0, &o.min_limit));
    INFERD_RETURN_IF_ERROR(p.Int(*t, "max_limit", "overload.max_limit", 0, &o.max_limit));
    if (o.min_limit > (int64_t{1} << 40) || o.max_limit > (int64_t{1} << 40))
      return p.Error("overload", "min_limit and max_limit must be <= 2^40");
    if (o.min_limit > 0 && o.max_limit > 0 && o.min_limit > o.max_limit)
      return p.Error("overload.min_limit", "must be <= max_limit");
    if (o.target_delay_us > kMaxTimeoutUs || o.interval_us > 60'000'000)
      return p.Error("overload", "target_delay_us must be <= 2^40 and interval_us <= 60 s");
  }
  return Status::OK();
}

}  // namespace inferd
