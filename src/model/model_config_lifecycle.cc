// [[warmup]] entries and [version_policy] of a model's config.toml.

#include <algorithm>
#include <set>

#include "model/model_config_parser.h"

namespace inferd {
namespace {

constexpr int64_t kMaxWarmupValues = 1 << 20;

Status ParseFill(const Parser& p, const toml::table& t, const std::string& field,
                 std::optional<WarmupFill>* out) {
  const toml::node* n = t.get("fill");
  if (!n) return Status::OK();
  const std::string* v = n->is_string() ? &**n->as_string() : nullptr;
  if (v == nullptr) return p.Error(field, "must be \"zero\", \"random\", \"values\" or \"file\"");
  if (*v == "zero") {
    *out = WarmupFill::kZero;
  } else if (*v == "random") {
    *out = WarmupFill::kRandom;
  } else if (*v == "values") {
    *out = WarmupFill::kValues;
  } else if (*v == "file") {
    *out = WarmupFill::kFile;
  } else {
    return p.Error(field,
                   "must be \"zero\", \"random\", \"values\" or \"file\", got \"" + *v + "\"");
  }
  return Status::OK();
}

bool Numeric(DataType t) { return t != DataType::kBytes && t != DataType::kFp16; }

Status ParseInput(const Parser& p, const ModelConfig& c, const std::string& prefix,
                  const std::string& name, const toml::node& node, WarmupFill entry_fill,
                  WarmupInputConfig* in) {
  const toml::table* t = node.as_table();
  if (!t) return p.Error(prefix, "must be a table");
  const TensorConfig* tc = nullptr;
  for (const auto& i : c.inputs) {
    if (i.name == name) tc = &i;
  }
  if (tc == nullptr) return p.Error(prefix, "names no input of the model");
  INFERD_RETURN_IF_ERROR(p.KnownKeys(*t, prefix + ".", {"dims", "fill", "values", "file"}));
  in->name = name;
  INFERD_RETURN_IF_ERROR(p.IntList(*t, "dims", prefix + ".dims", 1, &in->dims));
  if (t->get("dims")) {
    if (in->dims.size() != tc->dims.size())
      return p.Error(prefix + ".dims", "must have as many dims as the input's dims");
    for (size_t i = 0; i < in->dims.size(); ++i) {
      if (tc->dims[i] != -1 && tc->dims[i] != in->dims[i])
        return p.Error(prefix + ".dims", "must equal the input's fixed dims");
    }
    if (ElementCount(in->dims) < 0 || ElementCount(in->dims) > kMaxWarmupValues * 64)
      return p.Error(prefix + ".dims", "is too large");
  } else {
    for (int64_t d : tc->dims) {
      if (d == -1) return p.Error(prefix + ".dims", "is required: the input has variable dims");
    }
  }
  INFERD_RETURN_IF_ERROR(ParseFill(p, *t, prefix + ".fill", &in->fill));
  const WarmupFill fill = in->fill.value_or(entry_fill);
  if (const toml::node* v = t->get("values")) {
    const toml::array* a = v->as_array();
    if (!a || a->empty() || static_cast<int64_t>(a->size()) > kMaxWarmupValues)
      return p.Error(prefix + ".values", "must be a non-empty array of numbers");
    for (const auto& e : *a) {
      if (e.is_integer()) {
        in->values.push_back(static_cast<double>(*e.value<int64_t>()));
      } else if (e.is_floating_point()) {
        in->values.push_back(*e.value<double>());
      } else {
        return p.Error(prefix + ".values", "must be a non-empty array of numbers");
      }
    }
  }
  if (const toml::node* f = t->get("file")) {
    if (!f->is_string()) return p.Error(prefix + ".file", "must be a string");
    in->file = *f->value<std::string>();
    if (in->file.empty() || in->file[0] == '/' || in->file.find("..") != std::string::npos)
      return p.Error(prefix + ".file", "must be a path inside the model directory");
  }
  if (fill == WarmupFill::kValues && in->values.empty())
    return p.Error(prefix + ".values", "is required with fill = \"values\"");
  if (fill == WarmupFill::kFile && in->file.empty())
    return p.Error(prefix + ".file", "is required with fill = \"file\"");
  if ((fill == WarmupFill::kValues || fill == WarmupFill::kRandom) && !Numeric(tc->dtype)) {
    return p.Error(prefix + ".fill", std::string("must be \"zero\" or \"file\" for a ") +
                                         std::string(DataTypeName(tc->dtype)) + " input");
  }
  return Status::OK();
}

}  // namespace

std::vector<int64_t> VersionPolicyConfig::Select(const std::vector<int64_t>& available) const {
  std::vector<int64_t> sorted = available;
  std::sort(sorted.begin(), sorted.end());
  switch (kind) {
    case Kind::kAll:
      return sorted;
    case Kind::kLatest: {
      const size_t n = static_cast<size_t>(std::min<int64_t>(num_versions, sorted.size()));
      return std::vector<int64_t>(sorted.end() - static_cast<long>(n), sorted.end());
    }
    case Kind::kSpecific: {
      std::vector<int64_t> out;
      for (int64_t v : sorted) {
        if (std::find(versions.begin(), versions.end(), v) != versions.end()) out.push_back(v);
      }
      return out;
    }
  }
  return sorted;
}

std::string VersionPolicyConfig::Describe() const {
  switch (kind) {
    case Kind::kAll:
      return "all";
    case Kind::kLatest:
      return "latest(" + std::to_string(num_versions) + ")";
    case Kind::kSpecific: {
      std::string out = "specific(";
      for (size_t i = 0; i < versions.size(); ++i)
        out += (i ? ", " : "") + std::to_string(versions[i]);
      return out + ")";
    }
  }
  return "all";
}

Status ParseVersionPolicy(const Parser& p, const toml::table& root, ModelConfig* c) {
  const toml::node* node = root.get("version_policy");
  if (!node) return Status::OK();
  const toml::table* t = node->as_table();
  if (!t) return p.Error("version_policy", "must be a table");
  INFERD_RETURN_IF_ERROR(
      p.KnownKeys(*t, "version_policy.", {"policy", "num_versions", "versions"}));
  VersionPolicyConfig& vp = c->version_policy;
  if (const toml::node* k = t->get("policy")) {
    const std::string* v = k->is_string() ? &**k->as_string() : nullptr;
    if (v != nullptr && *v == "latest") {
      vp.kind = VersionPolicyConfig::Kind::kLatest;
    } else if (v != nullptr && *v == "all") {
      vp.kind = VersionPolicyConfig::Kind::kAll;
    } else if (v != nullptr && *v == "specific") {
      vp.kind = VersionPolicyConfig::Kind::kSpecific;
    } else {
      return p.Error("version_policy.policy", "must be \"latest\", \"all\" or \"specific\"");
    }
  }
  INFERD_RETURN_IF_ERROR(
      p.Int(*t, "num_versions", "version_policy.num_versions", 1, &vp.num_versions));
  if (vp.num_versions > 1000) return p.Error("version_policy.num_versions", "must be <= 1000");
  INFERD_RETURN_IF_ERROR(p.IntList(*t, "versions", "version_policy.versions", 1, &vp.versions));
  if (t->get("num_versions") && vp.kind != VersionPolicyConfig::Kind::kLatest)
    return p.Error("version_policy.num_versions", "applies to policy \"latest\" only");
  if (vp.kind == VersionPolicyConfig::Kind::kSpecific) {
    if (vp.versions.empty() || vp.versions.size() > 1000)
      return p.Error("version_policy.versions", "must list 1 to 1000 versions");
  } else if (t->get("versions")) {
    return p.Error("version_policy.versions", "applies to policy \"specific\" only");
  }
  return Status::OK();
}

Status ParseWarmup(const Parser& p, const toml::table& root, ModelConfig* c) {
  const toml::node* node = root.get("warmup");
  if (!node) return Status::OK();
  const toml::array* entries = node->as_array();
  if (!entries || !entries->is_array_of_tables())
    return p.Error("warmup", "must be an array of tables ([[warmup]])");
  if (entries->size() > 64) return p.Error("warmup", "must have at most 64 entries");
  size_t index = 0;
  for (const auto& e : *entries) {
    const toml::table& t = *e.as_table();
    const std::string prefix = "warmup[" + std::to_string(index) + "]";
    INFERD_RETURN_IF_ERROR(
        p.KnownKeys(t, prefix + ".", {"name", "batch_sizes", "count", "fill", "input"}));
    WarmupConfig w;
    w.name = "warmup" + std::to_string(index);
    if (const toml::node* n = t.get("name")) {
      if (!n->is_string() || n->value<std::string>()->empty())
        return p.Error(prefix + ".name", "must be a non-empty string");
      w.name = *n->value<std::string>();
    }
    INFERD_RETURN_IF_ERROR(p.IntList(t, "batch_sizes", prefix + ".batch_sizes", 1, &w.batch_sizes));
    if (t.get("batch_sizes")) {
      if (c->max_batch_size == 0)
        return p.Error(prefix + ".batch_sizes", "must be absent: the model does not batch");
      if (w.batch_sizes.empty() || w.batch_sizes.size() > 32)
        return p.Error(prefix + ".batch_sizes", "must list 1 to 32 sizes");
      for (int64_t b : w.batch_sizes) {
        if (b > c->max_batch_size)
          return p.Error(prefix + ".batch_sizes",
                         "must be <= max_batch_size (" + std::to_string(c->max_batch_size) + ")");
      }
    } else {
      w.batch_sizes = {1};
    }
    INFERD_RETURN_IF_ERROR(p.Int(t, "count", prefix + ".count", 1, &w.count));
    if (w.count > 100) return p.Error(prefix + ".count", "must be <= 100");
    std::optional<WarmupFill> fill;
    INFERD_RETURN_IF_ERROR(ParseFill(p, t, prefix + ".fill", &fill));
    w.fill = fill.value_or(WarmupFill::kRandom);
    if (w.fill == WarmupFill::kValues || w.fill == WarmupFill::kFile)
      return p.Error(prefix + ".fill",
                     "must be \"zero\" or \"random\" (values and files are per input)");
    std::set<std::string> named;
    if (const toml::node* in = t.get("input")) {
      const toml::table* it = in->as_table();
      if (!it) return p.Error(prefix + ".input", "must be a table of inputs");
      for (const auto& [k, v] : *it) {
        const std::string name(k.str());
        WarmupInputConfig ic;
        INFERD_RETURN_IF_ERROR(ParseInput(p, *c, prefix + ".input." + name, name, v, w.fill, &ic));
        named.insert(name);
        w.inputs.push_back(std::move(ic));
      }
    }
    // Every input without an override needs fixed dims and a fill that
    // suits its type.
    for (const auto& tc : c->inputs) {
      if (named.count(tc.name)) continue;
      for (int64_t d : tc.dims) {
        if (d == -1)
          return p.Error(prefix + ".input." + tc.name + ".dims",
                         "is required: the input has variable dims");
      }
      if (w.fill == WarmupFill::kRandom && !Numeric(tc.dtype))
        return p.Error(prefix + ".fill", "must be \"zero\" for " +
                                             std::string(DataTypeName(tc.dtype)) + " input '" +
                                             tc.name + "'");
    }
    c->warmup.push_back(std::move(w));
    ++index;
  }
  return Status::OK();
}

}  // namespace inferd
