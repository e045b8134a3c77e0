// The streaming path below the server: a decoupled model on the stream_test
// plugin, loaded by ModelManager as the server does, takes the
// pass-through scheduler; its tasks get chunks then one completion, stop on
// cancellation, fail on request, and wait for the sink's resume.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>

#include "model/model_manager.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
constexpr auto kGuard = std::chrono::seconds(30);  // turns a hang into a failure

constexpr char kConfig[] = R"(backend = "stream_test"
decoupled = true
[[input]]
name = "control"
datatype = "INT32"
dims = [3]
[[output]]
name = "index"
datatype = "INT32"
dims = [1]
)";

// Collects chunks; optionally refuses to go on after the first.
class Collector : public ChunkSink {
 public:
  explicit Collector(bool pause_after_first = false) : pause_(pause_after_first) {}
  bool Chunk(std::vector<Tensor> outputs, std::function<void()> resume) override {
    std::lock_guard<std::mutex> l(mu_);
    if (paused_) chunk_while_paused_ = true;
    int32_t v = 0;
    std::memcpy(&v, outputs.at(0).data(), sizeof(v));
    got_.push_back(v);
    if (pause_ && got_.size() == 1) {
      paused_ = true;
      resume_ = std::move(resume);
      first_.set_value();
      return false;
    }
    return true;
  }
  void WaitFirst() { ASSERT_EQ(first_.get_future().wait_for(kGuard), std::future_status::ready); }
  void Resume() {
    std::function<void()> r;
    {
      std::lock_guard<std::mutex> l(mu_);
      paused_ = false;
      r = std::move(resume_);
    }
    r();
  }
  std::vector<int32_t> got() {
    std::lock_guard<std::mutex> l(mu_);
    return got_;
  }
  bool chunk_while_paused() {
    std::lock_guard<std::mutex> l(mu_);
    return chunk_while_paused_;
  }

 private:
  const bool pause_;
  std::mutex mu_;
  std::vector<int32_t> got_;
  bool paused_ = false, chunk_while_paused_ = false;
  std::function<void()> resume_;
  std::promise<void> first_;
};

class StreamTestBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/inferd_stream_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    repo_ = tmpl;
    fs::create_directories(repo_ / "s" / "1");
    std::ofstream(repo_ / "s" / "config.toml") << kConfig;
    ModelManager::Options o;
    o.repository = repo_.string();
    o.backend_directory = INFERD_BACKEND_DIR;
    o.preload = {"*"};
    models_ = ModelManager::Create(std::move(o)).value();
    auto mv = models_->Get("s", "");
    ASSERT_TRUE(mv.ok()) << mv.status().message();
    mv_ = *mv;
  }
  void TearDown() override {
    mv_.reset();
    models_.reset();
    std::error_code ec;
    fs::remove_all(repo_, ec);
  }
  // Starts a stream; the future gets its completion.
  std::future<Status> Run(std::array<int32_t, 3> control, std::shared_ptr<ChunkSink> sink,
                          std::shared_ptr<Cancellation> cancel = nullptr) {
    auto done = std::make_shared<std::promise<Status>>();
    auto f = done->get_future();
    std::string bytes(12, '\0');
    std::memcpy(bytes.data(), control.data(), 12);
    std::vector<Tensor> in = {Tensor::FromBytes(DataType::kInt32, {3}, std::move(bytes))};
    auto task = std::make_unique<Task>(std::move(in), 1, "",
                                       [done](StatusOr<std::vector<Tensor>> r, const TaskTimings&) {
                                         done->set_value(r.status());
                                       });
    task->set_stream(std::move(sink));
    if (cancel) task->set_cancellation(cancel);
    EXPECT_TRUE(mv_->Submit(task).ok());
    return f;
  }
  static Status Await(std::future<Status>& f) {
    if (f.wait_for(kGuard) != std::future_status::ready) return DeadlineExceededError("guard");
    return f.get();
  }

  fs::path repo_;
  std::unique_ptr<ModelManager> models_;
  std::shared_ptr<ModelVersion> mv_;
};

TEST_F(StreamTestBackendTest, StreamsEveryChunkThenEnds) {
  auto sink = std::make_shared<Collector>();
  auto f = Run({5, 0, -1}, sink);
  EXPECT_TRUE(Await(f).ok());
  EXPECT_EQ(sink->got(), (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(mv_->queue_depth(), 0u);  // pass-through: nothing waits
}

TEST_F(StreamTestBackendTest, FailsWhenAskedAfterSomeChunks) {
  auto sink = std::make_shared<Collector>();
  auto f = Run({5, 0, 2}, sink);
  Status st = Await(f);
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_EQ(sink->got(), (std::vector<int32_t>{0, 1}));
}

TEST_F(StreamTestBackendTest, WaitsForTheSinksResume) {
  auto sink = std::make_shared<Collector>(/*pause_after_first=*/true);
  auto f = Run({4, 0, -1}, sink);
  sink->WaitFirst();
  sink->Resume();
  EXPECT_TRUE(Await(f).ok());
  EXPECT_EQ(sink->got(), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_FALSE(sink->chunk_while_paused());
}

TEST_F(StreamTestBackendTest, ACancellationStopsARunningStream) {
  auto sink = std::make_shared<Collector>(/*pause_after_first=*/true);
  auto cancel = std::make_shared<Cancellation>();
  auto f = Run({1000, 0, -1}, sink, cancel);
  sink->WaitFirst();
  cancel->Cancel(CancelledError("the client closed the connection"));
  sink->Resume();  // the next tick sees the cancellation
  EXPECT_EQ(Await(f).code(), StatusCode::kCancelled);
  EXPECT_EQ(sink->got().size(), 1u);
}

TEST_F(StreamTestBackendTest, ABlockingBackendCannotBeDecoupled) {
  const fs::path model = INFERD_EXAMPLE_MODELS "/mlp/1/model.pt";
  if (!fs::exists(model)) GTEST_SKIP() << "example models not generated (scripts/models)";
  std::string config = kConfig;
  config.replace(config.find("stream_test"), 11, "torchscript");
  config += "[parameters]\nwarmup_runs = 0\n";
  fs::create_directories(repo_ / "t" / "1");
  fs::copy_file(model, repo_ / "t" / "1" / "model.pt");
  std::ofstream(repo_ / "t" / "config.toml") << config;
  ModelManager::Options o;
  o.repository = repo_.string();
  o.backend_directory = INFERD_BACKEND_DIR;
  o.preload = {"*"};
  auto mm = ModelManager::Create(std::move(o)).value();
  auto t = mm->Get("t", "");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("cannot stream"), std::string::npos) << t.status().message();
}

}  // namespace
}  // namespace inferd
