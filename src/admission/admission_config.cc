// The [[tenants]] tables of the server config file.

#include <toml++/toml.h>

#include <fstream>
#include <optional>
#include <sstream>

#include "admission/admission.h"

namespace inferd {
namespace {

bool ValidName(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// requests_per_s and burst of `t` into *out; other keys are the caller's.
Status ParseLimit(const toml::table& t, const std::string& where, RateLimitConfig* out) {
  if (const toml::node* r = t.get("requests_per_s")) {
    std::optional<double> v = r->value<double>();  // an integer or a float
    if (!v || !GcraLimiter::ValidRate(*v)) {
      return InvalidArgumentError(where + ".requests_per_s must be a number in [0.001, 1000000]");
    }
    out->requests_per_s = *v;
  }
  if (const toml::node* b = t.get("burst")) {
    std::optional<int64_t> v = b->is_integer() ? b->value<int64_t>() : std::nullopt;
    if (!v || *v < 1 || *v > GcraLimiter::kMaxBurst)
      return InvalidArgumentError(where + ".burst must be an integer in [1, 1000000]");
    if (out->requests_per_s <= 0)
      return InvalidArgumentError(where + ".burst needs requests_per_s");
    out->burst = *v;
  }
  return Status::OK();
}

Status ParseModelLimits(const toml::node& node, const std::string& where,
                        std::vector<TenantConfig::ModelLimit>* out) {
  const toml::array* list = node.as_array();
  if (list == nullptr) return InvalidArgumentError(where + " must be [[tenants.models]] tables");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const toml::table* t = list->get(i)->as_table();
    if (t == nullptr) return InvalidArgumentError(at + " must be a table");
    TenantConfig::ModelLimit m;
    for (const auto& [k, v] : *t) {
      const std::string key(k.str());
      if (key == "name") {
        if (!v.is_string() || v.as_string()->get().empty() || v.as_string()->get().size() > 256)
          return InvalidArgumentError(at + ".name must be a model name");
        m.model = **v.as_string();
      } else if (key != "requests_per_s" && key != "burst") {
        return InvalidArgumentError(at + ": unknown field '" + key +
                                    "' (known: name, requests_per_s, burst)");
      }
    }
    if (m.model.empty()) return InvalidArgumentError(at + " has no name");
    INFERD_RETURN_IF_ERROR(ParseLimit(*t, at, &m.limit));
    if (m.limit.requests_per_s <= 0) return InvalidArgumentError(at + " has no requests_per_s");
    for (const auto& other : *out) {
      if (other.model == m.model)
        return InvalidArgumentError(at + ": model '" + m.model + "' is limited twice");
    }
    out->push_back(std::move(m));
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::vector<TenantConfig>> ParseTenants(std::string_view toml_text,
                                                 const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    return InvalidArgumentError(origin + ": " + std::string(e.description()) + " at line " +
                                std::to_string(e.source().begin.line));
  }
  std::vector<TenantConfig> out;
  const toml::node* node = root.get("tenants");
  if (node == nullptr) return out;
  const toml::array* list = node->as_array();
  if (list == nullptr) return InvalidArgumentError(origin + ": tenants must be [[tenants]] tables");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string where = origin + ": tenants[" + std::to_string(i) + "]";
    const toml::table* t = list->get(i)->as_table();
    if (t == nullptr) return InvalidArgumentError(where + " must be a table");
    TenantConfig tc;
    for (const auto& [k, v] : *t) {
      const std::string key(k.str());
      if (key == "name") {
        if (!v.is_string() || !ValidName(**v.as_string())) {
          return InvalidArgumentError(where + ".name must be 1-64 characters of [a-z0-9_.-]");
        }
        tc.name = **v.as_string();
      } else if (key == "api_key_sha256") {
        const toml::array* keys = v.as_array();
        if (keys == nullptr || keys->empty() || keys->size() > 16) {
          return InvalidArgumentError(where +
                                      ".api_key_sha256 must be a list of 1 to 16 SHA-256 digests");
        }
        for (const toml::node& d : *keys) {
          KeyDigest digest{};
          if (!d.is_string() || !ParseDigestHex(**d.as_string(), &digest)) {
            return InvalidArgumentError(
                where + ".api_key_sha256: each entry must be 64 hex digits (`inferd keygen`)");
          }
          tc.key_digests.push_back(digest);
        }
      } else if (key == "admin") {
        if (!v.is_boolean()) return InvalidArgumentError(where + ".admin must be a boolean");
        tc.admin = **v.as_boolean();
      } else if (key == "models") {
        INFERD_RETURN_IF_ERROR(ParseModelLimits(v, where + ".models", &tc.models));
      } else if (key == "weight") {
        std::optional<int64_t> w = v.value<int64_t>();
        if (!v.is_integer() || *w < 1 || *w > 1000)
          return InvalidArgumentError(where + ".weight must be an integer from 1 to 1000");
        tc.weight = static_cast<uint32_t>(*w);
      } else if (key == "max_priority") {
        std::optional<int64_t> p = v.value<int64_t>();
        if (!v.is_integer() || *p < 0 || *p > 255) {
          return InvalidArgumentError(where +
                                      ".max_priority must be an integer from 0 to 255 (0 or 1: "
                                      "any level)");
        }
        tc.max_priority = static_cast<int>(*p);
      } else if (key != "requests_per_s" && key != "burst") {
        return InvalidArgumentError(where + ": unknown field '" + key +
                                    "' (known: name, api_key_sha256, admin, requests_per_s, "
                                    "burst, weight, max_priority, models)");
      }
    }
    if (tc.name.empty()) return InvalidArgumentError(where + " has no name");
    INFERD_RETURN_IF_ERROR(ParseLimit(*t, where, &tc.limit));
    out.push_back(std::move(tc));
  }
  return out;
}

StatusOr<std::vector<TenantConfig>> LoadTenants(const std::string& config_file) {
  if (config_file.empty()) return std::vector<TenantConfig>{};
  std::ifstream in(config_file);
  if (!in) return InvalidArgumentError("cannot read config file " + config_file);
  std::ostringstream text;
  text << in.rdbuf();
  return ParseTenants(text.str(), "config file " + config_file);
}

}  // namespace inferd
