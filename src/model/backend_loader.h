#pragma once
// BackendLoader: finds and loads backend plugins on first use, as Triton
// loads its backends. A backend named N lives in
// <directory>/libinferd_backend_N.so and exports, with C linkage:
//
//   uint32_t inferd_backend_api_version(void);
//       the kBackendApiVersion it was built against; checked first, with
//       plain types only, so a mismatched plugin is refused before any
//       C++ object crosses the boundary;
//   bool inferd_backend_register(inferd::BackendModelFactory* factory);
//       fills in the factory of its models (model/backend.h).
//
// A plugin is built from this tree with the same compiler (the C++ types of
// model/backend.h cross the boundary); kBackendApiVersion changes whenever
// they do. Plugins are never unloaded: instances and tensors they made may
// live until the process ends.
//
// Threading: Get is safe from any thread; concurrent first uses of one
// backend load it once.

#include <map>
#include <string>

#include "common/mutex.h"
#include "common/status.h"
#include "model/backend.h"

namespace inferd {

class BackendLoader {
 public:
  // `directory`: where the plugins are; empty: "backends" beside the
  // running executable (/proc/self/exe).
  explicit BackendLoader(std::string directory);

  // The factory of backend `name`, loading its plugin on first use.
  // NotFound when there is no such plugin; FailedPrecondition when it
  // cannot be loaded or was built against another API version.
  StatusOr<BackendModelFactory> Get(const std::string& name) EXCLUDES(mu_);
  // Names of the plugins loaded so far.
  std::vector<std::string> Loaded() EXCLUDES(mu_);
  const std::string& directory() const { return directory_; }

  // The default plugin directory: "backends" beside the running executable.
  static std::string DefaultDirectory();

 private:
  const std::string directory_;
  Mutex mu_;
  std::map<std::string, StatusOr<BackendModelFactory>> loaded_ GUARDED_BY(mu_);
};

}  // namespace inferd
