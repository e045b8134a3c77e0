#pragma once
// Helpers shared by the cache tiers' unit tests.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <type_traits>

#include "cache/cache_entry.h"
#include "cache/mix64.h"
#include "common/status.h"

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

// EXPECT_TRUE(Holds(cache->EraseModel("a"), 6u)): OK and equal to `want`,
// else a failure that shows the status or the value.
template <typename T>
::testing::AssertionResult Holds(const StatusOr<T>& got, const std::type_identity_t<T>& want) {
  if (!got.ok()) return ::testing::AssertionFailure() << got.status().ToString();
  if (!(*got == want)) return ::testing::AssertionFailure() << *got << " != " << want;
  return ::testing::AssertionSuccess();
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
