#pragma once
// The model config parser's helpers, shared by model_config.cc and
// model_config_scheduling.cc (internal to src/model/). Errors name the
// file and the field.

#include <toml++/toml.h>

#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/model_config.h"

namespace inferd {

class Parser {
 public:
  explicit Parser(const std::string& path) : path_(path) {}

  Status Error(const std::string& field, const std::string& what) const {
    return InvalidArgumentError(path_ + ": field '" + field + "' " + what);
  }

  Status Int(const toml::table& t, const std::string& key, const std::string& field, int64_t min,
             int64_t* out) const {
    const toml::node* n = t.get(key);
    if (!n) return Status::OK();
    if (!n->is_integer()) return Error(field, "must be an integer");
    int64_t v = *n->value<int64_t>();
    if (v < min)
      return Error(field, "must be >= " + std::to_string(min) + ", got " + std::to_string(v));
    *out = v;
    return Status::OK();
  }

  Status IntList(const toml::table& t, const std::string& key, const std::string& field,
                 int64_t min, std::vector<int64_t>* out) const {
    const toml::node* n = t.get(key);
    if (!n) return Status::OK();
    const toml::array* a = n->as_array();
    if (!a) return Error(field, "must be an array of integers");
    out->clear();
    for (const auto& e : *a) {
      if (!e.is_integer()) return Error(field, "must be an array of integers");
      int64_t v = *e.value<int64_t>();
      if (v < min)
        return Error(field, "has " + std::to_string(v) + ", must be >= " + std::to_string(min));
      out->push_back(v);
    }
    return Status::OK();
  }

  Status Tensors(const toml::table& root, const std::string& key,
                 std::vector<TensorConfig>* out) const {
    const toml::node* n = root.get(key);
    if (!n) return Error(key, "is missing: declare at least one [[" + key + "]]");
    const toml::array* arr = n->as_array();
    if (!arr || arr->empty()) return Error(key, "must be an array of tables ([[" + key + "]])");
    std::set<std::string> names;
    for (size_t i = 0; i < arr->size(); ++i) {
      std::string field = key + "[" + std::to_string(i) + "]";
      const toml::table* t = (*arr)[i].as_table();
      if (!t) return Error(field, "must be a table");
      TensorConfig tc;
      auto name = t->get("name");
      if (!name || !name->is_string() || name->value<std::string>()->empty()) {
        return Error(field + ".name", "must be a non-empty string");
      }
      tc.name = *name->value<std::string>();
      if (!names.insert(tc.name).second)
        return Error(field + ".name", "duplicates '" + tc.name + "'");
      auto dt = t->get("datatype");
      if (!dt || !dt->is_string())
        return Error(field + ".datatype", "must be a string such as \"FP32\"");
      auto parsed = DataTypeFromName(*dt->value<std::string>());
      if (!parsed)
        return Error(field + ".datatype",
                     "has unknown datatype '" + *dt->value<std::string>() + "'");
      tc.dtype = *parsed;
      INFERD_RETURN_IF_ERROR(IntList(*t, "dims", field + ".dims", -1, &tc.dims));
      if (!t->get("dims")) return Error(field + ".dims", "is missing");
      for (int64_t d : tc.dims) {
        if (d == 0) return Error(field + ".dims", "must not contain 0");
      }
      for (const auto& [k, v] : *t) {
        std::string ks(k.str());
        if (ks != "name" && ks != "datatype" && ks != "dims")
          return Error(field + "." + ks, "is unknown");
      }
      out->push_back(std::move(tc));
    }
    return Status::OK();
  }

  Status Bool(const toml::table& t, const std::string& key, const std::string& field,
              bool* out) const {
    const toml::node* n = t.get(key);
    if (!n) return Status::OK();
    if (!n->is_boolean()) return Error(field, "must be a boolean");
    *out = *n->value<bool>();
    return Status::OK();
  }

  // Fails on a key of `t` not in `known`, naming it under `prefix`.
  Status KnownKeys(const toml::table& t, const std::string& prefix,
                   const std::set<std::string>& known) const {
    for (const auto& [k, v] : t) {
      std::string ks(k.str());
      if (!known.count(ks)) return Error(prefix + ks, "is unknown");
    }
    return Status::OK();
  }

 private:
  std::string path_;
};

// [scheduling] and [overload] (model_config_scheduling.cc).
Status ParseScheduling(const Parser& p, const toml::table& root, ModelConfig* c);
// [[warmup]] (model_config_lifecycle.cc); after the inputs.
Status ParseWarmup(const Parser& p, const toml::table& root, ModelConfig* c);
// [version_policy] (model_config_lifecycle.cc).
Status ParseVersionPolicy(const Parser& p, const toml::table& root, ModelConfig* c);

}  // namespace inferd
