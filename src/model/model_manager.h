#pragma once
// ModelManager: the models of one repository and their lifecycle. This
// version loads every model and version at Create() (lazy loading, memory
// budgets and reload come later); a model that fails to load stays listed as
// unavailable with its reason, and the others are served.
//
// Threading: all methods are safe from any thread. Versions are handed out
// as shared_ptr, so a version stays alive while a request uses it.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "model/backend.h"
#include "model/backend_loader.h"
#include "model/model_version.h"
#include "model/repository.h"

namespace inferd {

struct ModelState {
  std::string name;
  int64_t version = 0;  // 0 when the model has no loadable version
  bool ready = false;
  Status reason;  // why it is not ready
};

class ModelManager {
 public:
  struct Options {
    std::string repository;  // DIR with <model>/config.toml
    // Backends built in (and test doubles); any other backend a model names
    // is a plugin, loaded from backend_directory when the first model that
    // needs it loads (BackendLoader).
    BackendRegistry backends;
    std::string backend_directory;  // empty: "backends" beside the executable
    Clock* clock = nullptr;         // default: Clock::System()
    // Optional: gives each loaded version its batch observer (metrics).
    std::function<ModelVersion::BatchObserver(const std::string& model, int64_t version)>
        observer_for;
    // Threads of the one executor every model's batches run on; 0: one
    // per core.
    int executor_threads = 0;
  };
  static StatusOr<std::unique_ptr<ModelManager>> Create(Options options);
  ~ModelManager();

  // `version` empty: the highest ready version. NotFound for an unknown model
  // or version; Unavailable (with the reason) for a model that failed to load.
  StatusOr<std::shared_ptr<ModelVersion>> Get(std::string_view name, std::string_view version)
      EXCLUDES(mu_);
  // One row per model version (or per model when no version could be found).
  std::vector<ModelState> List() EXCLUDES(mu_);
  // True once loading finished and until BeginDrain(); a model that failed
  // to load does not make the server unready (it is reported per model).
  bool IsServing() EXCLUDES(mu_);
  // Makes every batcher dispatch without waiting for its queue delay, so a
  // drain is not held up by partly filled batches. Requests still come in.
  void BeginDrain() EXCLUDES(mu_);
  int executor_threads() const { return executor_->threads(); }
  // Backend plugins loaded so far.
  std::vector<std::string> LoadedBackends() { return loader_.Loaded(); }
  // Drains every model's queue and waits for running batches; Get fails
  // afterwards.
  void Shutdown() EXCLUDES(mu_);

 private:
  struct Model {
    RepositoryEntry entry;
    std::map<int64_t, std::shared_ptr<ModelVersion>> loaded;
    std::map<int64_t, Status> failed;
  };
  explicit ModelManager(Options options)
      : options_(std::move(options)), loader_(options_.backend_directory) {}
  // The factory of `backend`: built in, else its plugin's.
  StatusOr<BackendFactory> Factory(const std::string& backend);
  void LoadAll(std::vector<RepositoryEntry> entries) EXCLUDES(mu_);

  const Options options_;
  // Declared before the models: destroyed after every version it serves.
  std::unique_ptr<Executor> executor_;
  BackendLoader loader_;
  Mutex mu_;
  std::map<std::string, Model, std::less<>> models_ GUARDED_BY(mu_);
  bool shut_down_ GUARDED_BY(mu_) = false;
  bool draining_ GUARDED_BY(mu_) = false;
};

}  // namespace inferd
