#include "common/settings.h"

#include <toml++/toml.h>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <stdexcept>

extern char** environ;

namespace inferd {
namespace {

using Type = SettingSpec::Type;

bool ParseBool(const std::string& s, bool* out) {
  if (s == "true" || s == "1" || s == "yes" || s == "on") return *out = true, true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return *out = false, true;
  return false;
}

bool ParseInt(const std::string& s, int64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

bool ParseDouble(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

const char* TypeName(Type t) {
  switch (t) {
    case Type::kString:
      return "a string";
    case Type::kInt:
      return "an integer";
    case Type::kDouble:
      return "a number";
    case Type::kBool:
      return "a boolean";
  }
  return "?";
}

Status Check(const SettingSpec& spec, const std::string& text, const std::string& where) {
  bool ok = true;
  int64_t i;
  double d;
  bool b;
  switch (spec.type) {
    case Type::kString:
      break;
    case Type::kInt:
      ok = ParseInt(text, &i);
      break;
    case Type::kDouble:
      ok = ParseDouble(text, &d);
      break;
    case Type::kBool:
      ok = ParseBool(text, &b);
      break;
  }
  if (ok) return Status::OK();
  return InvalidArgumentError(where + ": '" + spec.key + "' must be " + TypeName(spec.type) +
                              ", got '" + text + "'");
}

// Converts a TOML node to the textual form of `spec`'s type.
StatusOr<std::string> NodeText(const SettingSpec& spec, const toml::node& node,
                               const std::string& file) {
  std::string where = "config file " + file;
  if (auto v = node.value<std::string>(); v && node.is_string()) return *v;
  if (node.is_integer()) return std::to_string(*node.value<int64_t>());
  if (node.is_floating_point()) {
    char buf[64];  // shortest text that reads back as the same double
    auto res = std::to_chars(buf, buf + sizeof(buf), *node.value<double>());
    return std::string(buf, res.ptr);
  }
  if (node.is_boolean()) return std::string(*node.value<bool>() ? "true" : "false");
  return InvalidArgumentError(where + ": '" + spec.key + "' must be " + TypeName(spec.type));
}

void Flatten(const toml::table& table, const std::string& prefix,
             std::map<std::string, const toml::node*>* out) {
  for (const auto& [k, v] : table) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* t = v.as_table()) {
      Flatten(*t, key, out);
    } else {
      (*out)[key] = &v;
    }
  }
}

}  // namespace

std::string Settings::EnvName(const std::string& key) {
  std::string s = "INFERD_";
  for (char c : key) s += (c == '.' || c == '-') ? '_' : static_cast<char>(std::toupper(c));
  return s;
}

std::string Settings::FlagName(const std::string& key) {
  std::string s = "--";
  for (char c : key) s += (c == '.' || c == '_') ? '-' : c;
  return s;
}

std::map<std::string, std::string> Settings::ProcessEnv() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    if (kv.rfind("INFERD_", 0) != 0) continue;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

StatusOr<Settings> Settings::Load(const std::vector<SettingSpec>& specs,
                                  const std::string& config_file,
                                  const std::map<std::string, std::string>& env,
                                  const std::map<std::string, std::string>& flags,
                                  const std::vector<std::string>& structured_roots) {
  Settings s;
  std::map<std::string, const SettingSpec*> by_key;
  for (const auto& spec : specs) {
    by_key[spec.key] = &spec;
    s.values_[spec.key] = Value{spec.default_value, "default"};
  }

  toml::table table;
  if (!config_file.empty()) {
    try {
      table = toml::parse_file(config_file);
    } catch (const toml::parse_error& e) {
      return InvalidArgumentError("config file " + config_file + ": " +
                                  std::string(e.description()) + " at line " +
                                  std::to_string(e.source().begin.line));
    }
    for (const std::string& root : structured_roots) table.erase(root);
    std::map<std::string, const toml::node*> flat;
    Flatten(table, "", &flat);
    for (const auto& [key, node] : flat) {
      auto it = by_key.find(key);
      if (it == by_key.end()) {
        return InvalidArgumentError("config file " + config_file + ": unknown setting '" + key +
                                    "'");
      }
      INFERD_ASSIGN_OR_RETURN(std::string text, NodeText(*it->second, *node, config_file));
      INFERD_RETURN_IF_ERROR(Check(*it->second, text, "config file " + config_file));
      s.values_[key] = Value{text, "file"};
    }
  }
  for (const auto& spec : specs) {
    auto e = env.find(EnvName(spec.key));
    if (e != env.end()) {
      INFERD_RETURN_IF_ERROR(Check(spec, e->second, "environment variable " + e->first));
      s.values_[spec.key] = Value{e->second, "env"};
    }
  }
  for (const auto& [key, text] : flags) {
    auto it = by_key.find(key);
    if (it == by_key.end()) return InvalidArgumentError("unknown flag " + FlagName(key));
    INFERD_RETURN_IF_ERROR(Check(*it->second, text, "flag " + FlagName(key)));
    s.values_[key] = Value{text, "flag"};
  }
  return s;
}

const std::string& Settings::GetString(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw std::logic_error("undeclared setting " + key);
  return it->second.text;
}

int64_t Settings::GetInt(const std::string& key) const {
  int64_t v = 0;
  ParseInt(GetString(key), &v);
  return v;
}

double Settings::GetDouble(const std::string& key) const {
  double v = 0;
  ParseDouble(GetString(key), &v);
  return v;
}

bool Settings::GetBool(const std::string& key) const {
  bool v = false;
  ParseBool(GetString(key), &v);
  return v;
}

const std::string& Settings::Source(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw std::logic_error("undeclared setting " + key);
  return it->second.source;
}

}  // namespace inferd
