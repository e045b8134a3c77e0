// ModelManager: registration, the request side (Acquire, WhenReady) and the
// views. Loading, unloading and the threads: model_loading.cc.

#include "model/model_manager.h"

#include <algorithm>
#include <charconv>

#include "common/logging.h"

namespace inferd {
namespace {

Status UnknownVersion(std::string_view name, std::string_view version) {
  return NotFoundError("unknown version '" + std::string(version) + "' of model '" +
                       std::string(name) + "'");
}

}  // namespace

StatusOr<std::unique_ptr<ModelManager>> ModelManager::Create(Options options) {
  if (options.load_threads < 1) return InvalidArgumentError("model_load_threads must be >= 1");
  if (options.poll_interval <= Duration::zero())
    return InvalidArgumentError("repository_poll_s must be >= 1");
  if (options.clock == nullptr) options.clock = Clock::System();
  INFERD_ASSIGN_OR_RETURN(auto entries, ScanRepository(options.repository));
  Executor::Options eo;
  eo.threads = options.executor_threads;
  eo.clock = options.clock;
  INFERD_ASSIGN_OR_RETURN(auto executor, Executor::Create(eo));
  std::unique_ptr<ModelManager> m(new ModelManager(std::move(options)));
  m->executor_ = std::move(executor);
  m->Register(std::move(entries));
  if (m->options_.control == ModelControl::kPoll) {
    // What is registered now is what was acted on.
    for (const std::string& name : ListModelDirectories(m->options_.repository)) {
      const std::string sig = ModelSignature(m->options_.repository + "/" + name);
      m->poll_seen_[name] = m->poll_acted_[name] = sig;
    }
    MutexLock l(&m->mu_);
    m->next_poll_ = m->options_.clock->Now() + m->options_.poll_interval;
  }
  m->unloader_ = std::make_shared<Unloader>();
  for (int i = 0; i < m->options_.load_threads; ++i)
    m->loaders_.emplace_back([p = m.get()] { p->LoaderLoop(); });
  m->load_calls_thread_ = std::thread([p = m.get()] { p->LoadCallLoop(); });
  m->lifecycle_ = std::thread([p = m.get()] { p->LifecycleLoop(); });
  INFERD_RETURN_IF_ERROR(m->Preload());
  return m;
}

ModelManager::~ModelManager() {
  Shutdown();
  StopThreads();
}

StatusOr<BackendModelFactory> ModelManager::Factory(const std::string& backend) {
  if (auto m = options_.model_backends.find(backend); m != options_.model_backends.end())
    return m->second;
  auto it = options_.backends.find(backend);
  if (it != options_.backends.end()) return PerInstance(it->second);
  return loader_.Get(backend);
}

void ModelManager::Register(std::vector<RepositoryEntry> entries) {
  MutexLock l(&mu_);
  for (auto& entry : entries) {
    Model model;
    if (!entry.status.ok()) {
      INFERD_LOG_ERROR("model '{}' is unavailable: {}", entry.name, entry.status.message());
    } else {
      model.config = std::make_shared<const ModelConfig>(entry.config);
      for (const auto& [version, dir] : entry.versions) model.versions[version].dir = dir;
      ApplyPolicyLocked(model);
    }
    model.entry = std::move(entry);
    std::string name = model.entry.name;
    models_[name] = std::move(model);
  }
}

Status ModelManager::Preload() {
  std::vector<std::pair<std::string, int64_t>> started;
  {
    MutexLock l(&mu_);
    for (const std::string& want : options_.preload) {
      if (want != "*" && models_.find(want) == models_.end()) {
        return InvalidArgumentError("load_model: no model '" + want + "' in the repository");
      }
    }
    for (auto& [name, m] : models_) {
      const bool wanted =
          std::any_of(options_.preload.begin(), options_.preload.end(),
                      [&name = name](const std::string& w) { return w == "*" || w == name; });
      if (!wanted) continue;
      for (auto& [v, slot] : m.versions) {
        if (!slot.served) continue;
        if (Status st = StartLoadLocked(name, v, slot); !st.ok()) {
          INFERD_LOG_ERROR("{}", st.message());
          slot.failed = st;
          continue;
        }
        started.emplace_back(name, v);
      }
    }
    // Wait for them all; a failure is reported by the index and the log.
    for (const auto& [name, v] : started) {
      while (models_[name].versions[v].loading) settled_cv_.Wait(&mu_);
    }
  }
  return Status::OK();
}

VersionState ModelManager::StateOf(const Slot& slot) {
  if (slot.serving) return VersionState::kReady;
  if (slot.loading) return VersionState::kLoading;
  if (slot.retiring > 0) return VersionState::kUnloading;
  if (!slot.failed.ok()) return VersionState::kFailed;
  return VersionState::kUnavailable;
}

Status ModelManager::ResolveLocked(const std::string& name, Model& m, std::string_view version,
                                   int64_t* v, Slot** slot) {
  if (!m.config) {
    return UnavailableError("model '" + name + "' is unavailable: " + m.entry.status.message());
  }
  if (version.empty()) {
    // The highest READY version of the served set; else the highest READY
    // one (the previous set, while a new one loads); else the highest
    // served that has not failed; else the highest served (its failure is
    // the answer).
    auto first = [&](auto pred) -> std::map<int64_t, Slot>::iterator {
      for (auto it = m.versions.rbegin(); it != m.versions.rend(); ++it) {
        if (pred(it->second)) return std::prev(it.base());
      }
      return m.versions.end();
    };
    auto pick = first([](const Slot& s) { return s.served && s.serving; });
    if (pick == m.versions.end()) pick = first([](const Slot& s) { return s.serving != nullptr; });
    if (pick == m.versions.end())
      pick = first([](const Slot& s) { return s.served && StateOf(s) != VersionState::kFailed; });
    if (pick == m.versions.end()) pick = first([](const Slot& s) { return s.served; });
    if (pick == m.versions.end()) {
      return UnavailableError("model '" + name + "' has no version to serve (version_policy " +
                              m.config->version_policy.Describe() + ")");
    }
    *v = pick->first;
    *slot = &pick->second;
    return Status::OK();
  }
  int64_t parsed = 0;
  auto [p, ec] = std::from_chars(version.data(), version.data() + version.size(), parsed);
  if (ec != std::errc() || p != version.data() + version.size()) {
    return UnknownVersion(name, version);
  }
  auto it = m.versions.find(parsed);
  if (it == m.versions.end() || (!it->second.present && !it->second.serving))
    return UnknownVersion(name, version);
  if (!it->second.served && !it->second.serving) {
    return NotFoundError("version " + std::to_string(parsed) + " of model '" + name +
                         "' is not served (version_policy " + m.config->version_policy.Describe() +
                         ")");
  }
  *v = parsed;
  *slot = &it->second;
  return Status::OK();
}

void ModelManager::ApplyPolicyLocked(Model& m) {
  std::vector<int64_t> present;
  for (const auto& [v, slot] : m.versions) {
    if (slot.present) present.push_back(v);
  }
  const std::vector<int64_t> served =
      m.config ? m.config->version_policy.Select(present) : std::vector<int64_t>{};
  for (auto& [v, slot] : m.versions) {
    slot.served = std::find(served.begin(), served.end(), v) != served.end();
  }
}

void ModelManager::RetireUnservedLocked(const std::string& name, Model& m) {
  bool served_ready = false;
  for (const auto& [v, slot] : m.versions)
    served_ready = served_ready || (slot.served && slot.serving);
  if (!served_ready) return;  // the previous set serves until the new one can
  for (auto& [v, slot] : m.versions) {
    if (slot.serving && !slot.served) {
      INFERD_LOG_INFO("model '{}' version {} is no longer served (version_policy {})", name, v,
                      m.config->version_policy.Describe());
      RetireLocked(name, slot, std::move(slot.serving), "reload");
    }
  }
}

// Why `slot` cannot be waited for, or OK when a request may wait for it.
Status ModelManager::NotReadyLocked(const std::string& name, int64_t v, const Slot& slot) {
  const std::string what = "model '" + name + "' version " + std::to_string(v);
  if (slot.loading) return Status::OK();
  if (shut_down_ || draining_) return UnavailableError("the server is shutting down");
  if (!slot.failed.ok())
    return UnavailableError(what + " failed to load: " + slot.failed.message());
  if (options_.control == ModelControl::kExplicit) {
    return UnavailableError(what + " is not loaded (model control explicit: POST " +
                            "/v2/repository/models/" + name + "/load)");
  }
  return Status::OK();
}

Acquired ModelManager::Acquire(std::string_view name, std::string_view version) {
  Acquired out;
  MutexLock l(&mu_);
  if (shut_down_) {
    out.status = UnavailableError("the server is shutting down");
    return out;
  }
  Resolved r;
  out.status = FindLocked(name, version, &r);
  if (!out.status.ok()) return out;
  if (r.slot->serving) {
    out.lease = VersionLease(r.slot->serving);
    return out;
  }
  out.status = NotReadyLocked(*r.name, r.version, *r.slot);
  if (out.status.ok()) out.pending = PendingModel{*r.name, r.version, r.model->config};
  return out;
}

uint64_t ModelManager::AddWaiterLocked(Slot& slot, Waiter w, Time deadline) {
  const uint64_t id = next_waiter_++;
  const bool earliest = deadlines_.empty() || deadline < deadlines_.begin()->first;
  w.deadline = deadline == Time::max() ? deadlines_.end() : deadlines_.emplace(deadline, id);
  waiters_.emplace(id, std::move(w));
  slot.waiters.push_back(id);
  if (earliest && deadline != Time::max()) life_cv_.Signal();
  return id;
}

std::optional<ModelManager::Waiter> ModelManager::TakeWaiterLocked(uint64_t id) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return std::nullopt;
  Waiter w = std::move(it->second);
  waiters_.erase(it);
  if (w.deadline != deadlines_.end()) deadlines_.erase(w.deadline);
  w.deadline = deadlines_.end();
  auto m = models_.find(w.model);
  if (m != models_.end()) {
    auto s = m->second.versions.find(w.version);
    if (s != m->second.versions.end()) {
      auto& ids = s->second.waiters;
      ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
    }
  }
  return w;
}

std::vector<ModelManager::Waiter> ModelManager::TakeWaitersLocked(Slot& slot) {
  std::vector<uint64_t> ids = std::move(slot.waiters);
  slot.waiters.clear();
  std::vector<Waiter> out;
  for (uint64_t id : ids) {
    if (auto w = TakeWaiterLocked(id)) out.push_back(std::move(*w));
  }
  return out;
}

void ModelManager::FailWaitersLocked(Slot& slot, const Status& error,
                                     std::vector<Completion>* out) {
  for (Waiter& w : TakeWaitersLocked(slot)) out->push_back({std::move(w), error});
}

void ModelManager::AbandonLoadLocked(Slot& slot, const Status& error,
                                     std::vector<Completion>* out) {
  if (!slot.loading) return;
  slot.loading = false;
  slot.reserved = 0;
  ++slot.load_gen;  // the load in flight is discarded when it ends
  FailWaitersLocked(slot, error, out);
}

void ModelManager::Complete(std::vector<Completion> done) {
  for (Completion& c : done) {
    if (c.waiter.cancel && c.waiter.cancel_id != 0) c.waiter.cancel->Remove(c.waiter.cancel_id);
    c.waiter.done(std::move(c.result));
  }
}

void ModelManager::WhenReady(const PendingModel& pending, Time deadline,
                             std::shared_ptr<Cancellation> cancel, ReadyCallback done,
                             bool* refused) {
  const Time now = options_.clock->Now();
  if (options_.load_wait < Time::max() - now)
    deadline = std::min(deadline, now + options_.load_wait);
  std::vector<Completion> answer;
  uint64_t id = 0;
  {
    MutexLock l(&mu_);
    auto m = models_.find(pending.name);
    Slot* slot = nullptr;
    if (m != models_.end() && !m->second.removed) {
      auto s = m->second.versions.find(pending.version);
      if (s != m->second.versions.end()) slot = &s->second;
    }
    Waiter w;
    w.model = pending.name;
    w.version = pending.version;
    w.done = std::move(done);
    Status error;
    bool refusal = false;  // no wait possible (vs. an answer already known)
    if (shut_down_) {
      error = UnavailableError("the server is shutting down");
      refusal = true;
    } else if (slot == nullptr) {
      error = NotFoundError("unknown model '" + pending.name + "'");
    } else if (slot->serving) {  // it became READY meanwhile
      answer.push_back({std::move(w), VersionLease(slot->serving)});
    } else if (error = NotReadyLocked(pending.name, pending.version, *slot); error.ok()) {
      const int64_t max_waiters = std::max<int64_t>(1, m->second.config->max_queue_size);
      if (static_cast<int64_t>(slot->waiters.size()) >= max_waiters) {
        error = UnavailableError("too many requests wait for model '" + pending.name +
                                 "' to load (max_queue_size " + std::to_string(max_waiters) + ")");
        refusal = true;
      } else {
        if (!slot->loading) {
          error = StartLoadLocked(pending.name, pending.version, *slot);
          refusal = !error.ok();
        }
        if (error.ok()) {
          w.cancel = cancel;
          id = AddWaiterLocked(*slot, std::move(w), deadline);
        }
      }
    }
    if (!error.ok()) answer.push_back({std::move(w), std::move(error)});
    if (refused != nullptr) *refused = refusal;
  }
  Complete(std::move(answer));
  if (id == 0 || !cancel) return;
  // Registered outside the lock: a cancellation that fired already runs
  // the callback here.
  const uint64_t cancel_id =
      cancel->OnCancel([this, id](const Status& reason) { CancelWaiter(id, reason); });
  bool gone = false;
  {
    MutexLock l(&mu_);
    auto it = waiters_.find(id);
    if (it != waiters_.end()) {
      it->second.cancel_id = cancel_id;
    } else {
      gone = true;
    }
  }
  if (gone) cancel->Remove(cancel_id);
}

void ModelManager::CancelWaiter(uint64_t id, Status reason) {
  std::vector<Completion> answer;
  {
    MutexLock l(&mu_);
    if (auto w = TakeWaiterLocked(id)) {
      w->cancel_id = 0;  // fired: nothing to remove
      answer.push_back({std::move(*w), reason.ok() ? CancelledError("cancelled") : reason});
    }
  }
  Complete(std::move(answer));
}

Status ModelManager::FindLocked(std::string_view name, std::string_view version, Resolved* out) {
  auto it = models_.find(name);
  if (it == models_.end() || it->second.removed)
    return NotFoundError("unknown model '" + std::string(name) + "'");
  out->name = &it->first;
  out->model = &it->second;
  return ResolveLocked(it->first, it->second, version, &out->version, &out->slot);
}

StatusOr<std::shared_ptr<ModelVersion>> ModelManager::Get(std::string_view name,
                                                          std::string_view version) {
  MutexLock l(&mu_);
  if (shut_down_) return UnavailableError("the server is shutting down");
  Resolved r;
  INFERD_RETURN_IF_ERROR(FindLocked(name, version, &r));
  if (r.slot->serving) return r.slot->serving;
  return NotServingLocked(*r.name, r.version, *r.slot);
}

StatusOr<std::shared_ptr<const ModelConfig>> ModelManager::Config(std::string_view name,
                                                                  std::string_view version) {
  MutexLock l(&mu_);
  Resolved r;
  INFERD_RETURN_IF_ERROR(FindLocked(name, version, &r));
  // The registered config: a version loaded before a reload changed it
  // keeps its own until it leaves.
  return r.model->config;
}

std::vector<int64_t> ModelManager::Versions(std::string_view name) {
  MutexLock l(&mu_);
  std::vector<int64_t> out;
  auto it = models_.find(name);
  if (it == models_.end() || it->second.removed) return out;
  for (const auto& [v, slot] : it->second.versions) {
    if (slot.served || slot.serving) out.push_back(v);
  }
  return out;
}

Status ModelManager::Ready(std::string_view name, std::string_view version) {
  MutexLock l(&mu_);
  Resolved r;
  INFERD_RETURN_IF_ERROR(FindLocked(name, version, &r));
  if (r.slot->serving) return Status::OK();
  return NotServingLocked(*r.name, r.version, *r.slot);
}

Status ModelManager::NotServingLocked(const std::string& name, int64_t v, const Slot& slot) {
  const VersionState state = StateOf(slot);
  std::string what =
      "model '" + name + "' version " + std::to_string(v) + " is " + VersionStateName(state);
  switch (state) {
    case VersionState::kFailed:
      return UnavailableError(what + ": " + slot.failed.message());
    case VersionState::kLoading:
      return UnavailableError(what);
    default:
      return UnavailableError(
          what + (options_.control == ModelControl::kExplicit
                      ? ": not loaded (model control explicit: POST /v2/repository/models/" + name +
                            "/load)"
                      : ": not loaded; it loads on its first inference request"));
  }
}

std::vector<ModelState> ModelManager::List() {
  MutexLock l(&mu_);
  std::vector<ModelState> out;
  for (const auto& [name, m] : models_) {
    if (m.removed && std::none_of(m.versions.begin(), m.versions.end(),
                                  [](const auto& v) { return v.second.retiring > 0; }))
      continue;
    if (!m.config || m.versions.empty()) {
      Status why = m.config ? UnavailableError("no version directory") : m.entry.status;
      out.push_back({name, 0, VersionState::kFailed, why});
      continue;
    }
    for (const auto& [v, slot] : m.versions) {
      const VersionState state = StateOf(slot);
      if (!slot.present && state == VersionState::kUnavailable) continue;  // removed
      Status reason;
      if (state == VersionState::kFailed) {
        reason = slot.failed;
      } else if (!slot.failed.ok()) {  // READY: its reload failed
        reason = UnavailableError("the last load failed: " + slot.failed.message());
      } else if (!slot.served) {
        reason =
            UnavailableError("not served: version_policy " + m.config->version_policy.Describe() +
                             (slot.serving ? "; serving until a version it serves is READY" : ""));
      }
      if (!m.rescan_error.ok()) {  // the files on disk no longer load
        reason =
            UnavailableError((reason.ok() ? "" : reason.message() + "; ") +
                             "the repository's config does not load: " + m.rescan_error.message());
      }
      out.push_back({name, v, state, reason});
    }
  }
  return out;
}

bool ModelManager::AwaitState(std::string_view name, int64_t version, VersionState state,
                              Duration timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  MutexLock l(&mu_);
  for (;;) {
    auto m = models_.find(name);
    if (m != models_.end()) {
      auto s = m->second.versions.find(version);
      if (s != m->second.versions.end() && StateOf(s->second) == state) return true;
    }
    if (!settled_cv_.WaitUntil(&mu_, until) && std::chrono::steady_clock::now() >= until)
      return false;
  }
}

bool ModelManager::IsServing() {
  MutexLock l(&mu_);
  return !shut_down_ && !draining_;
}

void ModelManager::BeginDrain() {
  std::deque<LoadCall> calls;
  {
    MutexLock l(&mu_);
    draining_ = true;
    calls = TakeLoadCallsLocked("");
    for (auto& [name, m] : models_) {
      for (auto& [v, slot] : m.versions) {
        if (slot.serving) slot.serving->Flush();
      }
    }
  }
  for (LoadCall& c : calls) c.done(UnavailableError("the server is shutting down"));
}

}  // namespace inferd
