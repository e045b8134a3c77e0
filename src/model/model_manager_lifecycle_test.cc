// ModelManager's lifecycle with a fake backend whose loads can be held at a
// gate and counted, and an injected clock for deadlines: lazy loads shared
// by concurrent first requests, deadlines and cancellation while loading,
// failed loads, explicit control, unloading with queued work, shutdown.
// Nothing waits on time: the gates hold loads and executions, and the
// guard below only turns a hang into a failure.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "model/model_manager.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
constexpr auto kGuard = std::chrono::seconds(30);

// A gate that holds whoever passes while closed, and counts them.
class Gate {
 public:
  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = false;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> l(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void Pass() {
    std::unique_lock<std::mutex> l(mu_);
    ++passed_;
    ++held_;
    cv_.notify_all();
    cv_.wait(l, [&] { return open_; });
    --held_;
  }
  bool WaitHeld(int n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, kGuard, [&] { return held_ >= n; });
  }
  int passed() {
    std::lock_guard<std::mutex> l(mu_);
    return passed_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int held_ = 0;
  int passed_ = 0;
};

struct FakeBackend {
  Gate load;     // each instance's creation passes it
  Gate execute;  // each execution passes it
  std::atomic<int> destroyed{0};
  std::mutex mu;
  std::thread::id destroyed_on;

  class Instance : public BackendInstance {
   public:
    explicit Instance(FakeBackend* b) : b_(b) {}
    ~Instance() override {
      std::lock_guard<std::mutex> l(b_->mu);
      b_->destroyed_on = std::this_thread::get_id();
      b_->destroyed.fetch_add(1);
    }
    StatusOr<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
      b_->execute.Pass();
      return inputs;
    }

   private:
    FakeBackend* b_;
  };
  BackendRegistry Registry() {
    BackendRegistry r;
    r["fake"] = [this](const BackendInstanceSpec&) -> StatusOr<std::unique_ptr<BackendInstance>> {
      load.Pass();
      return std::unique_ptr<BackendInstance>(new Instance(this));
    };
    r["broken"] = [](const BackendInstanceSpec&) -> StatusOr<std::unique_ptr<BackendInstance>> {
      return InternalError("cannot load weights");
    };
    return r;
  }
};

constexpr char kConfig[] = R"(backend = "fake"
max_batch_size = 0
max_queue_size = 64
[[input]]
name = "x"
datatype = "FP32"
dims = [2]
[[output]]
name = "x"
datatype = "FP32"
dims = [2]
[version_policy]
policy = "all"
)";

std::unique_ptr<Task> MakeTask(std::function<void(const Status&)> done) {
  std::vector<Tensor> in = {Tensor::FromBytes(DataType::kFp32, {2}, std::string(8, '\0'))};
  return std::make_unique<Task>(
      std::move(in), 1, "",
      [done](StatusOr<std::vector<Tensor>> r, const TaskTimings&) { done(r.status()); });
}

// Collects one WhenReady answer.
struct Answer {
  std::promise<StatusOr<VersionLease>> promise;
  std::future<StatusOr<VersionLease>> future = promise.get_future();
  ModelManager::ReadyCallback callback() {
    return [this](StatusOr<VersionLease> r) { promise.set_value(std::move(r)); };
  }
  StatusOr<VersionLease> Get() {
    if (future.wait_for(kGuard) != std::future_status::ready) return InternalError("no answer");
    return future.get();
  }
  bool ready() { return future.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }
};

// Load()'s answer, kept alive by the callback (a failed ASSERT must not
// leave a loader thread writing into a destroyed promise).
struct LoadAnswer {
  std::shared_ptr<std::promise<Status>> promise = std::make_shared<std::promise<Status>>();
  std::future<Status> future = promise->get_future();
  std::function<void(Status)> callback() const {
    return [p = promise](Status st) { p->set_value(std::move(st)); };
  }
  bool ready() { return future.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }
};

class ModelLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/inferd_lifecycle_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    repo_ = tmpl;
    Write("m", kConfig, {1, 2});
    std::string broken = kConfig;
    broken.replace(broken.find("fake"), 4, "broken");
    Write("b", broken, {1});
    std::string small = kConfig;
    small.replace(small.find("max_queue_size = 64"), 19, "max_queue_size = 2");
    Write("small", small, {1});
    Write("sync", kConfig, {1});
    Write("zero", "keep_alive_s = 0\n" + std::string(kConfig), {1});
    Write("forever", "keep_alive_s = -1\n" + std::string(kConfig), {1});
    Write("pinned", "pin = true\n" + std::string(kConfig), {1});
  }
  void TearDown() override {
    backend_.load.Open();
    backend_.execute.Open();
    mm_.reset();
    std::error_code ec;
    fs::remove_all(repo_, ec);
  }
  void Write(const std::string& name, const std::string& config, std::vector<int> versions) {
    fs::create_directories(repo_ / name);
    std::ofstream(repo_ / name / "config.toml") << config;
    for (int v : versions) fs::create_directories(repo_ / name / std::to_string(v));
  }
  ModelManager& Create(ModelControl control = ModelControl::kLazy,
                       std::vector<std::string> preload = {}) {
    ModelManager::Options o;
    o.repository = repo_.string();
    o.backends = backend_.Registry();
    o.clock = &clock_;
    o.executor_threads = 2;
    o.control = control;
    o.preload = std::move(preload);
    o.load_wait = std::chrono::seconds(60);
    auto mm = ModelManager::Create(std::move(o));
    EXPECT_TRUE(mm.ok()) << mm.status().message();
    mm_ = std::move(mm).value();
    return *mm_;
  }
  // Moves the clock by `d` and returns once the lifecycle thread has made a
  // pass at the new time: the pass that answers a waiter whose deadline is
  // the new time also unloads what is idle by then. The waiter waits for
  // model "sync", whose load is held at the gate (so loads stay held).
  void AdvanceAndSync(Duration d) {
    backend_.load.Close();
    Answer a;
    mm_->WhenReady(Pending("sync"), clock_.Now() + d, nullptr, a.callback());
    clock_.Advance(d);
    ASSERT_EQ(a.Get().status().code(), StatusCode::kDeadlineExceeded);
  }
  // Loads "m", whose two versions then hold both loader threads at the
  // closed gate (true once they do).
  bool HoldBothLoaders(LoadAnswer& m) {
    backend_.load.Close();
    mm_->Load("m", m.callback());
    return backend_.load.WaitHeld(2);
  }
  VersionState StateOf(const std::string& name, int64_t version) {
    for (const ModelState& s : mm_->List()) {
      if (s.name == name && s.version == version) return s.state;
    }
    return VersionState::kFailed;
  }
  PendingModel Pending(const std::string& name, const std::string& version = "") {
    Acquired a = mm_->Acquire(name, version);
    EXPECT_TRUE(a.status.ok()) << a.status.message();
    EXPECT_FALSE(a.lease);
    EXPECT_TRUE(a.pending.has_value());
    return a.pending.value_or(PendingModel{});
  }

  fs::path repo_;
  FakeBackend backend_;
  FakeClock clock_;
  std::unique_ptr<ModelManager> mm_;
};

TEST_F(ModelLifecycleTest, ModelsAreRegisteredNotLoadedAndReadingMetadataLoadsNothing) {
  ModelManager& mm = Create();
  EXPECT_EQ(StateOf("m", 1), VersionState::kUnavailable);
  EXPECT_EQ(StateOf("m", 2), VersionState::kUnavailable);
  ASSERT_TRUE(mm.Config("m", "").ok());
  EXPECT_EQ(mm.Versions("m"), (std::vector<int64_t>{1, 2}));
  Status ready = mm.Ready("m", "");
  EXPECT_EQ(ready.code(), StatusCode::kUnavailable);
  EXPECT_NE(ready.message().find("loads on its first inference request"), std::string::npos)
      << ready.message();
  EXPECT_EQ(mm.Get("m", "").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(backend_.load.passed(), 0);
  // The default version of a cold model is the highest.
  EXPECT_EQ(Pending("m").version, 2);
  EXPECT_EQ(Pending("m", "1").version, 1);
  EXPECT_EQ(mm.Acquire("m", "7").status.code(), StatusCode::kNotFound);
  EXPECT_EQ(mm.Acquire("nope", "").status.code(), StatusCode::kNotFound);
  EXPECT_EQ(backend_.load.passed(), 0);
}

TEST_F(ModelLifecycleTest, ConcurrentFirstRequestsShareOneLoad) {
  ModelManager& mm = Create();
  backend_.load.Close();
  PendingModel p = Pending("m");
  std::vector<std::unique_ptr<Answer>> answers;
  std::vector<std::thread> threads;
  for (int i = 0; i < 32; ++i) answers.push_back(std::make_unique<Answer>());
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] {
      mm.WhenReady(p, Time::max(), nullptr, answers[static_cast<size_t>(i)]->callback());
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(backend_.load.WaitHeld(1));
  EXPECT_EQ(StateOf("m", 2), VersionState::kLoading);
  for (auto& a : answers) EXPECT_FALSE(a->ready());
  backend_.load.Open();
  std::vector<VersionLease> leases;
  for (auto& a : answers) {
    auto lease = a->Get();
    ASSERT_TRUE(lease.ok()) << lease.status().message();
    EXPECT_EQ((*lease)->version(), 2);
    leases.push_back(std::move(lease).value());
  }
  EXPECT_EQ(backend_.load.passed(), 1);  // one instance, loaded once
  EXPECT_EQ(StateOf("m", 2), VersionState::kReady);
  EXPECT_EQ(StateOf("m", 1), VersionState::kUnavailable);
  Acquired warm = mm.Acquire("m", "");
  ASSERT_TRUE(warm.lease);
  EXPECT_EQ(warm.lease->usage().leases.load(), 33);
  leases.clear();
  EXPECT_EQ(warm.lease->usage().leases.load(), 1);
}

TEST_F(ModelLifecycleTest, LeasesCountUseAndRecordTheLastUse) {
  ModelManager& mm = Create(ModelControl::kLazy, {"m"});
  Acquired a = mm.Acquire("m", "2");
  ASSERT_TRUE(a.lease);
  ModelVersion::Usage& u = a.lease->usage();
  EXPECT_EQ(u.leases.load(), 1);
  clock_.Advance(std::chrono::seconds(5));
  VersionLease moved = std::move(a.lease);
  EXPECT_FALSE(a.lease);
  EXPECT_EQ(u.leases.load(), 1);
  moved.Release();
  moved.Release();  // idempotent
  EXPECT_EQ(u.leases.load(), 0);
  EXPECT_EQ(u.last_use_ns.load(), clock_.Now().time_since_epoch().count());
}

TEST_F(ModelLifecycleTest, ADeadlineThatPassesWhileLoadingAnswers504AndTheLoadGoesOn) {
  ModelManager& mm = Create();
  backend_.load.Close();
  Answer late;
  mm.WhenReady(Pending("m"), clock_.Now() + std::chrono::seconds(1), nullptr, late.callback());
  ASSERT_TRUE(backend_.load.WaitHeld(1));
  EXPECT_FALSE(late.ready());
  clock_.Advance(std::chrono::seconds(2));
  auto r = late.Get();
  ASSERT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(r.status().message().find("while model 'm' was loading"), std::string::npos);
  backend_.load.Open();
  ASSERT_TRUE(mm.AwaitState("m", 2, VersionState::kReady, kGuard));
}

TEST_F(ModelLifecycleTest, TheServerWideLoadWaitCapsTheDeadline) {
  ModelManager& mm = Create();
  backend_.load.Close();
  Answer capped;
  mm.WhenReady(Pending("m"), Time::max(), nullptr, capped.callback());
  clock_.Advance(std::chrono::seconds(59));
  EXPECT_FALSE(capped.ready());
  clock_.Advance(std::chrono::seconds(2));
  EXPECT_EQ(capped.Get().status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(ModelLifecycleTest, ACancelledWaiterIsAnsweredOnceAndRemoved) {
  ModelManager& mm = Create();
  backend_.load.Close();
  auto cancel = std::make_shared<Cancellation>();
  std::atomic<int> calls{0};
  Status got;
  mm.WhenReady(Pending("m"), Time::max(), cancel, [&](StatusOr<VersionLease> r) {
    calls.fetch_add(1);
    got = r.status();
  });
  ASSERT_TRUE(backend_.load.WaitHeld(1));
  cancel->Cancel(CancelledError("the client closed the connection"));
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(got.code(), StatusCode::kCancelled);
  // Already cancelled: answered at once.
  mm.WhenReady(Pending("m"), Time::max(), cancel,
               [&](StatusOr<VersionLease> r) { calls.fetch_add(r.ok() ? 100 : 1); });
  EXPECT_EQ(calls.load(), 2);
  backend_.load.Open();
  ASSERT_TRUE(mm.AwaitState("m", 2, VersionState::kReady, kGuard));
  EXPECT_EQ(calls.load(), 2);
}

TEST_F(ModelLifecycleTest, WaitersBeyondMaxQueueSizeAreRefused) {
  ModelManager& mm = Create();
  backend_.load.Close();
  Answer a, b, c;
  PendingModel p = Pending("small");
  mm.WhenReady(p, Time::max(), nullptr, a.callback());
  mm.WhenReady(p, Time::max(), nullptr, b.callback());
  mm.WhenReady(p, Time::max(), nullptr, c.callback());
  auto refused = c.Get();
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("max_queue_size 2"), std::string::npos);
  backend_.load.Open();
  EXPECT_TRUE(a.Get().ok());
  EXPECT_TRUE(b.Get().ok());
}

TEST_F(ModelLifecycleTest, AFailedLoadIsStickyUntilAnExplicitLoad) {
  ModelManager& mm = Create();
  Answer first;
  mm.WhenReady(Pending("b"), Time::max(), nullptr, first.callback());
  auto r = first.Get();
  ASSERT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("cannot load weights"), std::string::npos);
  EXPECT_EQ(StateOf("b", 1), VersionState::kFailed);
  Acquired again = mm.Acquire("b", "");
  EXPECT_EQ(again.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(again.status.message().find("failed to load: "), std::string::npos);
  std::promise<Status> loaded;
  mm.Load("b", [&](Status st) { loaded.set_value(st); });
  Status st = loaded.get_future().get();
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("cannot load weights"), std::string::npos);
}

TEST_F(ModelLifecycleTest, ExplicitControlLoadsOnlyOnRequest) {
  ModelManager& mm = Create(ModelControl::kExplicit);
  Acquired cold = mm.Acquire("m", "");
  EXPECT_EQ(cold.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(cold.status.message().find("POST /v2/repository/models/m/load"), std::string::npos);
  std::promise<Status> loaded;
  mm.Load("m", [&](Status st) { loaded.set_value(st); });
  ASSERT_TRUE(loaded.get_future().get().ok());
  EXPECT_EQ(StateOf("m", 1), VersionState::kReady);
  EXPECT_EQ(StateOf("m", 2), VersionState::kReady);
  EXPECT_TRUE(mm.Acquire("m", "").lease);
  std::promise<Status> unknown;
  mm.Load("nope", [&](Status st) { unknown.set_value(st); });
  EXPECT_EQ(unknown.get_future().get().code(), StatusCode::kNotFound);
}

TEST_F(ModelLifecycleTest, PreloadingAnUnknownModelFailsCreate) {
  ModelManager::Options o;
  o.repository = repo_.string();
  o.backends = backend_.Registry();
  o.preload = {"m", "nope"};
  auto mm = ModelManager::Create(std::move(o));
  ASSERT_FALSE(mm.ok());
  EXPECT_EQ(mm.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mm.status().message().find("'nope'"), std::string::npos);
}

TEST_F(ModelLifecycleTest, UnloadingWithQueuedWorkFinishesItThenDestroysOnTheUnloader) {
  ModelManager& mm = Create(ModelControl::kLazy, {"m"});
  Acquired a = mm.Acquire("m", "2");
  ASSERT_TRUE(a.lease);
  backend_.execute.Close();
  std::atomic<int> ok{0}, failed{0};
  for (int i = 0; i < 4; ++i) {
    auto t = MakeTask([&](const Status& st) { (st.ok() ? ok : failed).fetch_add(1); });
    ASSERT_TRUE(a.lease->Submit(t).ok());
  }
  ASSERT_TRUE(backend_.execute.WaitHeld(1));
  ASSERT_TRUE(mm.Unload("m").ok());
  EXPECT_EQ(StateOf("m", 2), VersionState::kUnloading);
  EXPECT_EQ(mm.Get("m", "2").status().code(), StatusCode::kUnavailable);
  // A new request does not get the leaving version: it waits for a new load.
  Acquired next = mm.Acquire("m", "2");
  EXPECT_FALSE(next.lease);
  EXPECT_TRUE(next.pending.has_value());
  backend_.execute.Open();
  a.lease.Release();
  ASSERT_TRUE(mm.AwaitState("m", 2, VersionState::kUnavailable, kGuard));
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(failed.load(), 0);
  std::lock_guard<std::mutex> l(backend_.mu);
  EXPECT_GE(backend_.destroyed.load(), 1);
  EXPECT_NE(backend_.destroyed_on, std::this_thread::get_id());
}

TEST_F(ModelLifecycleTest, UnloadingDuringALoadAnswersItsWaitersAndDiscardsIt) {
  ModelManager& mm = Create();
  backend_.load.Close();
  Answer waiting;
  mm.WhenReady(Pending("m"), Time::max(), nullptr, waiting.callback());
  ASSERT_TRUE(backend_.load.WaitHeld(1));
  ASSERT_TRUE(mm.Unload("m").ok());
  auto r = waiting.Get();
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("unloaded while it loaded"), std::string::npos);
  backend_.load.Open();
  // The discarded version is destroyed; the next request loads afresh.
  ASSERT_TRUE(mm.AwaitState("m", 2, VersionState::kUnavailable, kGuard));
  Answer fresh;
  mm.WhenReady(Pending("m"), Time::max(), nullptr, fresh.callback());
  EXPECT_TRUE(fresh.Get().ok());
}

TEST_F(ModelLifecycleTest, ShutdownAnswersWaitersAndRefusesNewRequests) {
  ModelManager& mm = Create();
  backend_.load.Close();
  Answer waiting;
  mm.WhenReady(Pending("m"), Time::max(), nullptr, waiting.callback());
  ASSERT_TRUE(backend_.load.WaitHeld(1));
  mm.BeginDrain();
  EXPECT_EQ(mm.Acquire("m", "1").status.code(), StatusCode::kUnavailable);
  mm.Shutdown();
  auto r = waiting.Get();
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("shutting down"), std::string::npos);
  EXPECT_EQ(mm.Acquire("m", "").status.code(), StatusCode::kUnavailable);
  backend_.load.Open();  // the load in progress ends and is discarded
}

TEST_F(ModelLifecycleTest, AnIdleVersionUnloadsAfterItsKeepAlive) {
  ModelManager& mm = Create(ModelControl::kLazy, {"m", "forever", "pinned"});
  AdvanceAndSync(std::chrono::seconds(299));
  EXPECT_EQ(StateOf("m", 2), VersionState::kReady);
  AdvanceAndSync(std::chrono::seconds(2));
  ASSERT_TRUE(mm.AwaitState("m", 2, VersionState::kUnavailable, kGuard));
  EXPECT_TRUE(mm.AwaitState("m", 1, VersionState::kUnavailable, kGuard));
  // keep_alive_s = -1 and pin = true stay.
  AdvanceAndSync(std::chrono::hours(24 * 365));
  EXPECT_EQ(StateOf("forever", 1), VersionState::kReady);
  EXPECT_EQ(StateOf("pinned", 1), VersionState::kReady);
}

TEST_F(ModelLifecycleTest, AVersionInUseAtItsExpiryStaysAndItsIdleTimeRestarts) {
  ModelManager& mm = Create(ModelControl::kLazy, {"m"});
  Acquired held = mm.Acquire("m", "2");
  ASSERT_TRUE(held.lease);
  AdvanceAndSync(std::chrono::seconds(301));
  EXPECT_EQ(StateOf("m", 2), VersionState::kReady);  // in use
  held.lease.Release();                              // its last use: now
  AdvanceAndSync(std::chrono::seconds(299));
  EXPECT_EQ(StateOf("m", 2), VersionState::kReady);
  AdvanceAndSync(std::chrono::seconds(2));
  ASSERT_TRUE(mm.AwaitState("m", 2, VersionState::kUnavailable, kGuard));
}

TEST_F(ModelLifecycleTest, KeepAliveZeroUnloadsWhenTheLastRequestEnds) {
  ModelManager& mm = Create();
  // Loaded by its first request, which holds it from the moment it is READY.
  Answer first;
  mm.WhenReady(Pending("zero"), Time::max(), nullptr, first.callback());
  auto held = first.Get();
  ASSERT_TRUE(held.ok()) << held.status().message();
  Acquired second = mm.Acquire("zero", "");
  ASSERT_TRUE(second.lease);
  held->Release();
  EXPECT_EQ(StateOf("zero", 1), VersionState::kReady);  // still in use
  second.lease.Release();  // no clock movement: the release wakes the lifecycle thread
  ASSERT_TRUE(mm.AwaitState("zero", 1, VersionState::kUnavailable, kGuard));
}

// Load() only queues the call, and the rescan and hashing run on the
// load-call thread, never behind a model load: with every loader busy, a
// call for an unknown model is answered and a new load is registered.
TEST_F(ModelLifecycleTest, LoadCallsAreAnsweredWhileEveryLoaderIsBusy) {
  ModelManager& mm = Create(ModelControl::kExplicit);
  LoadAnswer m, nope, sync;
  ASSERT_TRUE(HoldBothLoaders(m));
  mm.Load("nope", nope.callback());
  ASSERT_EQ(nope.future.wait_for(kGuard), std::future_status::ready);
  EXPECT_EQ(nope.future.get().code(), StatusCode::kNotFound);
  mm.Load("sync", sync.callback());
  ASSERT_TRUE(mm.AwaitState("sync", 1, VersionState::kLoading, kGuard));
  EXPECT_FALSE(sync.ready());  // its load waits for a loader
  backend_.load.Open();
  ASSERT_EQ(m.future.wait_for(kGuard), std::future_status::ready);
  EXPECT_TRUE(m.future.get().ok());
  ASSERT_EQ(sync.future.wait_for(kGuard), std::future_status::ready);
  EXPECT_TRUE(sync.future.get().ok());
  EXPECT_EQ(StateOf("sync", 1), VersionState::kReady);
}

// Shutdown answers the load calls whose loads have not finished.
TEST_F(ModelLifecycleTest, ShutdownAnswersLoadCallsInProgress) {
  ModelManager& mm = Create(ModelControl::kExplicit);
  LoadAnswer m, sync;
  ASSERT_TRUE(HoldBothLoaders(m));
  mm.Load("sync", sync.callback());
  ASSERT_TRUE(mm.AwaitState("sync", 1, VersionState::kLoading, kGuard));
  mm.Shutdown();
  ASSERT_EQ(sync.future.wait_for(kGuard), std::future_status::ready);
  Status st = sync.future.get();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.message();
  ASSERT_EQ(m.future.wait_for(kGuard), std::future_status::ready);
  EXPECT_EQ(m.future.get().code(), StatusCode::kUnavailable);
  mm.Load("sync", [](Status st) { EXPECT_EQ(st.code(), StatusCode::kUnavailable); });
  backend_.load.Open();
}

TEST_F(ModelLifecycleTest, ExplicitControlNeverUnloadsByItself) {
  ModelManager& mm = Create(ModelControl::kExplicit, {"m", "zero"});
  Acquired held = mm.Acquire("zero", "");
  ASSERT_TRUE(held.lease);
  held.lease.Release();
  std::promise<Status> loaded;  // "sync" must be loading for AdvanceAndSync
  backend_.load.Close();
  mm.Load("sync", [&](Status st) { loaded.set_value(st); });
  // Load() rescans on a loader thread: wait until it started the load.
  ASSERT_TRUE(mm.AwaitState("sync", 1, VersionState::kLoading, std::chrono::seconds(60)));
  AdvanceAndSync(std::chrono::hours(1));
  EXPECT_EQ(StateOf("m", 2), VersionState::kReady);
  EXPECT_EQ(StateOf("zero", 1), VersionState::kReady);
  backend_.load.Open();
  EXPECT_TRUE(loaded.get_future().get().ok());
}

}  // namespace
}  // namespace inferd
