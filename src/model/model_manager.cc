#include "model/model_manager.h"

#include <charconv>

#include "common/logging.h"

namespace inferd {

StatusOr<std::unique_ptr<ModelManager>> ModelManager::Create(Options options) {
  INFERD_ASSIGN_OR_RETURN(auto entries, ScanRepository(options.repository));
  Executor::Options eo;
  eo.threads = options.executor_threads;
  eo.clock = options.clock;
  INFERD_ASSIGN_OR_RETURN(auto executor, Executor::Create(eo));
  std::unique_ptr<ModelManager> m(new ModelManager(std::move(options)));
  m->executor_ = std::move(executor);
  m->LoadAll(std::move(entries));
  return m;
}

ModelManager::~ModelManager() { Shutdown(); }

StatusOr<BackendFactory> ModelManager::Factory(const std::string& backend) {
  auto it = options_.backends.find(backend);
  if (it != options_.backends.end()) return it->second;
  return loader_.Get(backend);
}

void ModelManager::LoadAll(std::vector<RepositoryEntry> entries) {
  for (auto& entry : entries) {
    Model model;
    if (!entry.status.ok()) {
      INFERD_LOG_ERROR("model '{}' is unavailable: {}", entry.name, entry.status.message());
    } else {
      auto factory = Factory(entry.config.backend);
      for (const auto& [version, dir] : entry.versions) {
        if (!factory.ok()) {
          INFERD_LOG_ERROR("model '{}' version {} is unavailable: {}", entry.name, version,
                           factory.status().message());
          model.failed[version] = factory.status();
          continue;
        }
        ModelVersion::Options vo;
        vo.factory = &*factory;
        vo.config = &entry.config;
        vo.version = version;
        vo.version_dir = dir;
        vo.backends = &options_.backends;
        vo.clock = options_.clock;
        vo.executor = executor_.get();
        if (options_.observer_for) vo.on_batch = options_.observer_for(entry.name, version);
        auto loaded = ModelVersion::Load(vo);
        if (loaded.ok()) {
          INFERD_LOG_INFO("model '{}' version {} ready ({} instance(s), max_batch_size {})",
                          entry.name, version, entry.config.instance_count,
                          entry.config.max_batch_size);
          model.loaded[version] = std::shared_ptr<ModelVersion>(std::move(loaded).value());
        } else {
          Status st = loaded.status().WithContext(dir);
          INFERD_LOG_ERROR("model '{}' version {} is unavailable: {}", entry.name, version,
                           st.message());
          model.failed[version] = st;
        }
      }
    }
    model.entry = std::move(entry);
    MutexLock l(&mu_);
    models_[model.entry.name] = std::move(model);
  }
}

StatusOr<std::shared_ptr<ModelVersion>> ModelManager::Get(std::string_view name,
                                                          std::string_view version) {
  MutexLock l(&mu_);
  auto it = models_.find(name);
  if (it == models_.end()) return NotFoundError("unknown model '" + std::string(name) + "'");
  if (shut_down_) return UnavailableError("the server is shutting down");
  const Model& m = it->second;
  if (!m.entry.status.ok()) {
    return UnavailableError("model '" + std::string(name) +
                            "' is unavailable: " + m.entry.status.message());
  }
  if (version.empty()) {
    if (m.loaded.empty()) {
      std::string reason =
          m.failed.empty() ? "no version loaded" : m.failed.rbegin()->second.message();
      return UnavailableError("model '" + std::string(name) + "' is unavailable: " + reason);
    }
    return m.loaded.rbegin()->second;
  }
  int64_t v = 0;
  auto [p, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
  if (ec != std::errc() || p != version.data() + version.size()) {
    return NotFoundError("unknown version '" + std::string(version) + "' of model '" +
                         std::string(name) + "'");
  }
  if (auto lv = m.loaded.find(v); lv != m.loaded.end()) return lv->second;
  if (auto f = m.failed.find(v); f != m.failed.end()) {
    return UnavailableError("model '" + std::string(name) + "' version " + std::string(version) +
                            " is unavailable: " + f->second.message());
  }
  return NotFoundError("unknown version '" + std::string(version) + "' of model '" +
                       std::string(name) + "'");
}

std::vector<ModelState> ModelManager::List() {
  MutexLock l(&mu_);
  std::vector<ModelState> out;
  for (const auto& [name, m] : models_) {
    if (!m.entry.status.ok()) {
      out.push_back({name, 0, false, m.entry.status});
      continue;
    }
    for (const auto& [v, mv] : m.loaded) out.push_back({name, v, true, Status::OK()});
    for (const auto& [v, st] : m.failed) out.push_back({name, v, false, st});
  }
  return out;
}

bool ModelManager::IsServing() {
  MutexLock l(&mu_);
  return !shut_down_ && !draining_;
}

void ModelManager::BeginDrain() {
  MutexLock l(&mu_);
  draining_ = true;
  for (auto& [name, m] : models_) {
    for (auto& [v, mv] : m.loaded) mv->Flush();
  }
}

void ModelManager::Shutdown() {
  std::vector<std::shared_ptr<ModelVersion>> versions;
  {
    MutexLock l(&mu_);
    shut_down_ = true;
    for (auto& [name, m] : models_) {
      for (auto& [v, mv] : m.loaded) versions.push_back(mv);
    }
  }
  for (auto& mv : versions) mv->Shutdown();
}

}  // namespace inferd
