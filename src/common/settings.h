#pragma once
// Settings: typed key/value configuration assembled from four sources with a
// fixed precedence: command-line flag > INFERD_* environment variable >
// TOML config file > built-in default.
//
// A key such as "cache.memory.max_bytes" is the TOML path in the file
// ([cache.memory] max_bytes = ...), the environment variable
// INFERD_CACHE_MEMORY_MAX_BYTES and the flag --cache-memory-max-bytes.
// Every value is validated against its declared type at Load time, and a
// file key that no spec declares is an error naming the key, so typos do not
// pass silently. Immutable after Load: safe to read from any thread.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace inferd {

struct SettingSpec {
  enum class Type { kString, kInt, kDouble, kBool };
  std::string key;  // dotted path, lower_snake_case segments
  Type type = Type::kString;
  std::string default_value;  // textual default ("" for none)
  std::string help;           // one line for --help and docs/configuration.md
};

class Settings {
 public:
  // `flags` maps keys (not flag spellings) to the raw flag text given on the
  // command line; `env` is the process environment (or a test's map).
  // Top-level tables of the file named in `structured_roots` (e.g.
  // "tenants", an array of tables) are left to their own parsers.
  static StatusOr<Settings> Load(const std::vector<SettingSpec>& specs,
                                 const std::string& config_file,
                                 const std::map<std::string, std::string>& env,
                                 const std::map<std::string, std::string>& flags,
                                 const std::vector<std::string>& structured_roots = {});

  // The current process environment, INFERD_* variables only.
  static std::map<std::string, std::string> ProcessEnv();

  static std::string EnvName(const std::string& key);   // INFERD_HTTP_PORT
  static std::string FlagName(const std::string& key);  // --http-port

  const std::string& GetString(const std::string& key) const;
  int64_t GetInt(const std::string& key) const;
  double GetDouble(const std::string& key) const;
  bool GetBool(const std::string& key) const;
  // "flag", "env", "file" or "default".
  const std::string& Source(const std::string& key) const;

 private:
  struct Value {
    std::string text;
    std::string source;
  };
  std::map<std::string, Value> values_;
};

}  // namespace inferd
