// ModelManager under a memory budget, with a fake backend whose versions
// report a set size: a workload cycling through more models than fit never
// takes the budget past its bytes and never fails a request; the least
// recently used idle version is the one evicted; pinned and busy versions
// stay; a model that cannot fit is refused naming what is resident; a size
// measured above its estimate is loaded again within the budget.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>

#include "model/model_manager.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
constexpr auto kGuard = std::chrono::seconds(30);
constexpr int64_t kMiB = 1024 * 1024;

// Reports parameters.bytes as its weights; instances echo their inputs.
class SizedModel final : public BackendModel {
 public:
  explicit SizedModel(int64_t bytes) : bytes_(bytes) {}
  StatusOr<std::unique_ptr<BackendInstance>> CreateInstance(int) override {
    class Echo final : public BackendInstance {
     public:
      StatusOr<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
        return inputs;
      }
    };
    return std::unique_ptr<BackendInstance>(new Echo());
  }
  BackendMemory Memory() const override {
    BackendMemory m;
    m.known = true;
    m.weights_bytes = bytes_;
    return m;
  }

 private:
  int64_t bytes_;
};

std::string Config(int64_t mib, bool pin = false) {
  return std::string(pin ? "pin = true\n" : "") + R"(backend = "sized"
max_batch_size = 0
[[input]]
name = "x"
datatype = "FP32"
dims = [2]
[[output]]
name = "x"
datatype = "FP32"
dims = [2]
[parameters]
mib = ")" +
         std::to_string(mib) + "\"\n";
}

class ModelBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/inferd_budget_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    repo_ = tmpl;
  }
  void TearDown() override {
    mm_.reset();
    std::error_code ec;
    fs::remove_all(repo_, ec);
  }
  void Write(const std::string& name, const std::string& config) {
    fs::create_directories(repo_ / name / "1");
    std::ofstream(repo_ / name / "config.toml") << config;
  }
  ModelManager& Create(int64_t budget_mib, ModelControl control = ModelControl::kLazy,
                       std::vector<std::string> preload = {}) {
    ModelManager::Options o;
    o.repository = repo_.string();
    o.model_backends["sized"] =
        [this](const BackendModelSpec& spec) -> StatusOr<std::unique_ptr<BackendModel>> {
      loads_.fetch_add(1);
      const int64_t mib = std::stoll(spec.config->parameters.at("mib"));
      return std::unique_ptr<BackendModel>(new SizedModel(mib * kMiB));
    };
    o.clock = &clock_;
    o.control = control;
    o.preload = std::move(preload);
    o.memory_budget = budget_mib * kMiB;
    o.on_unload = [this](const std::string&, const char* reason) {
      if (std::string(reason) == "evicted") evictions_.fetch_add(1);
    };
    auto mm = ModelManager::Create(std::move(o));
    EXPECT_TRUE(mm.ok()) << mm.status().message();
    mm_ = std::move(mm).value();
    return *mm_;
  }
  // A request's lease on `name`: at once when READY, else after its load.
  StatusOr<VersionLease> Use(const std::string& name) {
    Acquired a = mm_->Acquire(name, "");
    if (!a.status.ok()) return a.status;
    if (a.lease) return std::move(a.lease);
    auto p = std::make_shared<std::promise<StatusOr<VersionLease>>>();
    auto f = p->get_future();
    mm_->WhenReady(*a.pending, Time::max(), nullptr,
                   [p](StatusOr<VersionLease> r) { p->set_value(std::move(r)); });
    if (f.wait_for(kGuard) != std::future_status::ready) return InternalError("no answer");
    return f.get();
  }
  std::vector<std::string> Ready() {
    std::vector<std::string> out;
    for (const ModelState& s : mm_->List()) {
      if (s.ready()) out.push_back(s.name);
    }
    return out;
  }
  void ExpectWithinBudget() {
    MemoryView v = mm_->Memory();
    EXPECT_LE(v.used_bytes, v.budget_bytes);
  }

  fs::path repo_;
  FakeClock clock_;
  std::atomic<int> loads_{0};
  std::atomic<int> evictions_{0};
  std::unique_ptr<ModelManager> mm_;
};

TEST_F(ModelBudgetTest, CyclingThroughFiveModelsWithRoomForTwoNeverFailsOrExceeds) {
  const std::vector<std::string> names = {"a", "b", "c", "d", "e"};
  for (const auto& n : names) Write(n, Config(100));
  ModelManager& mm = Create(250);
  for (int round = 0; round < 4; ++round) {
    for (const auto& n : names) {
      auto lease = Use(n);
      ASSERT_TRUE(lease.ok()) << n << ": " << lease.status().message();
      ExpectWithinBudget();
      EXPECT_LE(Ready().size(), 2u);
      clock_.Advance(std::chrono::seconds(1));
    }
  }
  // Each request found its model evicted by the two before it.
  EXPECT_GE(evictions_.load(), 18);
  EXPECT_GE(loads_.load(), 20);
  MemoryView v = mm.Memory();
  EXPECT_EQ(v.deferred_loads, 0);
  for (const VersionMemoryView& r : v.versions) {
    if (r.state == VersionState::kReady) {
      EXPECT_EQ(r.bytes, 100 * kMiB);
      EXPECT_FALSE(r.estimated);
    }
  }
}

TEST_F(ModelBudgetTest, TheLeastRecentlyUsedIdleVersionIsEvicted) {
  for (const auto& n : {"a", "b", "c"}) Write(n, Config(100));
  Create(250);
  ASSERT_TRUE(Use("a").ok());
  clock_.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(Use("b").ok());
  clock_.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(Use("a").ok());  // b is now the least recently used
  clock_.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(Use("c").ok());
  EXPECT_EQ(Ready(), (std::vector<std::string>{"a", "c"}));
  ExpectWithinBudget();
}

TEST_F(ModelBudgetTest, PinnedVersionsStayAndBusyOnesAreWaitedFor) {
  Write("p", Config(100, /*pin=*/true));
  for (const auto& n : {"a", "b"}) Write(n, Config(100));
  ModelManager& mm = Create(250, ModelControl::kLazy, {"p"});
  auto held = Use("a");  // busy
  ASSERT_TRUE(held.ok());
  // b needs a's room: it waits until a's request ends.
  Acquired b = mm.Acquire("b", "");
  ASSERT_TRUE(b.pending.has_value());
  std::promise<StatusOr<VersionLease>> got;
  mm.WhenReady(*b.pending, Time::max(), nullptr,
               [&](StatusOr<VersionLease> r) { got.set_value(std::move(r)); });
  auto f = got.get_future();
  // (It cannot become READY while a is held: there is no room.)
  EXPECT_EQ(f.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  held->Release();
  ASSERT_EQ(f.wait_for(kGuard), std::future_status::ready);
  auto lease = f.get();
  ASSERT_TRUE(lease.ok()) << lease.status().message();
  EXPECT_EQ(Ready(), (std::vector<std::string>{"b", "p"}));
  ExpectWithinBudget();
  lease->Release();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Use(i % 2 ? "a" : "b").ok());
  EXPECT_EQ(mm.Ready("p", "").code(), StatusCode::kOk);  // never evicted
}

TEST_F(ModelBudgetTest, AModelThatCannotFitIsRefusedNamingTheResidents) {
  Write("p", Config(200, /*pin=*/true));
  Write("big", Config(100));
  ModelManager& mm = Create(250, ModelControl::kLazy, {"p"});
  // Its first load is estimated from its files (none here), then measured
  // at 100 MiB: more than the pinned model leaves.
  auto first = Use("big");
  ASSERT_EQ(first.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(first.status().message().find("needs 100.0 MiB"), std::string::npos)
      << first.status().message();
  EXPECT_NE(first.status().message().find("p 200.0 MiB pinned"), std::string::npos)
      << first.status().message();
  // Known now: refused at once, without loading.
  const int loads = loads_.load();
  Acquired again = mm.Acquire("big", "");
  ASSERT_TRUE(again.pending.has_value());
  auto second = Use("big");
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(loads_.load(), loads);
  ExpectWithinBudget();
}

TEST_F(ModelBudgetTest, ExplicitControlRefusesALoadPastTheBudget) {
  for (const auto& n : {"a", "b", "c"}) Write(n, Config(100));
  ModelManager& mm = Create(250, ModelControl::kExplicit, {"a", "b"});
  std::promise<Status> loaded;
  mm.Load("c", [&](Status st) { loaded.set_value(st); });
  Status st = loaded.get_future().get();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("explicit"), std::string::npos) << st.message();
  EXPECT_EQ(Ready(), (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(mm.Unload("a").ok());
  ASSERT_TRUE(mm.AwaitState("a", 1, VersionState::kUnavailable, kGuard));
  std::promise<Status> again;
  mm.Load("c", [&](Status s) { again.set_value(s); });
  EXPECT_TRUE(again.get_future().get().ok());
  ExpectWithinBudget();
}

}  // namespace
}  // namespace inferd
