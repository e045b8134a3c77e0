// Version policies and hot reload through an explicit load: the served set
// (latest(N), all, specific), a new version loaded beside the serving one
// and switched to atomically, an in-place change of a version's files
// (a new revision), a failed reload or an invalid config leaving the
// serving version untouched, and a model added after the start.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "model/model_manager.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
constexpr auto kGuard = std::chrono::seconds(30);

std::string Config(const std::string& policy = "") {
  return R"(backend = "fake"
max_batch_size = 0
[[input]]
name = "x"
datatype = "FP32"
dims = [2]
[[output]]
name = "x"
datatype = "FP32"
dims = [2]
)" + policy;
}

class ModelReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/inferd_reload_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    repo_ = tmpl;
  }
  void TearDown() override {
    mm_.reset();
    std::error_code ec;
    fs::remove_all(repo_, ec);
  }
  void WriteConfig(const std::string& model, const std::string& text) {
    fs::create_directories(repo_ / model);
    std::ofstream(repo_ / model / "config.toml") << text;
  }
  // Version `v` with a weights file holding `content`.
  void WriteVersion(const std::string& model, int v, const std::string& content) {
    fs::create_directories(repo_ / model / std::to_string(v));
    std::ofstream(repo_ / model / std::to_string(v) / "weights.bin") << content;
  }
  ModelManager& Create(ModelControl control = ModelControl::kExplicit,
                       std::vector<std::string> preload = {"*"}) {
    ModelManager::Options o;
    o.clock = &clock_;
    o.repository = repo_.string();
    o.backends["fake"] =
        [this](const BackendInstanceSpec& spec) -> StatusOr<std::unique_ptr<BackendInstance>> {
      loads_.fetch_add(1);
      if (fs::exists(fs::path(spec.version_dir) / "broken")) return InternalError("bad weights");
      class Echo final : public BackendInstance {
       public:
        StatusOr<std::vector<Tensor>> Execute(const std::vector<Tensor>& in) override { return in; }
      };
      return std::unique_ptr<BackendInstance>(new Echo());
    };
    o.control = control;
    o.preload = std::move(preload);
    auto mm = ModelManager::Create(std::move(o));
    EXPECT_TRUE(mm.ok()) << mm.status().message();
    mm_ = std::move(mm).value();
    return *mm_;
  }
  Status Load(const std::string& model) {
    std::promise<Status> p;
    mm_->Load(model, [&](Status st) { p.set_value(st); });
    auto f = p.get_future();
    if (f.wait_for(kGuard) != std::future_status::ready) return InternalError("no answer");
    return f.get();
  }
  ModelState Row(const std::string& model, int64_t v) {
    for (const ModelState& s : mm_->List()) {
      if (s.name == model && s.version == v) return s;
    }
    return ModelState{"", -1, VersionState::kFailed, NotFoundError("no row")};
  }

  // Moves the clock to the next rescan and waits until it is done.
  void Poll() {
    const int64_t before = mm_->polls_done();
    clock_.Advance(std::chrono::seconds(15));
    const auto until = std::chrono::steady_clock::now() + kGuard;
    while (mm_->polls_done() == before && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
    ASSERT_GT(mm_->polls_done(), before);
  }

  fs::path repo_;
  FakeClock clock_;
  std::atomic<int> loads_{0};
  std::unique_ptr<ModelManager> mm_;
};

TEST_F(ModelReloadTest, TheVersionPolicyChoosesTheServedVersions) {
  WriteConfig("latest", Config());  // latest(1) by default
  WriteConfig("two", Config("[version_policy]\npolicy = \"latest\"\nnum_versions = 2\n"));
  WriteConfig("some", Config("[version_policy]\npolicy = \"specific\"\nversions = [1, 3]\n"));
  for (const char* m : {"latest", "two", "some"}) {
    for (int v = 1; v <= 3; ++v) WriteVersion(m, v, "w");
  }
  ModelManager& mm = Create();
  EXPECT_EQ(Row("latest", 3).state, VersionState::kReady);
  EXPECT_EQ(Row("latest", 1).state, VersionState::kUnavailable);
  EXPECT_NE(Row("latest", 1).reason.message().find("not served: version_policy latest(1)"),
            std::string::npos);
  EXPECT_EQ(Row("two", 2).state, VersionState::kReady);
  EXPECT_EQ(Row("two", 1).state, VersionState::kUnavailable);
  EXPECT_EQ(Row("some", 2).state, VersionState::kUnavailable);
  EXPECT_EQ(Row("some", 3).state, VersionState::kReady);
  Acquired old = mm.Acquire("latest", "1");
  EXPECT_EQ(old.status.code(), StatusCode::kNotFound);
  EXPECT_NE(old.status.message().find("is not served (version_policy latest(1))"),
            std::string::npos);
  EXPECT_EQ(mm.Acquire("latest", "").lease->version(), 3);
  EXPECT_EQ(mm.Acquire("some", "1").lease->version(), 1);
  EXPECT_EQ(loads_.load(), 5);
}

TEST_F(ModelReloadTest, ANewVersionLoadsBesideTheServingOneAndTakesOverAtomically) {
  WriteConfig("m", Config());
  WriteVersion("m", 1, "v1");
  ModelManager& mm = Create();
  Acquired held = mm.Acquire("m", "");  // a request in flight on version 1
  ASSERT_TRUE(held.lease);
  const uint64_t rev1 = held.lease->revision();
  EXPECT_NE(rev1, 0u);
  WriteVersion("m", 2, "v2");
  ASSERT_TRUE(Load("m").ok());
  Acquired next = mm.Acquire("m", "");
  ASSERT_TRUE(next.lease);
  EXPECT_EQ(next.lease->version(), 2);
  EXPECT_NE(next.lease->revision(), rev1);
  // Version 1 leaves serving, finishes its request, then goes.
  EXPECT_EQ(Row("m", 1).state, VersionState::kUnloading);
  EXPECT_EQ(mm.Acquire("m", "1").status.code(), StatusCode::kNotFound);
  held.lease.Release();
  ASSERT_TRUE(mm.AwaitState("m", 1, VersionState::kUnavailable, kGuard));
}

TEST_F(ModelReloadTest, AChangedVersionReloadsWithANewRevisionAndAnUnchangedOneDoesNot) {
  WriteConfig("m", Config());
  WriteVersion("m", 1, "first weights");
  ModelManager& mm = Create();
  const uint64_t rev1 = mm.Acquire("m", "").lease->revision();
  ASSERT_TRUE(Load("m").ok());  // nothing changed: nothing loads
  EXPECT_EQ(loads_.load(), 1);
  EXPECT_EQ(mm.Acquire("m", "").lease->revision(), rev1);
  WriteVersion("m", 1, "second weights");
  ASSERT_TRUE(Load("m").ok());
  EXPECT_EQ(loads_.load(), 2);
  EXPECT_NE(mm.Acquire("m", "").lease->revision(), rev1);
  // A changed config is a new revision too.
  const uint64_t rev2 = mm.Acquire("m", "").lease->revision();
  WriteConfig("m", Config() + "# a comment\n");
  ASSERT_TRUE(Load("m").ok());
  EXPECT_NE(mm.Acquire("m", "").lease->revision(), rev2);
}

TEST_F(ModelReloadTest, AFailedReloadLeavesTheServingVersionServing) {
  WriteConfig("m", Config());
  WriteVersion("m", 1, "v1");
  ModelManager& mm = Create();
  WriteVersion("m", 2, "v2");
  std::ofstream(repo_ / "m" / "2" / "broken") << "x";
  Status st = Load("m");
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("bad weights"), std::string::npos) << st.message();
  EXPECT_EQ(Row("m", 2).state, VersionState::kFailed);
  EXPECT_EQ(Row("m", 1).state, VersionState::kReady);
  EXPECT_EQ(mm.Acquire("m", "").lease->version(), 1);
  // A config that no longer parses: the same.
  WriteConfig("m", "max_batch_size = \"x\"\n");
  st = Load("m");
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("config.toml"), std::string::npos) << st.message();
  EXPECT_EQ(mm.Acquire("m", "").lease->version(), 1);
  // Fixed: version 2 serves.
  WriteConfig("m", Config());
  fs::remove(repo_ / "m" / "2" / "broken");
  ASSERT_TRUE(Load("m").ok());
  EXPECT_EQ(mm.Acquire("m", "").lease->version(), 2);
}

TEST_F(ModelReloadTest, AModelAddedAfterTheStartRegistersOnItsLoad) {
  WriteConfig("m", Config());
  WriteVersion("m", 1, "v1");
  ModelManager& mm = Create();
  EXPECT_EQ(mm.Acquire("late", "").status.code(), StatusCode::kNotFound);
  WriteConfig("late", Config());
  WriteVersion("late", 1, "w");
  ASSERT_TRUE(Load("late").ok());
  EXPECT_TRUE(mm.Acquire("late", "").lease);
  EXPECT_EQ(Load("never").code(), StatusCode::kNotFound);
  EXPECT_EQ(Load("../m").code(), StatusCode::kNotFound);
}

TEST_F(ModelReloadTest, PollControlActsOnChangesSeenByTwoScansInARow) {
  WriteConfig("m", Config());
  WriteVersion("m", 1, "v1");
  WriteConfig("gone", Config());
  WriteVersion("gone", 1, "g");
  ModelManager& mm = Create(ModelControl::kPoll, {"m", "gone"});
  WriteVersion("m", 2, "v2");
  WriteConfig("new", Config());
  WriteVersion("new", 1, "n");
  fs::remove_all(repo_ / "gone");
  Poll();  // sees the changes once: nothing happens yet
  EXPECT_EQ(mm.Acquire("m", "").lease->version(), 1);
  EXPECT_EQ(mm.Acquire("new", "").status.code(), StatusCode::kNotFound);
  EXPECT_TRUE(mm.Acquire("gone", "").lease);
  Poll();  // the same again: acted on
  ASSERT_TRUE(mm.AwaitState("m", 2, VersionState::kReady, kGuard));
  ASSERT_TRUE(mm.AwaitState("m", 1, VersionState::kUnavailable, kGuard));
  EXPECT_EQ(mm.Acquire("m", "").lease->version(), 2);
  // A new model registers and loads on its first request (lazy).
  Acquired fresh = mm.Acquire("new", "");
  EXPECT_TRUE(fresh.pending.has_value()) << fresh.status.message();
  EXPECT_EQ(mm.Acquire("gone", "").status.code(), StatusCode::kNotFound);
  const int loads = loads_.load();
  Poll();  // nothing changed since
  EXPECT_EQ(loads_.load(), loads);
}

}  // namespace
}  // namespace inferd
