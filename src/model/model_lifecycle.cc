// ModelManager: explicit load and unload, keep-alive and the lifecycle
// thread, shutdown, and the memory view.

#include <atomic>
#include <map>

#include "common/logging.h"
#include "model/model_manager.h"

namespace inferd {

ModelManager::Model& ModelManager::UpdateRegistrationLocked(const std::string& name,
                                                            RepositoryEntry entry) {
  Model& m = models_[name];  // a model added since the start registers now
  m.removed = false;
  m.rescan_error = Status::OK();
  m.entry = std::move(entry);
  m.config = std::make_shared<const ModelConfig>(m.entry.config);
  for (auto& [v, slot] : m.versions) slot.present = false;
  for (const auto& [v, dir] : m.entry.versions) {
    Slot& slot = m.versions[v];
    slot.dir = dir;
    slot.present = true;
  }
  ApplyPolicyLocked(m);
  return m;
}

void ModelManager::Rescan(const std::string& name) {
  StatusOr<RepositoryEntry> scan = ScanModel(options_.repository, name);
  MutexLock l(&mu_);
  if (!scan.ok()) return;
  if (!scan->status.ok()) {
    // An invalid config: a model not registered yet is listed with the
    // reason; one registered keeps its last valid config.
    auto it = models_.find(name);
    INFERD_LOG_WARN("model '{}': {}", name, scan->status.message());
    if (it == models_.end() || !it->second.config) {
      models_[name].entry = std::move(scan).value();
    } else {
      it->second.rescan_error = scan->status;
    }
    return;
  }
  Model& m = UpdateRegistrationLocked(name, std::move(scan).value());
  // Its files changed: a version that failed to load may load now.
  for (auto& [v, slot] : m.versions) {
    if (!slot.loading && !slot.serving) slot.failed = Status::OK();
  }
}

void ModelManager::Load(std::string_view name, std::function<void(Status)> done) {
  {
    MutexLock l(&mu_);
    if (!shut_down_ && !draining_ && !stopping_) {
      load_calls_.push_back({std::string(name), std::move(done)});
      calls_cv_.Signal();
      return;
    }
  }
  done(UnavailableError("the server is shutting down"));
}

void ModelManager::RunLoadCall(const std::string& name, std::function<void(Status)> done) {
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
  // The model as it is on disk now, and what each version is made of
  // (read outside the lock).
  const std::string model(name);
  StatusOr<RepositoryEntry> scan = InternalError("not scanned");
  std::map<int64_t, uint64_t> revisions;
  try {  // the file system may throw (a directory unreadable mid-scan)
    scan = ScanModel(options_.repository, model);
    if (scan.ok() && scan->status.ok()) {
      for (const auto& [v, dir] : scan->versions) {
        if (StatusOr<uint64_t> r = Revision(scan->dir, dir); r.ok()) revisions[v] = *r;
      }
    }
  } catch (const std::exception& e) {
    scan = InternalError("scanning model '" + model + "': " + e.what());
  }
  Status error;
  {
    MutexLock l(&mu_);
    if (shut_down_ || draining_) {
      error = UnavailableError("the server is shutting down");
    } else if (!scan.ok()) {
      error = scan.status();
    } else if (!scan->status.ok()) {
      // What serves now goes on serving; a model not registered yet is
      // listed with the reason.
      error = FailedPreconditionError("model '" + model +
                                      "' cannot be loaded: " + scan->status.message());
      auto it = models_.find(model);
      if (it == models_.end()) {
        models_[model].entry = std::move(scan).value();
      } else {
        it->second.rescan_error = scan->status;
      }
    } else {
      Model& m = UpdateRegistrationLocked(model, std::move(scan).value());
      state->left = 1;  // held until every waiter is added
      for (auto& [v, slot] : m.versions) {
        if (!slot.served) continue;
        auto rev = revisions.find(v);
        if (slot.serving && rev != revisions.end() && slot.serving->revision() == rev->second)
          continue;  // loaded, and unchanged
        if (!slot.loading) {
          // Beside the version serving now, if any: it serves until this one
          // is READY.
          if (Status st = StartLoadLocked(model, v, slot); !st.ok()) {
            MutexLock sl(&state->mu);
            if (state->first.ok()) state->first = st;
            continue;
          }
        }
        Waiter w;
        w.model = model;
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
      RetireUnservedLocked(model, m);  // versions removed or left out of the set
    }
    settled_cv_.SignalAll();  // AwaitState: its loads are LOADING now
  }
  if (!error.ok()) {
    state->done(std::move(error));
    return;
  }
  state->Settled();
}

std::deque<ModelManager::LoadCall> ModelManager::TakeLoadCallsLocked(std::string_view model) {
  std::deque<LoadCall> taken, kept;
  for (LoadCall& c : load_calls_)
    (model.empty() || c.model == model ? taken : kept).push_back(std::move(c));
  load_calls_.swap(kept);
  return taken;
}

Status ModelManager::Unload(std::string_view name) {
  std::vector<Completion> answer;
  std::deque<LoadCall> calls;
  bool any = false;
  {
    MutexLock l(&mu_);
    auto it = models_.find(name);
    if (it == models_.end() || it->second.removed)
      return NotFoundError("unknown model '" + std::string(name) + "'");
    // A load call still queued is superseded, as a load in progress is.
    calls = TakeLoadCallsLocked(name);
    for (auto& [v, slot] : it->second.versions) {
      AbandonLoadLocked(slot,
                        UnavailableError("model '" + it->first + "' version " + std::to_string(v) +
                                         " was unloaded while it loaded"),
                        &answer);
      slot.failed = Status::OK();
      any = any || slot.serving != nullptr;
      RetireLocked(it->first, slot, std::move(slot.serving), "explicit");
    }
    RetryDeferredLocked();
    settled_cv_.SignalAll();
  }
  Complete(std::move(answer));
  for (LoadCall& c : calls)
    c.done(UnavailableError("model '" + std::string(name) + "' was unloaded before it loaded"));
  if (any) INFERD_LOG_INFO("model '{}' unloading", std::string(name));
  return Status::OK();
}

Duration ModelManager::KeepAliveOf(const ModelConfig& config) const {
  if (options_.control == ModelControl::kExplicit || config.pin) return Duration::max();
  const int64_t s = config.keep_alive_s.value_or(options_.keep_alive_s);
  return s < 0 ? Duration::max() : Duration(std::chrono::seconds(s));
}

Time ModelManager::ExpireIdleLocked(Time now) {
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
      RetireLocked(name, slot, std::move(slot.serving), "idle");
    }
  }
  return next;
}

void ModelManager::LifecycleLoop() {
  for (;;) {
    std::vector<Completion> expired;
    bool poll = false;
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
      const Time idle_check = shut_down_ || draining_ ? Time::max() : ExpireIdleLocked(now);
      poll = now >= next_poll_ && !shut_down_ && !draining_;
      if (poll) next_poll_ = now + options_.poll_interval;
      if (expired.empty() && !poll) {
        Time next = deadlines_.empty() ? Time::max() : deadlines_.begin()->first;
        next = std::min({next, idle_check, next_poll_});
        options_.clock->WaitUntil(&life_cv_, &mu_, next);
        continue;
      }
    }
    Complete(std::move(expired));
    if (poll) PollOnce();
  }
}

void ModelManager::Shutdown() {
  std::vector<std::shared_ptr<ModelVersion>> versions;
  std::vector<Completion> answer;
  std::deque<LoadCall> calls;
  {
    MutexLock l(&mu_);
    shut_down_ = true;
    calls = TakeLoadCallsLocked("");
    for (auto& [name, m] : models_) {
      for (auto& [v, slot] : m.versions) {
        FailWaitersLocked(slot, UnavailableError("the server is shutting down"), &answer);
        if (slot.serving) versions.push_back(slot.serving);
      }
    }
  }
  Complete(std::move(answer));
  for (LoadCall& c : calls) c.done(UnavailableError("the server is shutting down"));
  for (auto& mv : versions) mv->Shutdown();
}

void ModelManager::StopThreads() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
    work_cv_.SignalAll();
    calls_cv_.SignalAll();
    life_cv_.SignalAll();
  }
  for (auto& t : loaders_) t.join();
  loaders_.clear();
  if (load_calls_thread_.joinable()) load_calls_thread_.join();
  // Calls left (StopThreads without Shutdown; none can be added now).
  std::deque<LoadCall> calls;
  {
    MutexLock l(&mu_);
    calls = TakeLoadCallsLocked("");
  }
  for (LoadCall& c : calls) c.done(UnavailableError("the server is shutting down"));
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
        }
      }
    }
  }
  versions.clear();
  if (unloader_) unloader_->Stop();
}

MemoryView ModelManager::Memory() {
  MemoryView out;
  const Time now = options_.clock->Now();
  MutexLock l(&mu_);
  out.budget_bytes = options_.memory_budget;
  out.used_bytes = UsedLocked();
  out.deferred_loads = static_cast<int64_t>(deferred_.size());
  for (const auto& [name, m] : models_) {
    for (const auto& [v, slot] : m.versions) {
      const VersionState state = StateOf(slot);
      if (state == VersionState::kUnavailable && slot.last_bytes == 0) continue;
      VersionMemoryView r;
      r.name = name;
      r.version = v;
      r.state = state;
      if (state == VersionState::kFailed) r.reason = slot.failed;
      if (slot.deferred) r.reason = UnavailableError("waiting for memory (the memory budget)");
      r.rss_delta_bytes = slot.rss_delta;
      r.rss_delta_exclusive = slot.rss_exclusive;
      r.load_s = slot.load_s;
      r.pinned = m.config->pin;
      const Duration keep_alive = KeepAliveOf(*m.config);
      r.keep_alive_s = keep_alive == Duration::max()
                           ? -1
                           : std::chrono::duration_cast<std::chrono::seconds>(keep_alive).count();
      if (slot.serving) {
        const ModelVersion& mv = *slot.serving;
        ModelVersion::Usage& u = slot.serving->usage();
        r.bytes = u.charged.load(std::memory_order_relaxed);
        r.reported = mv.memory();
        r.in_use = u.leases.load(std::memory_order_relaxed);
        if (r.in_use == 0) {
          const Time last(Duration(u.last_use_ns.load(std::memory_order_relaxed)));
          r.idle_s = std::max(0.0, std::chrono::duration<double>(now - last).count());
        }
        r.concurrency = mv.concurrency();
        r.warmup_s = mv.warmup_seconds();
        r.shares_weights = mv.shares_weights();
        r.buffers = mv.buffer_stats();
      } else if (slot.loading) {
        r.bytes = slot.reserved;
        r.estimated = true;
      } else {
        r.bytes = slot.retiring_bytes;  // unloading: charged until destroyed
      }
      out.versions.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace inferd
