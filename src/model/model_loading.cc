// ModelManager: loading and unloading versions, and the threads that do it
// (loaders, the lifecycle thread for waiters' deadlines, the unloader).

#include <malloc.h>

#include <atomic>

#include "common/logging.h"
#include "model/model_manager.h"

namespace inferd {

void ModelManager::StartLoadLocked(const std::string& name, int64_t v, Slot& slot) {
  slot.loading = true;
  slot.failed = Status::OK();
  jobs_.push_back({name, v, ++slot.load_gen});
  work_cv_.Signal();
  settled_cv_.SignalAll();
}

void ModelManager::LoaderLoop() {
  for (;;) {
    LoadJob job;
    {
      MutexLock l(&mu_);
      while (jobs_.empty() && !stopping_) work_cv_.Wait(&mu_);
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    RunLoad(job);
  }
}

void ModelManager::RunLoad(const LoadJob& job) {
  std::shared_ptr<const ModelConfig> config;
  std::string dir;
  {
    MutexLock l(&mu_);
    Model& m = models_[job.model];
    config = m.config;
    dir = m.versions[job.version].dir;
  }
  const Time t0 = options_.clock->Now();
  StatusOr<std::unique_ptr<ModelVersion>> loaded = InternalError("not loaded");
  StatusOr<BackendModelFactory> factory = Factory(config->backend);
  if (!factory.ok()) {
    loaded = factory.status();
  } else {
    ModelVersion::Options vo;
    vo.factory = &*factory;
    vo.config = config.get();
    vo.version = job.version;
    vo.version_dir = dir;
    vo.backends = &options_.backends;
    vo.clock = options_.clock;
    vo.executor = executor_.get();
    if (options_.observer_for) vo.on_batch = options_.observer_for(job.model, job.version);
    try {
      loaded = ModelVersion::Load(vo);
    } catch (const std::exception& e) {
      loaded = InternalError(std::string("loading failed: ") + e.what());
    }
    if (!loaded.ok()) loaded = loaded.status().WithContext(dir);
  }
  // malloc_trim: the load's garbage (a module's unfrozen copy) goes back.
  malloc_trim(0);
  const double seconds = std::chrono::duration<double>(options_.clock->Now() - t0).count();
  std::shared_ptr<ModelVersion> version;
  if (loaded.ok()) version = Own(std::move(loaded).value(), job.model);
  std::shared_ptr<ModelVersion> discard;
  std::vector<Completion> answer;
  {
    MutexLock l(&mu_);
    Slot& slot = models_[job.model].versions[job.version];
    if (slot.load_gen != job.gen || !slot.loading || shut_down_) {
      // Unloaded while it loaded (its waiters were answered then).
      if (version) {
        ++slot.retiring;
        discard = std::move(version);
      }
    } else if (version) {
      slot.loading = false;
      // Before anyone sees it: its idle time starts now, and with
      // keep_alive_s = 0 the end of its last request wakes the lifecycle
      // thread (through the unloader's queue, which outlives no manager).
      ModelVersion::Usage& u = version->usage();
      u.last_use_ns.store(options_.clock->Now().time_since_epoch().count(),
                          std::memory_order_relaxed);
      if (KeepAliveOf(*config) == Duration::zero()) {
        std::weak_ptr<Unloader> unloader = unloader_;
        u.on_idle = [this, unloader] {
          if (auto q = unloader.lock()) q->Post([this] { WakeLifecycle(); });
        };
      }
      slot.serving = version;
      life_cv_.Signal();  // its keep-alive starts
      std::vector<uint64_t> ids = std::move(slot.waiters);
      slot.waiters.clear();
      for (uint64_t id : ids) {
        if (auto w = TakeWaiterLocked(id)) answer.push_back({std::move(*w), VersionLease(version)});
      }
    } else {
      slot.loading = false;
      slot.failed = loaded.status();
      const std::string what = "model '" + job.model + "' version " + std::to_string(job.version);
      std::vector<uint64_t> ids = std::move(slot.waiters);
      slot.waiters.clear();
      for (uint64_t id : ids) {
        if (auto w = TakeWaiterLocked(id)) {
          const std::string msg = what + " failed to load: " + loaded.status().message();
          Status st = w->load_call ? FailedPreconditionError(msg) : UnavailableError(msg);
          answer.push_back({std::move(*w), std::move(st)});
        }
      }
    }
    settled_cv_.SignalAll();
  }
  if (discard) {
    INFERD_LOG_INFO("model '{}' version {} loaded after it was unloaded: discarded", job.model,
                    job.version);
  } else if (version) {
    INFERD_LOG_INFO("model '{}' version {} ready in {:.3f} s ({} instance(s), max_batch_size {})",
                    job.model, job.version, seconds, config->instance_count,
                    config->max_batch_size);
  } else {
    INFERD_LOG_ERROR("model '{}' version {} is unavailable: {}", job.model, job.version,
                     loaded.status().message());
  }
  Complete(std::move(answer));
  if (discard) discard->Flush();
}

std::shared_ptr<ModelVersion> ModelManager::Own(std::unique_ptr<ModelVersion> mv,
                                                const std::string& name) {
  std::weak_ptr<Unloader> unloader = unloader_;
  return std::shared_ptr<ModelVersion>(mv.release(), [this, unloader, name](ModelVersion* p) {
    if (auto u = unloader.lock()) {
      const int64_t version = p->version();
      if (u->Post([this, p, name, version] {
            delete p;
            malloc_trim(0);
            Retired(name, version);
          })) {
        return;
      }
    }
    delete p;  // the manager is gone
  });
}

void ModelManager::Retired(const std::string& name, int64_t version) {
  MutexLock l(&mu_);
  auto m = models_.find(name);
  if (m == models_.end()) return;
  auto s = m->second.versions.find(version);
  if (s == m->second.versions.end() || s->second.retiring == 0) return;
  if (--s->second.retiring == 0) {
    INFERD_LOG_INFO("model '{}' version {} unloaded", name, version);
  }
  settled_cv_.SignalAll();
}

void ModelManager::Load(std::string_view name, std::function<void(Status)> done) {
  struct Pending {
    std::atomic<int> left{0};
    Mutex mu;
    Status first GUARDED_BY(mu);  // the first failure
    std::function<void(Status)> done;
    void Settled() EXCLUDES(mu) {
      if (left.fetch_sub(1) != 1) return;
      Status result;
      {
        MutexLock l(&mu);
        result = first;
      }
      done(std::move(result));
    }
  };
  auto state = std::make_shared<Pending>();
  state->done = std::move(done);
  Status error;
  {
    MutexLock l(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) {
      error = NotFoundError("unknown model '" + std::string(name) + "'");
    } else if (shut_down_ || draining_) {
      error = UnavailableError("the server is shutting down");
    } else if (!it->second.config) {
      error = FailedPreconditionError("model '" + it->first +
                                      "' is unavailable: " + it->second.entry.status.message());
    } else if (it->second.versions.empty()) {
      error = FailedPreconditionError("model '" + it->first + "' has no version directory");
    } else {
      state->left = 1;  // held until every waiter is added
      for (auto& [v, slot] : it->second.versions) {
        if (slot.serving) continue;
        if (!slot.loading) StartLoadLocked(it->first, v, slot);
        Waiter w;
        w.model = it->first;
        w.version = v;
        w.load_call = true;
        w.done = [state](StatusOr<VersionLease> r) {
          if (!r.ok()) {
            MutexLock sl(&state->mu);
            if (state->first.ok()) state->first = r.status();
          }
          state->Settled();
        };
        state->left.fetch_add(1);
        AddWaiterLocked(slot, std::move(w), Time::max());
      }
    }
  }
  if (!error.ok()) {
    state->done(std::move(error));
    return;
  }
  state->Settled();
}

Status ModelManager::Unload(std::string_view name) {
  std::vector<std::shared_ptr<ModelVersion>> leaving;
  std::vector<Completion> answer;
  {
    MutexLock l(&mu_);
    auto it = models_.find(name);
    if (it == models_.end()) return NotFoundError("unknown model '" + std::string(name) + "'");
    for (auto& [v, slot] : it->second.versions) {
      if (slot.loading) {
        slot.loading = false;
        ++slot.load_gen;  // the load in flight is discarded when it ends
        FailWaitersLocked(slot,
                          UnavailableError("model '" + it->first + "' version " +
                                           std::to_string(v) + " was unloaded while it loaded"),
                          &answer);
      }
      slot.failed = Status::OK();
      if (slot.serving) {
        ++slot.retiring;
        leaving.push_back(std::move(slot.serving));
        slot.serving.reset();
      }
    }
    settled_cv_.SignalAll();
  }
  Complete(std::move(answer));
  // Partial batches go at once; the requests holding a lease finish, and
  // the last reference destroys the version on the unloader.
  for (auto& mv : leaving) mv->Flush();
  if (!leaving.empty()) INFERD_LOG_INFO("model '{}' unloading", std::string(name));
  return Status::OK();
}

Duration ModelManager::KeepAliveOf(const ModelConfig& config) const {
  if (options_.control == ModelControl::kExplicit || config.pin) return Duration::max();
  const int64_t s = config.keep_alive_s.value_or(options_.keep_alive_s);
  return s < 0 ? Duration::max() : Duration(std::chrono::seconds(s));
}

Time ModelManager::ExpireIdleLocked(Time now, std::vector<std::shared_ptr<ModelVersion>>* leaving) {
  Time next = Time::max();
  for (auto& [name, m] : models_) {
    if (!m.config) continue;
    const Duration keep_alive = KeepAliveOf(*m.config);
    if (keep_alive == Duration::max()) continue;
    for (auto& [v, slot] : m.versions) {
      if (!slot.serving) continue;
      ModelVersion::Usage& u = slot.serving->usage();
      if (u.leases.load(std::memory_order_acquire) > 0) {
        // In use: it ends no earlier than keep_alive from now (keep-alive 0
        // wakes this thread through on_idle instead).
        if (keep_alive > Duration::zero()) next = std::min(next, now + keep_alive);
        continue;
      }
      const Time expiry =
          Time(Duration(u.last_use_ns.load(std::memory_order_relaxed))) + keep_alive;
      if (expiry > now) {
        next = std::min(next, expiry);
        continue;
      }
      INFERD_LOG_INFO("model '{}' version {} idle for {} s (keep_alive_s): unloading", name, v,
                      std::chrono::duration_cast<std::chrono::seconds>(keep_alive).count());
      ++slot.retiring;
      leaving->push_back(std::move(slot.serving));
      slot.serving.reset();
      settled_cv_.SignalAll();
    }
  }
  return next;
}

void ModelManager::LifecycleLoop() {
  for (;;) {
    std::vector<Completion> expired;
    std::vector<std::shared_ptr<ModelVersion>> leaving;
    {
      MutexLock l(&mu_);
      if (stopping_) return;
      const Time now = options_.clock->Now();
      while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        if (auto w = TakeWaiterLocked(deadlines_.begin()->second)) {
          Status st = DeadlineExceededError("the request's deadline passed while model '" +
                                            w->model + "' was loading");
          expired.push_back({std::move(*w), std::move(st)});
        } else {
          deadlines_.erase(deadlines_.begin());  // not reached: waiters own their entry
        }
      }
      const Time idle_check =
          shut_down_ || draining_ ? Time::max() : ExpireIdleLocked(now, &leaving);
      if (expired.empty() && leaving.empty()) {
        Time next = deadlines_.empty() ? Time::max() : deadlines_.begin()->first;
        next = std::min(next, idle_check);
        options_.clock->WaitUntil(&life_cv_, &mu_, next);
        continue;
      }
    }
    Complete(std::move(expired));
    for (auto& mv : leaving) mv->Flush();
  }
}

void ModelManager::WakeLifecycle() {
  MutexLock l(&mu_);
  life_cv_.Signal();
}

void ModelManager::Shutdown() {
  std::vector<std::shared_ptr<ModelVersion>> versions;
  std::vector<Completion> answer;
  {
    MutexLock l(&mu_);
    shut_down_ = true;
    for (auto& [name, m] : models_) {
      for (auto& [v, slot] : m.versions) {
        FailWaitersLocked(slot, UnavailableError("the server is shutting down"), &answer);
        if (slot.serving) versions.push_back(slot.serving);
      }
    }
  }
  Complete(std::move(answer));
  for (auto& mv : versions) mv->Shutdown();
}

void ModelManager::StopThreads() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
    work_cv_.SignalAll();
    life_cv_.SignalAll();
  }
  for (auto& t : loaders_) t.join();
  loaders_.clear();
  if (lifecycle_.joinable()) lifecycle_.join();
  // The versions still served go now, on the unloader, which then stops.
  std::vector<std::shared_ptr<ModelVersion>> versions;
  {
    MutexLock l(&mu_);
    for (auto& [name, m] : models_) {
      for (auto& [v, slot] : m.versions) {
        if (slot.serving) {
          ++slot.retiring;
          versions.push_back(std::move(slot.serving));
          slot.serving.reset();
        }
      }
    }
  }
  versions.clear();
  if (unloader_) unloader_->Stop();
}

}  // namespace inferd
