#pragma once
// Shared by the tests of the pipeline's cache stage
// (inference_server_cache_test.cc, inference_server_coalesce_test.cc): a fake
// backend, a temporary model repository and the fixture that runs the server
// and the response cache on a FakeClock.
//
// Deterministic: no sleeps. Requests are held in flight by a gate in the fake
// backend that the test opens; time moves only through FakeClock::Advance.
// Real-time waits exist only as generous guards that turn a hang into a
// failure.

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
#include "server/inference_server.h"
#include "server/server_metrics.h"

// Not in an unnamed namespace: both test files must share one fixture type.
namespace inferd::server_test {

namespace fs = std::filesystem;

// How long a test waits for something that should happen at once before it
// gives up and fails (a guard against hangs, never a synchronisation).
inline constexpr auto kGuard = std::chrono::seconds(30);

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

inline Tensor Fp32(std::vector<float> values) {
  std::string bytes(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return Tensor::FromBytes(DataType::kFp32, {1, static_cast<int64_t>(values.size())},
                           std::move(bytes));
}

inline std::vector<float> Floats(const Tensor& t) {
  std::vector<float> v(t.byte_size() / sizeof(float));
  std::memcpy(v.data(), t.data(), v.size() * sizeof(float));
  return v;
}

// The output named `name` of `r` as floats; empty (and a failure) if absent.
inline std::vector<float> Output(const InferResponse& r, const std::string& name) {
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
inline std::string Id(const char* prefix, int i) {
  std::string id = prefix;
  id += std::to_string(i);
  return id;
}

inline std::vector<std::string> OutputNames(const InferResponse& r) {
  std::vector<std::string> names;
  for (const auto& o : r.outputs) names.push_back(o.name);
  return names;
}

// ---------------------------------------------------------------------------
// The model repository.

inline constexpr char kModelM[] = R"(backend = "fake"
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

[version_policy]
policy = "all"
)";

inline constexpr char kModelTwo[] = R"(backend = "fake"
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

inline constexpr char kModelNoCache[] = R"(backend = "fake"
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

// Overload control with a limit of 2 and two priority levels, cached.
inline constexpr char kModelShed[] = R"(backend = "fake"
max_batch_size = 1
[[input]]
name = "x"
datatype = "FP32"
dims = [2]
[[output]]
name = "y"
datatype = "FP32"
dims = [2]
[scheduling]
priority_levels = 2
[overload]
min_limit = 2
max_limit = 2
[response_cache]
ttl_s = 10
)";

inline void WriteModel(const fs::path& repo, const std::string& name, const char* config,
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
    WriteModel(repo_, "shed", kModelShed, {1});

    ModelManager::Options mo;
    mo.repository = repo_.string();
    mo.clock = &clock_;
    mo.preload = {"*"};
    FakeBackendState* state = &backend_;
    mo.backends["fake"] =
        [state](const BackendInstanceSpec& spec) -> StatusOr<std::unique_ptr<BackendInstance>> {
      return std::unique_ptr<BackendInstance>(new FakeInstance(state, spec.config));
    };
    auto models = ModelManager::Create(std::move(mo));
    ASSERT_TRUE(models.ok()) << models.status().message();
    models_ = std::move(models).value();
    for (const ModelState& s : models_->List()) {
      ASSERT_TRUE(s.ready()) << s.name << ": " << s.reason.message();
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
  std::future<Result> Send(InferRequest request, RequestContext context = {}) {
    auto promise = std::make_shared<std::promise<Result>>();
    std::future<Result> f = promise->get_future();
    server_->Infer(
        std::move(request), [promise](Result r) { promise->set_value(std::move(r)); },
        std::move(context));
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

  // inferd_requests_total{model, version, outcome} as exposed.
  double OutcomeCount(const std::string& model, int version, const std::string& outcome) {
    std::string text = registry_.ExposeText();
    std::string key = "inferd_requests_total{model=\"" + model + "\",version=\"" +
                      std::to_string(version) + "\",outcome=\"" + outcome + "\"} ";
    size_t at = text.find(key);
    return at == std::string::npos ? 0 : std::stod(text.substr(at + key.size()));
  }

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

}  // namespace inferd::server_test
