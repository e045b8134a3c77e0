#pragma once
// ModelManager: the models of one repository and their lifecycle
// (docs/design-lifecycle.md). Create() registers every model; a version is
// loaded by a preload (--load-model), by Load() (POST .../load), or, under
// lazy control, by its first request; loads run on a pool of loader threads
// and concurrent first requests share one load. An unloaded version leaves
// serving at once, finishes the requests that hold it, and is destroyed on
// the unloader thread.
//
// A request holds a VersionLease on the version it runs on, taken under the
// manager's lock: an unload either happened before (the request waits for a
// new load, or is refused) or sees the version in use.
//
// Threading: every method is safe from any thread. Callbacks never run
// under the manager's lock.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/cancellation.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "model/backend.h"
#include "model/backend_loader.h"
#include "model/lifecycle_types.h"
#include "model/model_version.h"
#include "model/repository.h"
#include "model/unloader.h"
#include "model/version_lease.h"

namespace inferd {

// One row of the repository index.
struct ModelState {
  std::string name;
  int64_t version = 0;  // 0 when the model has no usable version
  VersionState state = VersionState::kUnavailable;
  Status reason;  // why it is not READY, if there is more to say than the state
  bool ready() const { return state == VersionState::kReady; }
};

// A request's model that is not loaded yet: what admission needs before
// the load (the registered config), and what WhenReady waits for.
struct PendingModel {
  std::string name;
  int64_t version = 0;
  std::shared_ptr<const ModelConfig> config;
};

// A version's memory and use, for GET /v2/memory/stats and the gauges.
struct VersionMemoryView {
  std::string name;
  int64_t version = 0;
  VersionState state = VersionState::kUnavailable;
  Status reason;
  int64_t bytes = 0;             // charged to the budget (reported, or the estimate while loading)
  bool estimated = false;        // loading: the reservation, not a measurement
  BackendMemory reported;        // the backend's measurement (READY)
  int64_t rss_delta_bytes = -1;  // resident memory change over the last load; -1: none
  bool rss_delta_exclusive = false;  // no other load overlapped it
  int64_t in_use = 0;                // requests holding it
  double idle_s = 0;                 // since its last request ended (READY)
  bool pinned = false;
  int64_t keep_alive_s = -1;  // effective; -1: never unloaded for idleness
  int concurrency = 0;
  bool shares_weights = false;
  double load_s = 0;    // the last load's duration, its warm-up included
  double warmup_s = 0;  // the last load's warm-up
  BufferPool::Stats buffers;
};

struct MemoryView {
  int64_t budget_bytes = 0;  // 0: none
  int64_t used_bytes = 0;
  int64_t deferred_loads = 0;               // loads waiting for memory
  std::vector<VersionMemoryView> versions;  // loaded, loading, unloading, or measured once
};

// What Acquire found: exactly one of the three holds.
struct Acquired {
  VersionLease lease;                   // READY: the request holds it
  std::optional<PendingModel> pending;  // loadable: WhenReady
  Status status;                        // not OK: the answer (404, 503)
};

class ModelManager {
 public:
  struct Options {
    std::string repository;  // DIR with <model>/config.toml
    // Backends built in (and test doubles); any other backend a model names
    // is a plugin, loaded from backend_directory when the first model that
    // needs it loads (BackendLoader).
    BackendRegistry backends;
    // Built-in model factories (looked up before `backends`; tests).
    std::map<std::string, BackendModelFactory> model_backends;
    std::string backend_directory;  // empty: "backends" beside the executable
    Clock* clock = nullptr;         // default: Clock::System()
    // Optional: gives each loaded version its batch observer (metrics).
    std::function<ModelVersion::BatchObserver(const std::string& model, int64_t version)>
        observer_for;
    // Threads of the one executor every model's batches run on; 0: one
    // per core.
    int executor_threads = 0;
    ModelControl control = ModelControl::kLazy;
    // Models loaded (every version) before Create returns, in parallel;
    // "*": all. An unknown name fails Create.
    std::vector<std::string> preload;
    int load_threads = 2;  // loads in parallel
    // The longest a request waits for its model to load (its own deadline
    // may be shorter).
    Duration load_wait = std::chrono::seconds(30);
    // Seconds a loaded version stays after its last request, for models
    // whose config sets no keep_alive_s (-1: forever; 0: unloads as soon
    // as idle). Lazy control only: explicit control never unloads by itself.
    int64_t keep_alive_s = 300;
    // Poll control: how often the repository is rescanned. A change is acted
    // on once two consecutive scans agree on it (a copy in progress is not
    // loaded half-written).
    Duration poll_interval = std::chrono::seconds(15);
    // Bytes the loaded versions may take together (what their backends
    // report, or an estimate while they load); 0: no budget. Under lazy
    // control a load past it first unloads the least recently used idle
    // versions, or waits for versions in use to become idle; under
    // explicit control it is refused.
    int64_t memory_budget = 0;
    // Optional observers (metrics), called under the manager's lock (they
    // must not call back): a load ended, a version left serving (reason:
    // "explicit", "idle", "evicted", "reload", "removed").
    std::function<void(const std::string& model, bool ok, double load_s, double warmup_s)> on_load;
    std::function<void(const std::string& model, const char* reason)> on_unload;
  };
  static StatusOr<std::unique_ptr<ModelManager>> Create(Options options);
  ~ModelManager();

  // The version a request for `name` (`version` empty: the highest READY
  // one, else the highest that has not failed) runs on. NotFound for an
  // unknown model or version; Unavailable for a model that failed, under
  // explicit control when not loaded, or while draining.
  Acquired Acquire(std::string_view name, std::string_view version) EXCLUDES(mu_);
  using ReadyCallback = std::function<void(StatusOr<VersionLease>)>;
  // Starts the load of `pending` (lazy control) or joins the one in
  // progress; `done` runs exactly once: with a lease when the version is
  // READY, DeadlineExceeded at min(deadline, now + load_wait), Cancelled
  // (the reason) when `cancel` fires, Unavailable when the load fails, the
  // version is unloaded meanwhile or too many requests wait for it
  // (max_queue_size). It runs on a loader thread, the lifecycle thread, the
  // cancelling thread, or inline.
  // `refused`, if given, is set before `done` runs when no wait was
  // possible: too many waiters, no room under the budget, shutting down.
  void WhenReady(const PendingModel& pending, Time deadline, std::shared_ptr<Cancellation> cancel,
                 ReadyCallback done, bool* refused = nullptr) EXCLUDES(mu_);

  // The READY version, without a lease and without loading: for views of
  // what is loaded (metrics, admin). Errors as Acquire's, plus Unavailable
  // when it is not loaded.
  StatusOr<std::shared_ptr<ModelVersion>> Get(std::string_view name, std::string_view version)
      EXCLUDES(mu_);
  // The registered config of a model, loaded or not; `version` (optional)
  // must exist.
  StatusOr<std::shared_ptr<const ModelConfig>> Config(std::string_view name,
                                                      std::string_view version) EXCLUDES(mu_);
  // The versions of a model that its version policy serves (or that still
  // serve), whatever their state.
  std::vector<int64_t> Versions(std::string_view name) EXCLUDES(mu_);
  // OK when the version a request would get is READY; else why not.
  Status Ready(std::string_view name, std::string_view version) EXCLUDES(mu_);

  // Loads every version of `name` that is not READY (a FAILED one again);
  // `done` runs once all have settled: OK, or FailedPrecondition naming the
  // first failure, NotFound, Unavailable (shutting down, or the model was
  // unloaded before the call ran). Never blocks: the rescan of the model's
  // directory and the hashing of its files (seconds for large models) run
  // on the load-call thread, never behind a model load. `done` runs on
  // that thread, a loader thread, or the thread that drains, unloads or
  // shuts down.
  void Load(std::string_view name, std::function<void(Status)> done) EXCLUDES(mu_);
  // Every version of `name` leaves serving (UNLOADING until its last
  // request ends and it is destroyed); a load in progress is discarded and
  // its waiters answered Unavailable.
  Status Unload(std::string_view name) EXCLUDES(mu_);

  // One row per model version (or per model when no version could be found).
  std::vector<ModelState> List() EXCLUDES(mu_);
  // Memory of every version that holds or held some, and the budget.
  MemoryView Memory() EXCLUDES(mu_);
  // Waits (real time, at most `timeout`) until `version` of `name` is in
  // `state`; false on timeout. For tests and tools that must see a load or
  // an unload finish.
  bool AwaitState(std::string_view name, int64_t version, VersionState state, Duration timeout)
      EXCLUDES(mu_);
  // True from Create() until BeginDrain(); a model that failed to load does
  // not make the server unready (it is reported per model).
  bool IsServing() EXCLUDES(mu_);
  // Makes every batcher dispatch without waiting for its queue delay, so a
  // drain is not held up by partly filled batches; no new loads start.
  void BeginDrain() EXCLUDES(mu_);
  ModelControl control() const { return options_.control; }
  // Rescans done under poll control (tests wait on it).
  int64_t polls_done() const { return polls_done_.load(std::memory_order_acquire); }
  int executor_threads() const { return executor_->threads(); }
  // Backend plugins loaded so far.
  std::vector<std::string> LoadedBackends() { return loader_.Loaded(); }
  // Answers waiting requests, drains every model's queue and waits for
  // running batches; Acquire fails afterwards.
  void Shutdown() EXCLUDES(mu_);

 private:
  struct Waiter {
    std::string model;
    int64_t version = 0;
    ReadyCallback done;
    std::shared_ptr<Cancellation> cancel;
    uint64_t cancel_id = 0;
    bool load_call = false;  // Load()'s, not a request's
    std::multimap<Time, uint64_t>::iterator deadline;
  };
  struct Slot {
    std::string dir;
    bool present = true;  // its directory exists (as of the last scan)
    bool served = true;   // in the model's version_policy set
    std::shared_ptr<ModelVersion> serving;
    bool loading = false;
    uint64_t load_gen = 0;  // a load completes only while it still matches
    Status failed;          // the last load's error, until the next load
    int retiring = 0;       // unloaded objects not yet destroyed
    std::vector<uint64_t> waiters;
    // The memory budget: a LOADING version's reservation (0 while it waits
    // for memory, `deferred`), and what unloaded objects are charged until
    // destroyed.
    int64_t reserved = 0;
    bool deferred = false;
    int64_t retiring_bytes = 0;
    // The last load's figures (kept after an unload: the next load's
    // estimate and the memory view).
    int64_t last_bytes = 0;  // 0: never measured
    double load_s = 0;
    int64_t rss_delta = -1;
    bool rss_exclusive = false;
  };
  struct Model {
    bool removed = false;  // its directory went away (poll): unknown to requests
    Status rescan_error;   // the last rescan's invalid config (what serves goes on)
    RepositoryEntry entry;
    std::shared_ptr<const ModelConfig> config;  // null when entry.status is not OK
    std::map<int64_t, Slot> versions;
  };
  struct LoadJob {
    std::string model;
    int64_t version = 0;
    uint64_t gen = 0;
  };
  // A Load() call waiting for a loader thread to rescan its model.
  struct LoadCall {
    std::string model;
    std::function<void(Status)> done;
  };
  // A waiter taken out of the manager, and what to tell it.
  struct Completion {
    Waiter waiter;
    StatusOr<VersionLease> result;
  };

  explicit ModelManager(Options options)
      : options_(std::move(options)), loader_(options_.backend_directory) {}
  static VersionState StateOf(const Slot& slot);
  // The factory of `backend`: built in, else its plugin's.
  StatusOr<BackendModelFactory> Factory(const std::string& backend);
  void Register(std::vector<RepositoryEntry> entries) EXCLUDES(mu_);
  Status Preload() EXCLUDES(mu_);
  // A request's model and version, resolved.
  struct Resolved {
    const std::string* name = nullptr;
    Model* model = nullptr;
    int64_t version = 0;
    Slot* slot = nullptr;
  };
  Status FindLocked(std::string_view name, std::string_view version, Resolved* out) REQUIRES(mu_);
  // The slot a request for `version` of `m` resolves to.
  Status ResolveLocked(const std::string& name, Model& m, std::string_view version, int64_t* v,
                       Slot** slot) REQUIRES(mu_);
  Status NotReadyLocked(const std::string& name, int64_t v, const Slot& slot) REQUIRES(mu_);
  // Marks which present versions the model's version_policy serves.
  static void ApplyPolicyLocked(Model& m);
  // Once a version of the served set is READY, the READY versions outside
  // it leave (a reload's switch).
  void RetireUnservedLocked(const std::string& name, Model& m) REQUIRES(mu_);
  // Why `slot` (not READY) does not serve, for Ready and Get.
  Status NotServingLocked(const std::string& name, int64_t v, const Slot& slot) REQUIRES(mu_);
  // Marks `slot` LOADING and starts its load, at once or once the budget
  // has room; an error (no room) leaves it as it was.
  Status StartLoadLocked(const std::string& name, int64_t v, Slot& slot) REQUIRES(mu_);
  // The budget's decision for a LOADING slot not yet started: start (post
  // the job), wait (deferred), evict then wait, or refuse.
  Status ScheduleLoadLocked(const std::string& name, int64_t v, Slot& slot) REQUIRES(mu_);
  // Starts deferred loads that now fit, first come first served.
  void RetryDeferredLocked() REQUIRES(mu_);
  // Moves `slot`'s serving version out (UNLOADING until destroyed); the
  // unloader flushes its partial batches and drops the manager's reference,
  // so no reference drops under the lock. `reason` null: never served.
  void RetireLocked(const std::string& name, Slot& slot, std::shared_ptr<ModelVersion> mv,
                    const char* reason) REQUIRES(mu_);
  int64_t UsedLocked() const REQUIRES(mu_);
  // What the budget charges a loaded version: what its backend reports,
  // else the resident memory its load added.
  static int64_t Charge(const ModelVersion& mv, int64_t rss_delta);
  // True when serving a version of `charge` bytes in place of `slot`'s
  // reservation would exceed the budget.
  bool OverBudgetLocked(const Slot& slot, int64_t charge) const REQUIRES(mu_);
  int64_t EstimateLocked(const Slot& slot) const REQUIRES(mu_);
  // A version's request ended and it is idle: deferred loads may fit now.
  void OnIdle() EXCLUDES(mu_);
  uint64_t AddWaiterLocked(Slot& slot, Waiter w, Time deadline) REQUIRES(mu_);
  std::optional<Waiter> TakeWaiterLocked(uint64_t id) REQUIRES(mu_);
  // Removes every waiter of `slot` (to be answered outside the lock).
  std::vector<Waiter> TakeWaitersLocked(Slot& slot) REQUIRES(mu_);
  // Stops `slot`'s load in progress, if any (discarded when it ends), and
  // answers its waiters with `error`.
  void AbandonLoadLocked(Slot& slot, const Status& error, std::vector<Completion>* out)
      REQUIRES(mu_);
  // Answers (outside the lock) every waiter of `slot` with `error`.
  void FailWaitersLocked(Slot& slot, const Status& error, std::vector<Completion>* out)
      REQUIRES(mu_);
  static void Complete(std::vector<Completion> done);
  void CancelWaiter(uint64_t id, Status reason) EXCLUDES(mu_);
  // The loader threads, the lifecycle thread (deadlines), the load itself.
  void LoaderLoop() EXCLUDES(mu_);
  void LifecycleLoop() EXCLUDES(mu_);
  void RunLoad(const LoadJob& job) EXCLUDES(mu_);
  // Owns a loaded version: its last reference, wherever it drops, destroys
  // it on the unloader thread and then calls Retired.
  std::shared_ptr<ModelVersion> Own(std::unique_ptr<ModelVersion> mv, const std::string& name);
  void Retired(const std::string& name, int64_t version, int64_t bytes) EXCLUDES(mu_);
  void StopThreads() EXCLUDES(mu_);
  // The keep-alive of a model's loaded versions; Duration::max(): forever.
  Duration KeepAliveOf(const ModelConfig& config) const;
  // Unloads the READY versions idle past their keep-alive; returns when
  // the next may expire.
  Time ExpireIdleLocked(Time now) REQUIRES(mu_);

  const Options options_;
  // Declared before the models: destroyed after every version it serves.
  std::unique_ptr<Executor> executor_;
  BackendLoader loader_;
  std::shared_ptr<Unloader> unloader_;
  Mutex mu_;
  CondVar work_cv_;     // loader threads: a job, or stop
  CondVar calls_cv_;    // the load-call thread: a call, or stop
  CondVar settled_cv_;  // a load ended, or a load call started its loads
  CondVar life_cv_;     // the lifecycle thread: an earlier deadline, or stop
  std::map<std::string, Model, std::less<>> models_ GUARDED_BY(mu_);
  std::deque<LoadJob> jobs_ GUARDED_BY(mu_);
  std::deque<LoadCall> load_calls_ GUARDED_BY(mu_);  // before jobs_
  std::map<uint64_t, Waiter> waiters_ GUARDED_BY(mu_);
  std::multimap<Time, uint64_t> deadlines_ GUARDED_BY(mu_);
  uint64_t next_waiter_ GUARDED_BY(mu_) = 1;
  std::deque<std::pair<std::string, int64_t>> deferred_ GUARDED_BY(mu_);
  int64_t loads_started_ GUARDED_BY(mu_) = 0;
  int loads_running_ GUARDED_BY(mu_) = 0;
  bool shut_down_ GUARDED_BY(mu_) = false;
  bool draining_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  // Poll control (the lifecycle thread only): each model directory's
  // signature at the last scan, and the one last acted on.
  void PollOnce() EXCLUDES(mu_);
  // Re-reads a model's config and versions without loading anything.
  void Rescan(const std::string& name) EXCLUDES(mu_);
  // Load()'s work, on the load-call thread: rescan, hash, start the loads.
  void LoadCallLoop() EXCLUDES(mu_);
  void RunLoadCall(const std::string& name, std::function<void(Status)> done) EXCLUDES(mu_);
  // Takes the queued load calls (of `model`, or all when empty), to answer.
  std::deque<LoadCall> TakeLoadCallsLocked(std::string_view model) REQUIRES(mu_);
  Model& UpdateRegistrationLocked(const std::string& name, RepositoryEntry entry) REQUIRES(mu_);
  void RemoveModel(const std::string& name) EXCLUDES(mu_);
  std::map<std::string, std::string> poll_seen_, poll_acted_;
  std::atomic<int64_t> polls_done_{0};
  Time next_poll_ GUARDED_BY(mu_) = Time::max();
  std::vector<std::thread> loaders_;
  std::thread load_calls_thread_;
  std::thread lifecycle_;
};

}  // namespace inferd
