// ModelVersion and ModelManager with a gated fake backend (the gate only
// holds work in flight; time is never waited on): loading, listing, errors,
// and dropping a version while requests are queued or from the completion
// of its own last request on an executor thread.

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
#include "model/model_version.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
constexpr auto kGuard = std::chrono::seconds(30);  // turns a hang into a failure

class GatedBackend {
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
  bool WaitBlocked(int n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, kGuard, [&] { return blocked_ >= n; });
  }
  int executions() const { return executions_.load(); }
  BackendRegistry Registry() {
    BackendRegistry r;
    r["fake"] = [this](const BackendInstanceSpec&) -> StatusOr<std::unique_ptr<BackendInstance>> {
      return std::unique_ptr<BackendInstance>(new Instance(this));
    };
    r["broken"] = [](const BackendInstanceSpec&) -> StatusOr<std::unique_ptr<BackendInstance>> {
      return InternalError("cannot load weights");
    };
    return r;
  }

 private:
  class Instance : public BackendInstance {
   public:
    explicit Instance(GatedBackend* b) : b_(b) {}
    StatusOr<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
      b_->executions_.fetch_add(1);
      std::unique_lock<std::mutex> l(b_->mu_);
      ++b_->blocked_;
      b_->cv_.notify_all();
      b_->cv_.wait(l, [&] { return b_->open_; });
      --b_->blocked_;
      return inputs;  // identity
    }

   private:
    GatedBackend* b_;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int blocked_ = 0;
  std::atomic<int> executions_{0};
};

constexpr char kConfig[] = R"(backend = "fake"
max_batch_size = 0
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
  std::string bytes(8, '\0');
  std::vector<Tensor> in = {Tensor::FromBytes(DataType::kFp32, {2}, std::move(bytes))};
  return std::make_unique<Task>(
      std::move(in), 1, "",
      [done](StatusOr<std::vector<Tensor>> r, const TaskTimings&) { done(r.status()); });
}

class ModelVersionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = ParseModelConfig(kConfig, "config.toml", "m").value();
    registry_ = backend_.Registry();
  }
  std::shared_ptr<ModelVersion> Load() {
    ModelVersion::Options o;
    o.config = &config_;
    o.backends = &registry_;
    o.version_dir = "/nonexistent";
    auto mv = ModelVersion::Load(o);
    EXPECT_TRUE(mv.ok()) << mv.status().message();
    return std::shared_ptr<ModelVersion>(std::move(mv).value());
  }
  GatedBackend backend_;
  ModelConfig config_;
  BackendRegistry registry_;
};

TEST_F(ModelVersionTest, DroppingAVersionWithQueuedRequestsCompletesEachOnce) {
  auto mv = Load();
  backend_.Close();
  std::atomic<int> ok{0}, failed{0};
  auto count = [&](const Status& st) { (st.ok() ? ok : failed).fetch_add(1); };
  for (int i = 0; i < 5; ++i) {
    auto t = MakeTask(count);
    ASSERT_TRUE(mv->Submit(t).ok());
  }
  ASSERT_TRUE(backend_.WaitBlocked(1));
  EXPECT_EQ(mv->queue_depth(), 4u);
  // The last reference goes on another thread while four requests wait: the
  // version drains them before it is gone.
  std::thread dropper([mv = std::move(mv)]() mutable { mv.reset(); });
  backend_.Open();
  dropper.join();
  EXPECT_EQ(ok.load(), 5);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(backend_.executions(), 5);
}

TEST_F(ModelVersionTest, TheLastReferenceMayGoWithItsLastRequestOnAnExecutorThread) {
  auto mv = Load();
  backend_.Close();
  std::promise<void> all_done;
  std::atomic<int> remaining{3};
  for (int i = 0; i < 3; ++i) {
    // Each request holds the version, as the pipeline's calls do.
    auto t = MakeTask([keep = mv, &remaining, &all_done](const Status& st) mutable {
      EXPECT_TRUE(st.ok()) << st.message();
      keep.reset();
      if (remaining.fetch_sub(1) == 1) all_done.set_value();
    });
    ASSERT_TRUE(mv->Submit(t).ok());
  }
  mv.reset();  // the requests now hold the only references
  backend_.Open();
  auto f = all_done.get_future();
  ASSERT_EQ(f.wait_for(kGuard), std::future_status::ready);
}

TEST_F(ModelVersionTest, AnUnknownOrFailingBackendFailsTheLoad) {
  ModelVersion::Options o;
  ModelConfig c = config_;
  o.config = &c;
  o.backends = &registry_;
  c.backend = "nope";
  EXPECT_EQ(ModelVersion::Load(o).status().code(), StatusCode::kInvalidArgument);
  c.backend = "broken";
  auto broken = ModelVersion::Load(o);
  EXPECT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("cannot load weights"), std::string::npos);
}

class ModelManagerTest : public ModelVersionTest {
 protected:
  void SetUp() override {
    ModelVersionTest::SetUp();
    char tmpl[] = "/tmp/inferd_model_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    repo_ = tmpl;
    Write("m", kConfig, {1, 3});
    std::string broken = kConfig;
    broken.replace(broken.find("fake"), 4, "broken");
    Write("b", broken.c_str(), {1});
    Write("bad", "max_batch_size = \"x\"", {1});
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(repo_, ec);
  }
  void Write(const std::string& name, const char* config, std::vector<int> versions) {
    fs::create_directories(repo_ / name);
    std::ofstream(repo_ / name / "config.toml") << config;
    for (int v : versions) fs::create_directories(repo_ / name / std::to_string(v));
  }
  std::unique_ptr<ModelManager> Create() {
    ModelManager::Options o;
    o.repository = repo_.string();
    o.backends = backend_.Registry();
    o.executor_threads = 3;
    o.preload = {"*"};
    return ModelManager::Create(std::move(o)).value();
  }
  fs::path repo_;
};

TEST_F(ModelManagerTest, LoadsEveryVersionAndReportsWhatCannotServe) {
  auto mm = Create();
  EXPECT_EQ(mm->executor_threads(), 3);
  EXPECT_TRUE(mm->IsServing());
  int ready = 0, unavailable = 0;
  for (const ModelState& s : mm->List()) {
    if (s.ready()) {
      ++ready;
      EXPECT_EQ(s.name, "m");
    } else {
      ++unavailable;
      EXPECT_FALSE(s.reason.ok()) << s.name;
    }
  }
  EXPECT_EQ(ready, 2);
  EXPECT_EQ(unavailable, 2);
  auto latest = mm->Get("m", "");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ((*latest)->version(), 3);
  EXPECT_EQ((*mm->Get("m", "1"))->version(), 1);
  EXPECT_EQ(mm->Get("m", "2").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(mm->Get("nope", "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(mm->Get("b", "").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(mm->Get("bad", "").status().code(), StatusCode::kUnavailable);
}

TEST_F(ModelManagerTest, ShutdownDrainsQueuedWorkThenRefusesNewRequests) {
  auto mm = Create();
  auto mv = mm->Get("m", "").value();
  backend_.Close();
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    auto t = MakeTask([&](const Status& st) { ok.fetch_add(st.ok()); });
    ASSERT_TRUE(mv->Submit(t).ok());
  }
  ASSERT_TRUE(backend_.WaitBlocked(1));
  std::thread stopper([&] { mm->Shutdown(); });
  backend_.Open();
  stopper.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_FALSE(mm->IsServing());
  EXPECT_EQ(mm->Get("m", "").status().code(), StatusCode::kUnavailable);
  auto late = MakeTask([](const Status&) {});
  EXPECT_EQ(mv->Submit(late).code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace inferd
