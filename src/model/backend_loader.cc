#include "model/backend_loader.h"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>

#include "common/logging.h"

namespace inferd {
namespace {

using ApiVersionFn = uint32_t (*)();
using RegisterFn = bool (*)(BackendModelFactory*);

StatusOr<BackendModelFactory> LoadPlugin(const std::string& directory, const std::string& name) {
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return InvalidArgumentError("backend name '" + name + "' is not [A-Za-z0-9_]+");
    }
  }
  const std::string path = directory + "/libinferd_backend_" + name + ".so";
  if (!std::filesystem::exists(path)) {
    return NotFoundError("unknown backend '" + name + "' (no plugin " + path + ")");
  }
  // RTLD_LOCAL: the plugin's symbols (and its runtime's) stay its own.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = dlerror();
    return FailedPreconditionError("cannot load backend plugin " + path + ": " +
                                   (err ? err : "unknown error"));
  }
  auto version = reinterpret_cast<ApiVersionFn>(dlsym(handle, "inferd_backend_api_version"));
  auto reg = reinterpret_cast<RegisterFn>(dlsym(handle, "inferd_backend_register"));
  if (!version || !reg) {
    dlclose(handle);
    return FailedPreconditionError("backend plugin " + path +
                                   " does not export inferd_backend_api_version and "
                                   "inferd_backend_register");
  }
  if (uint32_t v = version(); v != kBackendApiVersion) {
    dlclose(handle);
    return FailedPreconditionError("backend plugin " + path + " was built for backend API " +
                                   std::to_string(v) + ", this server has " +
                                   std::to_string(kBackendApiVersion));
  }
  BackendModelFactory factory;
  if (!reg(&factory) || !factory) {
    return FailedPreconditionError("backend plugin " + path + " failed to register");
  }
  INFERD_LOG_INFO("loaded backend '{}' from {}", name, path);
  return factory;
}

}  // namespace

BackendLoader::BackendLoader(std::string directory)
    : directory_(directory.empty() ? DefaultDirectory() : std::move(directory)) {}

std::string BackendLoader::DefaultDirectory() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "backends";
  std::filesystem::path exe(std::string(buf, static_cast<size_t>(n)));
  return (exe.parent_path() / "backends").string();
}

StatusOr<BackendModelFactory> BackendLoader::Get(const std::string& name) {
  // Loading holds the lock: a plugin loads once, and loads are rare.
  MutexLock l(&mu_);
  auto it = loaded_.find(name);
  if (it == loaded_.end()) it = loaded_.emplace(name, LoadPlugin(directory_, name)).first;
  return it->second;
}

std::vector<std::string> BackendLoader::Loaded() {
  MutexLock l(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, f] : loaded_) {
    if (f.ok()) names.push_back(name);
  }
  return names;
}

}  // namespace inferd
