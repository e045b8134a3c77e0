// ModelManager: starting loads under the memory budget, the loader threads,
// and the end of a version (the unloader). Load, unload, keep-alive and the
// views: model_lifecycle.cc.

#include <algorithm>
#include <atomic>
#include <filesystem>

#include "common/logging.h"
#include "common/memory_trim.h"
#include "metrics/metrics.h"
#include "model/memory_budget.h"
#include "model/model_manager.h"

namespace inferd {
namespace {

// "44.9 MiB", "42.5 KiB", "980 B".
std::string MiB(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (int64_t{1} << 30)) return fmt::format("{:.1f} GiB", b / (1 << 30));
  if (bytes >= (int64_t{1} << 20)) return fmt::format("{:.1f} MiB", b / (1 << 20));
  if (bytes >= 1024) return fmt::format("{:.1f} KiB", b / 1024);
  return fmt::format("{} B", bytes);
}

// The bytes of the files of a version directory (the first load's estimate).
int64_t DirectoryBytes(const std::string& dir) {
  std::error_code ec;
  int64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += static_cast<int64_t>(it->file_size(ec));
  }
  return total;
}

}  // namespace

Status ModelManager::StartLoadLocked(const std::string& name, int64_t v, Slot& slot) {
  slot.loading = true;
  slot.failed = Status::OK();
  ++slot.load_gen;
  Status st = ScheduleLoadLocked(name, v, slot);
  if (!st.ok()) slot.loading = false;
  settled_cv_.SignalAll();
  return st;
}

int64_t ModelManager::Charge(const ModelVersion& mv, int64_t rss_delta) {
  const BackendMemory& mem = mv.memory();
  if (!mem.known || mem.total() <= 0) return std::max<int64_t>(rss_delta, 1);
  // Reported per copy: instances that do not share it hold one each.
  return mem.total() * (mv.shares_weights() ? 1 : std::max(1, mv.concurrency()));
}

bool ModelManager::OverBudgetLocked(const Slot& slot, int64_t charge) const {
  return options_.memory_budget > 0 && charge > slot.reserved &&
         UsedLocked() - slot.reserved + charge > options_.memory_budget;
}

int64_t ModelManager::UsedLocked() const {
  int64_t used = 0;
  for (const auto& [name, m] : models_) {
    for (const auto& [v, slot] : m.versions) {
      used += slot.reserved + slot.retiring_bytes;
      if (slot.serving) used += slot.serving->usage().charged.load(std::memory_order_relaxed);
    }
  }
  return used;
}

int64_t ModelManager::EstimateLocked(const Slot& slot) const {
  if (slot.last_bytes > 0) return slot.last_bytes;
  // Weights plus the runtime's packed copies: about twice the files.
  return std::max<int64_t>(2 * DirectoryBytes(slot.dir), 1);
}

Status ModelManager::ScheduleLoadLocked(const std::string& name, int64_t v, Slot& slot) {
  const int64_t budget = options_.memory_budget;
  int64_t need = 0;
  if (budget > 0) {
    need = EstimateLocked(slot);
    int64_t freeing = 0, loading = 0;
    std::vector<BudgetResident> residents;
    std::vector<std::pair<std::string, int64_t>> ids;  // residents[i] is ids[i]
    std::string names;
    for (const auto& [n, m] : models_) {
      for (const auto& [ver, s] : m.versions) {
        freeing += s.retiring_bytes;
        if (!m.config->pin && &s != &slot) loading += s.reserved;
        if (!s.serving) continue;
        const ModelVersion::Usage& u = s.serving->usage();
        BudgetResident r;
        r.id = ids.size();
        r.bytes = u.charged.load(std::memory_order_relaxed);
        r.last_use = u.last_use_ns.load(std::memory_order_relaxed);
        r.idle = u.leases.load(std::memory_order_acquire) == 0;
        // A reload never evicts the version it replaces (it serves until the
        // new one is READY): without room for both, the reload is refused.
        r.pinned = m.config->pin || n == name;
        residents.push_back(r);
        ids.emplace_back(n, ver);
        names += (names.empty() ? "" : ", ") + n + " " + MiB(r.bytes) +
                 (r.pinned ? " pinned"
                  : r.idle ? ""
                           : " in use");
      }
    }
    const bool may_evict = options_.control != ModelControl::kExplicit;
    BudgetPlan plan = PlanLoad(budget, UsedLocked(), freeing, loading, need, residents, may_evict);
    if (plan.action == BudgetPlan::Action::kRefuse) {
      return UnavailableError("model '" + name + "' version " + std::to_string(v) + " needs " +
                              MiB(need) + "; the memory budget is " + MiB(budget) + " (" +
                              MiB(UsedLocked()) +
                              " used; resident: " + (names.empty() ? "none" : names) + ")" +
                              (may_evict ? "" : " and model control explicit unloads nothing"));
    }
    if (plan.action != BudgetPlan::Action::kStart) {
      for (uint64_t i : plan.evict) {
        auto& [n, ver] = ids[i];
        Slot& victim = models_[n].versions[ver];
        INFERD_LOG_INFO("model '{}' version {} evicted for model '{}' version {} (memory budget)",
                        n, ver, name, v);
        RetireLocked(n, victim, std::move(victim.serving), "evicted");
      }
      // Wait: for the evicted and unloading versions to be destroyed, or for
      // versions in use to become idle (their last request then calls
      // OnIdle).
      if (plan.action == BudgetPlan::Action::kWaitIdle) {
        for (auto& [n, m] : models_) {
          for (auto& [ver, s] : m.versions) {
            if (s.serving) s.serving->usage().notify_idle.store(true, std::memory_order_release);
          }
        }
      }
      if (!slot.deferred) {
        slot.deferred = true;
        deferred_.emplace_back(name, v);
      }
      return Status::OK();
    }
  }
  if (slot.deferred) {
    slot.deferred = false;
    deferred_.erase(std::remove(deferred_.begin(), deferred_.end(), std::make_pair(name, v)),
                    deferred_.end());
  }
  slot.reserved = need;
  jobs_.push_back({name, v, slot.load_gen});
  work_cv_.Signal();
  return Status::OK();
}

void ModelManager::RetryDeferredLocked() {
  while (!deferred_.empty()) {
    auto [name, v] = deferred_.front();
    Slot& slot = models_[name].versions[v];
    if (!slot.loading || !slot.deferred) {  // unloaded meanwhile
      slot.deferred = false;
      deferred_.pop_front();
      continue;
    }
    Status st = ScheduleLoadLocked(name, v, slot);
    if (!st.ok()) {  // no longer fits at all (e.g. a model was pinned)
      slot.deferred = false;
      slot.loading = false;
      deferred_.pop_front();
      std::vector<Completion> answer;
      FailWaitersLocked(slot, st, &answer);
      // Answered on the unloader thread, outside the lock.
      unloader_->Post([answer = std::make_shared<std::vector<Completion>>(std::move(answer))] {
        Complete(std::move(*answer));
      });
      continue;
    }
    if (slot.deferred) break;  // first come, first served
  }
  if (deferred_.empty()) {
    for (auto& [n, m] : models_) {
      for (auto& [ver, s] : m.versions) {
        if (s.serving && KeepAliveOf(*m.config) != Duration::zero())
          s.serving->usage().notify_idle.store(false, std::memory_order_relaxed);
      }
    }
  }
}

void ModelManager::OnIdle() {
  MutexLock l(&mu_);
  life_cv_.Signal();  // keep-alive 0
  RetryDeferredLocked();
}

void ModelManager::RetireLocked(const std::string& name, Slot& slot,
                                std::shared_ptr<ModelVersion> mv, const char* reason) {
  if (!mv) return;
  ++slot.retiring;
  slot.retiring_bytes += mv->usage().charged.load(std::memory_order_relaxed);
  if (reason != nullptr && options_.on_unload) options_.on_unload(name, reason);
  settled_cv_.SignalAll();
  // Partial batches go at once; the requests holding a lease finish, and
  // the last reference destroys the version on the unloader.
  std::shared_ptr<ModelVersion> held = std::move(mv);
  if (!unloader_->Post([held]() mutable {
        held->Flush();
        held.reset();
      })) {
    held->Flush();  // stopping: the caller's scope drops it
  }
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

void ModelManager::LoadCallLoop() {
  for (;;) {
    LoadCall call;
    {
      MutexLock l(&mu_);
      while (load_calls_.empty() && !stopping_) calls_cv_.Wait(&mu_);
      if (stopping_) return;
      call = std::move(load_calls_.front());
      load_calls_.pop_front();
    }
    try {
      RunLoadCall(call.model, std::move(call.done));
    } catch (const std::exception& e) {
      // `done` went with the call: its owner (an HTTP responder) answers
      // when it is dropped unanswered.
      INFERD_LOG_ERROR("load call of model '{}': {}", call.model, e.what());
    }
  }
}

void ModelManager::RunLoad(const LoadJob& job) {
  std::shared_ptr<const ModelConfig> config;
  std::string dir, model_dir;
  int64_t epoch = 0;
  bool alone = false;
  {
    MutexLock l(&mu_);
    Model& m = models_[job.model];
    config = m.config;
    model_dir = m.entry.dir;
    dir = m.versions[job.version].dir;
    epoch = ++loads_started_;
    alone = ++loads_running_ == 1;
  }
  const int64_t rss0 = ProcessResidentBytes();
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
    // What it is loaded from: cache keys carry it (0 when it cannot be read;
    // the load then fails on the missing file anyway).
    if (StatusOr<uint64_t> rev = Revision(model_dir, dir); rev.ok()) vo.revision = *rev;
    try {
      loaded = ModelVersion::Load(vo);
    } catch (const std::exception& e) {
      loaded = InternalError(std::string("loading failed: ") + e.what());
    }
    if (!loaded.ok()) loaded = loaded.status().WithContext(dir);
  }
  // malloc_trim: the load's garbage (a module's unfrozen copy) goes back.
  ReleaseFreeMemory();
  const int64_t rss_delta = ProcessResidentBytes() - rss0;
  const double seconds = std::chrono::duration<double>(options_.clock->Now() - t0).count();
  std::shared_ptr<ModelVersion> version;
  if (loaded.ok()) version = Own(std::move(loaded).value(), job.model);
  const double warmup_s = version ? version->warmup_seconds() : 0;
  bool discarded = false, remeasured = false;
  std::vector<Completion> answer;
  {
    MutexLock l(&mu_);
    --loads_running_;
    Slot& slot = models_[job.model].versions[job.version];
    if (slot.load_gen != job.gen || !slot.loading || shut_down_) {
      // Unloaded while it loaded (its waiters were answered then).
      discarded = version != nullptr;
      RetireLocked(job.model, slot, std::move(version), nullptr);
    } else if (version && OverBudgetLocked(slot, Charge(*version, rss_delta))) {
      // Larger than its reservation, and the budget has no room for the
      // difference: not served; loaded again once there is room for what
      // it measured (the measurement is kept).
      slot.last_bytes = Charge(*version, rss_delta);
      slot.reserved = 0;
      remeasured = true;
      RetireLocked(job.model, slot, std::move(version), nullptr);
      if (Status st = ScheduleLoadLocked(job.model, job.version, slot); !st.ok()) {
        slot.loading = false;
        FailWaitersLocked(slot, st, &answer);
      }
    } else if (version) {
      slot.loading = false;
      slot.reserved = 0;
      slot.load_s = seconds;
      slot.rss_delta = rss_delta;
      slot.rss_exclusive = alone && loads_started_ == epoch;
      const int64_t charged = Charge(*version, rss_delta);
      slot.last_bytes = charged;
      // Before anyone sees it: its charge, its idle time from now, and the
      // wake-up of its last request's end (keep-alive 0, loads waiting for
      // memory), through the unloader's queue, which outlives no manager.
      ModelVersion::Usage& u = version->usage();
      u.charged.store(charged, std::memory_order_relaxed);
      // The coarse clock, as VersionLease::Release: one time line for the
      // least-recently-used order.
      u.last_use_ns.store(options_.clock->CoarseNow().time_since_epoch().count(),
                          std::memory_order_relaxed);
      u.notify_idle.store(KeepAliveOf(*config) == Duration::zero() || !deferred_.empty(),
                          std::memory_order_relaxed);
      std::weak_ptr<Unloader> unloader = unloader_;
      u.on_idle = [this, unloader] {
        if (auto q = unloader.lock()) q->Post([this] { OnIdle(); });
      };
      // A reload of a READY version: the switch is atomic (the next
      // Acquire gets the new one); the old one drains and unloads.
      RetireLocked(job.model, slot, std::move(slot.serving), "reload");
      slot.serving = version;
      if (slot.served) RetireUnservedLocked(job.model, models_[job.model]);
      life_cv_.Signal();  // its keep-alive starts
      for (Waiter& w : TakeWaitersLocked(slot))
        answer.push_back({std::move(w), VersionLease(version)});
      RetryDeferredLocked();  // the charge may be below the reservation
    } else {
      slot.loading = false;
      slot.reserved = 0;
      slot.failed = loaded.status();
      const std::string what = "model '" + job.model + "' version " + std::to_string(job.version);
      const std::string msg = what + " failed to load: " + loaded.status().message();
      for (Waiter& w : TakeWaitersLocked(slot)) {
        Status st = w.load_call ? FailedPreconditionError(msg) : UnavailableError(msg);
        answer.push_back({std::move(w), std::move(st)});
      }
      RetryDeferredLocked();
    }
    if (options_.on_load && !discarded && !remeasured)
      options_.on_load(job.model, loaded.ok(), seconds, warmup_s);
    settled_cv_.SignalAll();
  }
  if (discarded) {
    INFERD_LOG_INFO("model '{}' version {} loaded after it was unloaded: discarded", job.model,
                    job.version);
  } else if (remeasured) {
    INFERD_LOG_WARN(
        "model '{}' version {} measured more than its estimate and the memory budget has no room "
        "for it now: it loads again when there is",
        job.model, job.version);
  } else if (version) {
    INFERD_LOG_INFO(
        "model '{}' version {} ready in {:.3f} s ({} concurrent execution(s){}, max_batch_size "
        "{}; {} measured, resident memory {:+.1f} MiB)",
        job.model, job.version, seconds, version->concurrency(),
        version->shares_weights() ? " sharing one copy of the weights" : "", config->max_batch_size,
        MiB(version->usage().charged.load(std::memory_order_relaxed)),
        static_cast<double>(rss_delta) / (1024.0 * 1024.0));
  } else {
    INFERD_LOG_ERROR("model '{}' version {} is unavailable: {}", job.model, job.version,
                     loaded.status().message());
  }
  Complete(std::move(answer));
}

std::shared_ptr<ModelVersion> ModelManager::Own(std::unique_ptr<ModelVersion> mv,
                                                const std::string& name) {
  std::weak_ptr<Unloader> unloader = unloader_;
  return std::shared_ptr<ModelVersion>(mv.release(), [this, unloader, name](ModelVersion* p) {
    if (auto u = unloader.lock()) {
      const int64_t version = p->version();
      if (u->Post([this, p, name, version] {
            const int64_t bytes = p->usage().charged.load(std::memory_order_relaxed);
            delete p;
            ReleaseFreeMemory();
            Retired(name, version, bytes);
          })) {
        return;
      }
    }
    delete p;  // the manager is gone
  });
}

void ModelManager::Retired(const std::string& name, int64_t version, int64_t bytes) {
  MutexLock l(&mu_);
  auto m = models_.find(name);
  if (m == models_.end()) return;
  auto s = m->second.versions.find(version);
  if (s == m->second.versions.end() || s->second.retiring == 0) return;
  s->second.retiring_bytes = std::max<int64_t>(0, s->second.retiring_bytes - bytes);
  if (--s->second.retiring == 0) {
    s->second.retiring_bytes = 0;
    INFERD_LOG_INFO("model '{}' version {} unloaded", name, version);
  }
  settled_cv_.SignalAll();
  RetryDeferredLocked();
}

}  // namespace inferd
