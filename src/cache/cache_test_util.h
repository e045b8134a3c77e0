#pragma once
// Helpers shared by the cache tiers' unit tests.

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "cache/cache_entry.h"
#include "cache/mix64.h"

namespace inferd::cache_test {

inline uint64_t Mix(uint64_t x) { return Mix64(x); }

// A distinct, well-spread key per `i`, with a check that names it.
inline CacheKey Key(uint64_t i, const std::string& model = "m") {
  CacheKey k;
  k.digest = {Mix(i), Mix(i ^ 0xABCDEF)};
  k.check = "request-" + std::to_string(i);
  k.model = model;
  return k;
}

// A fresh directory under the system's temporary directory, removed with
// everything in it when the object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + ".XXXXXX")).string();
    if (mkdtemp(tmpl.data())) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }  // empty if it could not be made

 private:
  std::string path_;
};

}  // namespace inferd::cache_test
