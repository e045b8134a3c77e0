// Tests of the pipeline's cache stage (DESIGN.md section 1, steps 2 and 6)
// with a fake backend and a FakeClock: lookups, the canonical key,
// Cache-Control, TTLs, coalescing, errors, waiter deadlines, stale-if-error.
//
// Deterministic: no sleeps. Requests are held in flight by a gate in the fake
// backend that the test opens; time moves only through FakeClock::Advance.
// Real-time waits exist only as generous guards that turn a hang into a
// failure.

#include "server/inference_server.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cache/response_cache.h"
#include "common/clock.h"
#include "metrics/metrics.h"
#include "model/model_manager.h"
#include "server/server_metrics.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

// How long a test waits for something that should happen at once before it
// gives up and fails (a guard against hangs, never a synchronisation).
constexpr auto kGuard = std::chrono::seconds(30);

// ---------------------------------------------------------------------------
// The fake backend.

// State shared by the test and every fake backend instance.
class FakeBackendState {
 public:
  // Executions started (counted when Execute is entered).
  int executions() const { return executions_.load(); }
  void set_fail(bool fail) { fail_.store(fail); }
  void set_factor(float f) { factor_.store(f); }

  void CloseGate() {
    std::lock_guard<std::mutex> l(mu_);
    gate_open_ = false;
  }
  void OpenGate() {
    {
      std::lock_guard<std::mutex> l(mu_);
      gate_open_ = true;
    }
    cv_.notify_all();
  }
  // Waits until `n` executions are blocked at the closed gate.
  bool WaitBlocked(int n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, kGuard, [&] { return blocked_ >= n; });
  }

  // y = factor * x for one input; y = factor * a + b and z = a * b for two.
  StatusOr<std::vector<Tensor>> Execute(const ModelConfig& config,
                                        const std::vector<Tensor>& inputs) {
    executions_.fetch_add(1);
    {
      std::unique_lock<std::mutex> l(mu_);
      ++blocked_;
      cv_.notify_all();
      cv_.wait(l, [&] { return gate_open_; });
      --blocked_;
    }
    if (fail_.load()) return InternalError("injected backend failure");
    const float factor = factor_.load();
    std::vector<std::vector<float>> in;
    for (const Tensor& t : inputs) {
      std::vector<float> v(t.byte_size() / sizeof(float));
      std::memcpy(v.data(), t.data(), v.size() * sizeof(float));
      in.push_back(std::move(v));
    }
    std::vector<std::vector<float>> out(config.outputs.size(), std::vector<float>(in[0].size()));
    for (size_t i = 0; i < in[0].size(); ++i) {
      if (in.size() == 1) {
        out[0][i] = factor * in[0][i];
      } else {
        out[0][i] = factor * in[0][i] + in[1][i];
        out[1][i] = in[0][i] * in[1][i];
      }
    }
    std::vector<Tensor> result;
    for (auto& o : out) {
      std::string bytes(reinterpret_cast<const char*>(o.data()), o.size() * sizeof(float));
      result.push_back(Tensor::FromBytes(DataType::kFp32, inputs[0].shape(), std::move(bytes)));
    }
    return result;
  }

 private:
  std::atomic<int> executions_{0};
  std::atomic<bool> fail_{false};
  std::atomic<float> factor_{2.0f};
  std::mutex mu_;
  std::condition_variable cv_;
  bool gate_open_ = true;  // guarded by mu_
  int blocked_ = 0;        // guarded by mu_: executions waiting at the gate
};

class FakeInstance : public BackendInstance {
 public:
  FakeInstance(FakeBackendState* state, const ModelConfig* config)
      : state_(state), config_(config) {}
  StatusOr<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
    return state_->Execute(*config_, inputs);
  }

 private:
  FakeBackendState* state_;
  const ModelConfig* config_;
};

// ---------------------------------------------------------------------------
// Tensors.

Tensor Fp32(std::vector<float> values) {
  std::string bytes(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return Tensor::FromBytes(DataType::kFp32, {1, static_cast<int64_t>(values.size())},
                           std::move(bytes));
}

std::vector<float> Floats(const Tensor& t) {
  std::vector<float> v(t.byte_size() / sizeof(float));
  std::memcpy(v.data(), t.data(), v.size() * sizeof(float));
  return v;
}

// The output named `name` of `r` as floats; empty (and a failure) if absent.
std::vector<float> Output(const InferResponse& r, const std::string& name) {
  for (const auto& o : r.outputs) {
    if (o.name != name) continue;
    EXPECT_EQ(o.tensor.dtype(), DataType::kFp32);
    EXPECT_EQ(o.tensor.shape(), (Shape{1, 2}));
    return Floats(o.tensor);
  }
  ADD_FAILURE() << "response has no output '" << name << "'";
  return {};
}

// "r3" (built by append: GCC 12 warns falsely on `"r" + std::to_string(i)`).
std::string Id(const char* prefix, int i) {
  std::string id = prefix;
  id += std::to_string(i);
  return id;
}

std::vector<std::string> OutputNames(const InferResponse& r) {
  std::vector<std::string> names;
  for (const auto& o : r.outputs) names.push_back(o.name);
  return names;
}

// ---------------------------------------------------------------------------
// The model repository.

constexpr char kModelM[] = R"(backend = "fake"
max_batch_size = 4

[[input]]
name = "x"
datatype = "FP32"
dims = [2]

[[output]]
name = "y"
datatype = "FP32"
dims = [2]

[dynamic_batching]
max_queue_delay_us = 0

[response_cache]
ttl_s = 10
max_stale_s = 60
)";

constexpr char kModelTwo[] = R"(backend = "fake"
max_batch_size = 4

[[input]]
name = "a"
datatype = "FP32"
dims = [2]

[[input]]
name = "b"
datatype = "FP32"
dims = [2]

[[output]]
name = "y"
datatype = "FP32"
dims = [2]

[[output]]
name = "z"
datatype = "FP32"
dims = [2]

[dynamic_batching]
max_queue_delay_us = 0

[response_cache]
ttl_s = 10
)";

constexpr char kModelNoCache[] = R"(backend = "fake"
max_batch_size = 4

[[input]]
name = "x"
datatype = "FP32"
dims = [2]

[[output]]
name = "y"
datatype = "FP32"
dims = [2]

[dynamic_batching]
max_queue_delay_us = 0
)";

void WriteModel(const fs::path& repo, const std::string& name, const char* config,
                std::vector<int> versions) {
  fs::create_directories(repo / name);
  std::ofstream(repo / name / "config.toml") << config;
  for (int v : versions) fs::create_directories(repo / name / std::to_string(v));
}

// ---------------------------------------------------------------------------
// The fixture: repository, model manager, cache and server on a FakeClock.

class InferenceServerCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/inferd_server_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    repo_ = tmpl;
    WriteModel(repo_, "m", kModelM, {1, 2});
    WriteModel(repo_, "two", kModelTwo, {1});
    WriteModel(repo_, "nocache", kModelNoCache, {1});

    ModelManager::Options mo;
    mo.repository = repo_.string();
    mo.clock = &clock_;
    FakeBackendState* state = &backend_;
    mo.backends["fake"] =
        [state](const BackendInstanceSpec& spec) -> StatusOr<std::unique_ptr<BackendInstance>> {
      return std::unique_ptr<BackendInstance>(new FakeInstance(state, spec.config));
    };
    auto models = ModelManager::Create(std::move(mo));
    ASSERT_TRUE(models.ok()) << models.status().message();
    models_ = std::move(models).value();
    for (const ModelState& s : models_->List()) {
      ASSERT_TRUE(s.ready) << s.name << ": " << s.reason.message();
    }

    metrics_ = std::make_unique<ServerMetrics>(&registry_);

    ResponseCache::Options co;
    co.memory.max_bytes = 1 << 20;
    co.memory.max_stale_us = int64_t{3600} * 1'000'000;
    co.memory.clock = &clock_;
    co.clock = &clock_;
    co.registry = &registry_;
    auto cache = ResponseCache::Create(std::move(co));
    ASSERT_TRUE(cache.ok()) << cache.status().message();
    cache_ = std::move(cache).value();

    InferenceServer::Options so;
    so.models = models_.get();
    so.metrics = metrics_.get();
    so.clock = &clock_;
    so.cache = cache_.get();
    auto server = InferenceServer::Create(so);
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
  }

  void TearDown() override {
    // Let everything in flight finish while the server and cache still exist.
    backend_.set_fail(false);
    backend_.OpenGate();
    if (models_) models_->Shutdown();
    // The cache first: its coalescer answers any waiter still registered (a
    // failed test) through the server, which must still exist.
    cache_.reset();
    server_.reset();
    models_.reset();
    std::error_code ec;
    if (!repo_.empty()) fs::remove_all(repo_, ec);
  }

  static InferRequest Request(const std::string& id, std::vector<float> x = {1.5f, -2.0f},
                              const std::string& model = "m") {
    InferRequest r;
    r.model = model;
    r.id = id;
    r.inputs.push_back({"x", Fp32(std::move(x))});
    return r;
  }

  using Result = StatusOr<InferResponse>;

  // Sends `request`; the future is fulfilled by the pipeline's callback.
  std::future<Result> Send(InferRequest request) {
    auto promise = std::make_shared<std::promise<Result>>();
    std::future<Result> f = promise->get_future();
    server_->Infer(std::move(request), [promise](Result r) { promise->set_value(std::move(r)); });
    return f;
  }

  static Result Await(std::future<Result>& f) {
    if (f.wait_for(kGuard) != std::future_status::ready) {
      return DeadlineExceededError("test guard: no response");
    }
    return f.get();
  }

  Result InferSync(InferRequest request) {
    auto f = Send(std::move(request));
    return Await(f);
  }

  // Polls `pred` (bounded by kGuard) yielding between tries.
  static bool Eventually(const std::function<bool()>& pred) {
    auto give_up = std::chrono::steady_clock::now() + kGuard;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::yield();
    }
    return true;
  }

  Coalescer& coalescer() { return cache_->coalescer(); }

  // Declared first: destroyed last, after everything that reads it.
  FakeClock clock_;
  FakeBackendState backend_;
  fs::path repo_;
  Registry registry_;
  std::unique_ptr<ModelManager> models_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<ResponseCache> cache_;
  std::unique_ptr<InferenceServer> server_;
};

// ---------------------------------------------------------------------------
// 1. Miss, then hit.

TEST_F(InferenceServerCacheTest, MissThenHitEchoesEachRequestId) {
  Result first = InferSync(Request("first"));
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->cache, CacheStatus::kMiss);
  EXPECT_EQ(first->id, "first");
  EXPECT_EQ(first->model, "m");
  EXPECT_EQ(first->version, 2);
  EXPECT_EQ(Output(*first, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 1);

  Result second = InferSync(Request("second"));
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(second->age_s, 0);
  EXPECT_EQ(second->id, "second");
  EXPECT_EQ(second->model, "m");
  EXPECT_EQ(second->version, 2);
  EXPECT_EQ(OutputNames(*second), (std::vector<std::string>{"y"}));
  EXPECT_EQ(Output(*second, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 1);

  // Different input bytes are a different request.
  Result other = InferSync(Request("third", {1.5f, -2.5f}));
  ASSERT_TRUE(other.ok()) << other.status().message();
  EXPECT_EQ(other->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*other, "y"), (std::vector<float>{3.0f, -5.0f}));
  EXPECT_EQ(backend_.executions(), 2);
}

// ---------------------------------------------------------------------------
// 2. The canonical key.

InferRequest TwoInputs(const std::string& id, bool a_first, std::vector<std::string> outputs) {
  InferRequest r;
  r.model = "two";
  r.id = id;
  NamedTensor a{"a", Fp32({1.0f, 2.0f})};
  NamedTensor b{"b", Fp32({10.0f, 20.0f})};
  if (a_first) {
    r.inputs = {a, b};
  } else {
    r.inputs = {b, a};
  }
  r.outputs = std::move(outputs);
  return r;
}

TEST_F(InferenceServerCacheTest, InputOrderDoesNotChangeTheKey) {
  Result ab = InferSync(TwoInputs("ab", true, {}));
  ASSERT_TRUE(ab.ok()) << ab.status().message();
  EXPECT_EQ(ab->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*ab, "y"), (std::vector<float>{12.0f, 24.0f}));
  EXPECT_EQ(Output(*ab, "z"), (std::vector<float>{10.0f, 40.0f}));

  Result ba = InferSync(TwoInputs("ba", false, {}));
  ASSERT_TRUE(ba.ok()) << ba.status().message();
  EXPECT_EQ(ba->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(ba->id, "ba");
  EXPECT_EQ(OutputNames(*ba), (std::vector<std::string>{"y", "z"}));
  EXPECT_EQ(Output(*ba, "y"), (std::vector<float>{12.0f, 24.0f}));
  EXPECT_EQ(Output(*ba, "z"), (std::vector<float>{10.0f, 40.0f}));
  EXPECT_EQ(backend_.executions(), 1);

  // Swapping the values of a and b (same names, same order) is another request.
  InferRequest swapped = TwoInputs("swapped", true, {});
  std::swap(swapped.inputs[0].tensor, swapped.inputs[1].tensor);
  Result s = InferSync(std::move(swapped));
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*s, "y"), (std::vector<float>{21.0f, 42.0f}));
  EXPECT_EQ(backend_.executions(), 2);
}

TEST_F(InferenceServerCacheTest, RequestedOutputsAreCanonical) {
  Result zy = InferSync(TwoInputs("zy", true, {"z", "y"}));
  ASSERT_TRUE(zy.ok()) << zy.status().message();
  EXPECT_EQ(zy->cache, CacheStatus::kMiss);
  EXPECT_EQ(backend_.executions(), 1);

  // The same set in another order: the same entry.
  Result yz = InferSync(TwoInputs("yz", false, {"y", "z"}));
  ASSERT_TRUE(yz.ok()) << yz.status().message();
  EXPECT_EQ(yz->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(Output(*yz, "y"), (std::vector<float>{12.0f, 24.0f}));
  EXPECT_EQ(Output(*yz, "z"), (std::vector<float>{10.0f, 40.0f}));
  EXPECT_EQ(backend_.executions(), 1);

  // Only y: another entry, holding only y.
  Result y = InferSync(TwoInputs("y", true, {"y"}));
  ASSERT_TRUE(y.ok()) << y.status().message();
  EXPECT_EQ(y->cache, CacheStatus::kMiss);
  EXPECT_EQ(OutputNames(*y), (std::vector<std::string>{"y"}));
  EXPECT_EQ(backend_.executions(), 2);

  // y named twice is the same set as y once.
  Result yy = InferSync(TwoInputs("yy", true, {"y", "y"}));
  ASSERT_TRUE(yy.ok()) << yy.status().message();
  EXPECT_EQ(yy->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(OutputNames(*yy), (std::vector<std::string>{"y"}));
  EXPECT_EQ(Output(*yy, "y"), (std::vector<float>{12.0f, 24.0f}));
  EXPECT_EQ(backend_.executions(), 2);
}

TEST_F(InferenceServerCacheTest, VersionsDoNotShareEntries) {
  Result v2 = InferSync(Request("default"));  // the highest version: 2
  ASSERT_TRUE(v2.ok()) << v2.status().message();
  EXPECT_EQ(v2->version, 2);
  EXPECT_EQ(v2->cache, CacheStatus::kMiss);

  InferRequest r = Request("v1");
  r.version = "1";
  Result v1 = InferSync(std::move(r));
  ASSERT_TRUE(v1.ok()) << v1.status().message();
  EXPECT_EQ(v1->version, 1);
  EXPECT_EQ(v1->cache, CacheStatus::kMiss);
  EXPECT_EQ(backend_.executions(), 2);

  r = Request("v2 explicitly");
  r.version = "2";
  Result again = InferSync(std::move(r));
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->version, 2);
  EXPECT_EQ(again->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(backend_.executions(), 2);
}

// ---------------------------------------------------------------------------
// 3. Cache-Control.

TEST_F(InferenceServerCacheTest, NoStoreKeepsTheResponseOutOfTheCache) {
  InferRequest r = Request("no-store");
  r.no_store = true;
  Result first = InferSync(std::move(r));
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*first, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 1);

  Result second = InferSync(Request("normal"));
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->cache, CacheStatus::kMiss);
  EXPECT_EQ(backend_.executions(), 2);

  Result third = InferSync(Request("normal again"));
  ASSERT_TRUE(third.ok()) << third.status().message();
  EXPECT_EQ(third->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(backend_.executions(), 2);
}

TEST_F(InferenceServerCacheTest, NoCacheSkipsTheLookupAndRefreshesTheEntry) {
  ASSERT_TRUE(InferSync(Request("fill")).ok());
  EXPECT_EQ(backend_.executions(), 1);
  clock_.Advance(seconds(5));
  Result hit = InferSync(Request("hit"));
  ASSERT_TRUE(hit.ok()) << hit.status().message();
  EXPECT_EQ(hit->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(hit->age_s, 5);

  // The model now answers differently; no-cache must see it.
  backend_.set_factor(3.0f);
  InferRequest r = Request("no-cache");
  r.no_cache = true;
  Result refreshed = InferSync(std::move(r));
  ASSERT_TRUE(refreshed.ok()) << refreshed.status().message();
  EXPECT_EQ(refreshed->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*refreshed, "y"), (std::vector<float>{4.5f, -6.0f}));
  EXPECT_EQ(backend_.executions(), 2);

  // The following normal request hits the refreshed entry.
  Result after = InferSync(Request("after"));
  ASSERT_TRUE(after.ok()) << after.status().message();
  EXPECT_EQ(after->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(after->age_s, 0);
  EXPECT_EQ(Output(*after, "y"), (std::vector<float>{4.5f, -6.0f}));
  EXPECT_EQ(backend_.executions(), 2);
}

// ---------------------------------------------------------------------------
// 4. TTL.

TEST_F(InferenceServerCacheTest, EntryExpiresAfterTtl) {
  ASSERT_TRUE(InferSync(Request("fill")).ok());
  EXPECT_EQ(backend_.executions(), 1);

  clock_.Advance(seconds(10));  // exactly ttl_s: still fresh
  Result at_ttl = InferSync(Request("at ttl"));
  ASSERT_TRUE(at_ttl.ok()) << at_ttl.status().message();
  EXPECT_EQ(at_ttl->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(at_ttl->age_s, 10);
  EXPECT_EQ(backend_.executions(), 1);

  clock_.Advance(microseconds(1));  // past it
  Result expired = InferSync(Request("expired"));
  ASSERT_TRUE(expired.ok()) << expired.status().message();
  EXPECT_EQ(expired->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*expired, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 2);

  // The execution stored a fresh entry.
  Result fresh = InferSync(Request("fresh"));
  ASSERT_TRUE(fresh.ok()) << fresh.status().message();
  EXPECT_EQ(fresh->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(fresh->age_s, 0);
  EXPECT_EQ(backend_.executions(), 2);
}

// ---------------------------------------------------------------------------
// 5. Coalescing.

TEST_F(InferenceServerCacheTest, IdenticalRequestsInFlightExecuteOnce) {
  constexpr int kRequests = 8;
  backend_.CloseGate();
  std::vector<std::future<Result>> futures;
  for (int i = 0; i < kRequests; ++i) futures.push_back(Send(Request(Id("r", i))));
  ASSERT_TRUE(backend_.WaitBlocked(1));
  ASSERT_TRUE(Eventually([&] { return coalescer().waiting() == kRequests - 1; }))
      << "waiting: " << coalescer().waiting();
  EXPECT_EQ(backend_.executions(), 1);
  for (auto& f : futures) {
    EXPECT_NE(f.wait_for(std::chrono::seconds(0)), std::future_status::ready)
        << "answered while the leader is blocked";
  }

  backend_.OpenGate();
  int misses = 0, coalesced = 0;
  for (int i = 0; i < kRequests; ++i) {
    Result r = Await(futures[static_cast<size_t>(i)]);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->id, Id("r", i));
    EXPECT_EQ(Output(*r, "y"), (std::vector<float>{3.0f, -4.0f}));
    if (r->cache == CacheStatus::kMiss) ++misses;
    if (r->cache == CacheStatus::kCoalesced) ++coalesced;
  }
  EXPECT_EQ(misses, 1);
  EXPECT_EQ(coalesced, kRequests - 1);
  EXPECT_EQ(backend_.executions(), 1);
  EXPECT_EQ(coalescer().waiting(), 0);
  EXPECT_EQ(coalescer().coalesced_total(), kRequests - 1);

  // The leader also filled the cache.
  Result later = InferSync(Request("later"));
  ASSERT_TRUE(later.ok()) << later.status().message();
  EXPECT_EQ(later->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(backend_.executions(), 1);
}

// ---------------------------------------------------------------------------
// 6. Errors reach every waiter and are not cached.

TEST_F(InferenceServerCacheTest, ErrorReachesAllWaitersAndIsNotCached) {
  constexpr int kRequests = 4;
  backend_.CloseGate();
  backend_.set_fail(true);
  std::vector<std::future<Result>> futures;
  for (int i = 0; i < kRequests; ++i) futures.push_back(Send(Request(Id("r", i))));
  ASSERT_TRUE(backend_.WaitBlocked(1));
  ASSERT_TRUE(Eventually([&] { return coalescer().waiting() == kRequests - 1; }))
      << "waiting: " << coalescer().waiting();

  backend_.OpenGate();
  for (auto& f : futures) {
    Result r = Await(f);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInternal) << r.status().message();
    EXPECT_NE(r.status().message().find("injected backend failure"), std::string::npos)
        << r.status().message();
  }
  EXPECT_EQ(backend_.executions(), 1);
  EXPECT_EQ(coalescer().waiting(), 0);

  backend_.set_fail(false);
  Result next = InferSync(Request("next"));
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(next->cache, CacheStatus::kMiss);
  EXPECT_EQ(Output(*next, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 2);
}

// ---------------------------------------------------------------------------
// 7. A waiter's own deadline.

TEST_F(InferenceServerCacheTest, WaiterTimesOutWhileTheLeaderSucceeds) {
  constexpr int kWaiters = 3;
  backend_.CloseGate();
  auto leader = Send(Request("leader"));  // the server's default timeout (30 s)
  ASSERT_TRUE(backend_.WaitBlocked(1));
  std::vector<std::future<Result>> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    InferRequest r = Request(Id("w", i));
    r.timeout_us = 1000;
    waiters.push_back(Send(std::move(r)));
  }
  ASSERT_TRUE(Eventually([&] { return coalescer().waiting() == kWaiters; }));

  clock_.Advance(milliseconds(2));
  for (auto& w : waiters) {
    Result r = Await(w);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().message();
  }
  EXPECT_EQ(coalescer().waiting(), 0);
  EXPECT_NE(leader.wait_for(std::chrono::seconds(0)), std::future_status::ready);

  backend_.OpenGate();
  Result l = Await(leader);
  ASSERT_TRUE(l.ok()) << l.status().message();
  EXPECT_EQ(l->cache, CacheStatus::kMiss);
  EXPECT_EQ(l->id, "leader");
  EXPECT_EQ(Output(*l, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 1);
  EXPECT_EQ(coalescer().coalesced_total(), 0);

  Result later = InferSync(Request("later"));
  ASSERT_TRUE(later.ok()) << later.status().message();
  EXPECT_EQ(later->cache, CacheStatus::kHitMemory);
  EXPECT_EQ(backend_.executions(), 1);
}

// ---------------------------------------------------------------------------
// 8. Stale-if-error.

TEST_F(InferenceServerCacheTest, StaleIfErrorWithinMaxStale) {
  ASSERT_TRUE(InferSync(Request("fill")).ok());
  EXPECT_EQ(backend_.executions(), 1);
  backend_.set_fail(true);

  clock_.Advance(seconds(11));  // past ttl_s = 10
  Result stale = InferSync(Request("stale"));
  ASSERT_TRUE(stale.ok()) << stale.status().message();
  EXPECT_EQ(stale->cache, CacheStatus::kStale);
  EXPECT_EQ(stale->age_s, 11);
  EXPECT_EQ(stale->id, "stale");
  EXPECT_EQ(Output(*stale, "y"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(backend_.executions(), 2);  // the lookup missed; the model ran and failed

  clock_.Advance(seconds(59));  // exactly ttl_s + max_stale_s after creation
  Result edge = InferSync(Request("edge"));
  ASSERT_TRUE(edge.ok()) << edge.status().message();
  EXPECT_EQ(edge->cache, CacheStatus::kStale);
  EXPECT_EQ(edge->age_s, 70);
  EXPECT_EQ(backend_.executions(), 3);

  clock_.Advance(seconds(1));  // beyond max_stale_s
  Result gone = InferSync(Request("gone"));
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), StatusCode::kInternal) << gone.status().message();
  EXPECT_EQ(backend_.executions(), 4);
}

TEST_F(InferenceServerCacheTest, StaleIfErrorNeedsAnEntry) {
  backend_.set_fail(true);
  Result r = InferSync(Request("nothing cached"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal) << r.status().message();
  EXPECT_EQ(backend_.executions(), 1);
}

// ---------------------------------------------------------------------------
// 9. A model without [response_cache].

TEST_F(InferenceServerCacheTest, ModelWithoutResponseCacheNeverCaches) {
  for (int i = 0; i < 3; ++i) {
    Result r = InferSync(Request(Id("r", i), {1.5f, -2.0f}, "nocache"));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->cache, CacheStatus::kNone);
    EXPECT_EQ(r->age_s, -1);
    EXPECT_EQ(Output(*r, "y"), (std::vector<float>{3.0f, -4.0f}));
    EXPECT_EQ(backend_.executions(), i + 1);
  }
  // No coalescing either: two identical requests in flight both execute.
  backend_.CloseGate();
  auto a = Send(Request("a", {1.5f, -2.0f}, "nocache"));
  ASSERT_TRUE(backend_.WaitBlocked(1));  // so that b cannot join a's batch
  auto b = Send(Request("b", {1.5f, -2.0f}, "nocache"));
  EXPECT_EQ(coalescer().waiting(), 0);
  backend_.OpenGate();
  Result ra = Await(a), rb = Await(b);
  ASSERT_TRUE(ra.ok()) << ra.status().message();
  ASSERT_TRUE(rb.ok()) << rb.status().message();
  EXPECT_EQ(ra->cache, CacheStatus::kNone);
  EXPECT_EQ(rb->cache, CacheStatus::kNone);
  EXPECT_EQ(backend_.executions(), 5);
}

}  // namespace
}  // namespace inferd
