#include "model/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "model/repository.h"

namespace inferd {
namespace {

using ::testing::HasSubstr;

constexpr char kPath[] = "/models/resnet/config.toml";

constexpr char kFullConfig[] = R"(
backend = "torchscript"
max_batch_size = 32
instance_count = 2

[[input]]
name = "image"
datatype = "FP32"
dims = [3, -1, 224]

[[input]]
name = "scale"
datatype = "FP16"
dims = [1]

[[output]]
name = "logits"
datatype = "FP32"
dims = [1000]

[[output]]
name = "label"
datatype = "INT64"
dims = [1]

[dynamic_batching]
max_queue_delay_us = 2000
preferred_batch_sizes = [4, 8]
max_queue_size = 256

[parameters]
intra_op_threads = 1
device = "cpu"
warmup = true
)";

// A minimal valid config with `extra` spliced in at top level (before the
// first table) and `tail` appended at the end.
std::string Minimal(const std::string& extra = "", const std::string& tail = "") {
  return "backend = \"torchscript\"\n" + extra +
         "\n[[input]]\nname = \"x\"\ndatatype = \"FP32\"\ndims = [4]\n"
         "\n[[output]]\nname = \"y\"\ndatatype = \"FP32\"\ndims = [2]\n" +
         tail;
}

// Expects `text` to fail with InvalidArgument naming the path and `field`.
void ExpectError(const std::string& text, const std::string& field) {
  StatusOr<ModelConfig> c = ParseModelConfig(text, kPath, "m");
  ASSERT_FALSE(c.ok()) << "expected an error about " << field << " for:\n" << text;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr(kPath));
  EXPECT_THAT(c.status().message(), HasSubstr(field));
}

TEST(ModelConfigTest, ParsesFullConfig) {
  StatusOr<ModelConfig> c = ParseModelConfig(kFullConfig, kPath, "resnet");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->name, "resnet");
  EXPECT_EQ(c->backend, "torchscript");
  EXPECT_EQ(c->max_batch_size, 32);
  EXPECT_EQ(c->instance_count, 2);
  EXPECT_EQ(c->max_queue_size, 256);

  ASSERT_EQ(c->inputs.size(), 2u);
  EXPECT_EQ(c->inputs[0].name, "image");
  EXPECT_EQ(c->inputs[0].dtype, DataType::kFp32);
  EXPECT_EQ(c->inputs[0].dims, (Shape{3, -1, 224}));
  EXPECT_EQ(c->inputs[1].name, "scale");
  EXPECT_EQ(c->inputs[1].dtype, DataType::kFp16);
  EXPECT_EQ(c->inputs[1].dims, (Shape{1}));

  ASSERT_EQ(c->outputs.size(), 2u);
  EXPECT_EQ(c->outputs[0].name, "logits");
  EXPECT_EQ(c->outputs[0].dims, (Shape{1000}));
  EXPECT_EQ(c->outputs[1].name, "label");
  EXPECT_EQ(c->outputs[1].dtype, DataType::kInt64);

  EXPECT_TRUE(c->dynamic_batching.enabled);
  EXPECT_EQ(c->dynamic_batching.max_queue_delay_us, 2000);
  EXPECT_EQ(c->dynamic_batching.preferred_batch_sizes, (std::vector<int64_t>{4, 8}));

  EXPECT_EQ(c->parameters.size(), 3u);
  EXPECT_EQ(c->parameters.at("intra_op_threads"), "1");
  EXPECT_EQ(c->parameters.at("device"), "cpu");
  EXPECT_EQ(c->parameters.at("warmup"), "true");
}

TEST(ModelConfigTest, Defaults) {
  StatusOr<ModelConfig> c = ParseModelConfig(Minimal(), kPath, "m");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->max_batch_size, 0);
  EXPECT_EQ(c->instance_count, 1);
  EXPECT_EQ(c->max_queue_size, 1024);
  EXPECT_FALSE(c->dynamic_batching.enabled);
  EXPECT_TRUE(c->parameters.empty());
}

TEST(ModelConfigTest, DynamicBatchingCanBeDisabledExplicitly) {
  StatusOr<ModelConfig> c = ParseModelConfig(
      Minimal("max_batch_size = 4\n", "[dynamic_batching]\nenable = false\n"), kPath, "m");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->dynamic_batching.enabled);
}

TEST(ModelConfigTest, FullShape) {
  StatusOr<ModelConfig> c = ParseModelConfig(kFullConfig, kPath, "resnet");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->FullShape(c->inputs[0]), (Shape{-1, 3, -1, 224}));
  EXPECT_EQ(c->FullShape(c->outputs[0]), (Shape{-1, 1000}));

  ModelConfig unbatched = *c;
  unbatched.max_batch_size = 0;
  EXPECT_EQ(unbatched.FullShape(unbatched.inputs[0]), (Shape{3, -1, 224}));
  TensorConfig scalar;
  scalar.dims = {};
  EXPECT_EQ(unbatched.FullShape(scalar), (Shape{}));
  EXPECT_EQ(c->FullShape(scalar), (Shape{-1}));
}

TEST(ModelConfigTest, MissingBackend) {
  std::string text = Minimal();
  text.erase(0, text.find('\n') + 1);  // drop the backend line
  ExpectError(text, "backend");
}

TEST(ModelConfigTest, BackendNotAString) {
  std::string text = Minimal();
  text.replace(0, text.find('\n'), "backend = 3");
  ExpectError(text, "backend");
}

TEST(ModelConfigTest, NegativeMaxBatchSize) {
  ExpectError(Minimal("max_batch_size = -1\n"), "max_batch_size");
}

TEST(ModelConfigTest, StringMaxBatchSize) {
  ExpectError(Minimal("max_batch_size = \"8\"\n"), "max_batch_size");
}

TEST(ModelConfigTest, BadInstanceCount) {
  ExpectError(Minimal("instance_count = 0\n"), "instance_count");
  ExpectError(Minimal("instance_count = 65\n"), "instance_count");
}

TEST(ModelConfigTest, UnknownDatatype) {
  std::string text = Minimal();
  text.replace(text.find("\"FP32\""), 6, "\"FLOAT\"");
  ExpectError(text, "input[0].datatype");
  StatusOr<ModelConfig> c = ParseModelConfig(text, kPath, "m");
  EXPECT_THAT(c.status().message(), HasSubstr("FLOAT"));
}

TEST(ModelConfigTest, DimsContainingZero) {
  std::string text = Minimal();
  text.replace(text.find("[4]"), 3, "[4, 0]");
  ExpectError(text, "input[0].dims");
}

TEST(ModelConfigTest, DimsBelowMinusOne) {
  std::string text = Minimal();
  text.replace(text.find("[2]"), 3, "[-2]");
  ExpectError(text, "output[0].dims");
}

TEST(ModelConfigTest, MissingDims) {
  std::string text = Minimal();
  text.erase(text.find("dims = [4]"), 10);
  ExpectError(text, "input[0].dims");
}

TEST(ModelConfigTest, DuplicateInputNames) {
  ExpectError(Minimal("", "[[input]]\nname = \"x\"\ndatatype = \"INT32\"\ndims = [1]\n"),
              "input[1].name");
}

TEST(ModelConfigTest, DuplicateOutputNames) {
  ExpectError(Minimal("", "[[output]]\nname = \"y\"\ndatatype = \"INT32\"\ndims = [1]\n"),
              "output[1].name");
}

TEST(ModelConfigTest, UnknownTensorKey) {
  std::string text = Minimal();
  text.replace(text.find("dims = [2]"), 10, "dims = [2]\nshape = [2]");
  ExpectError(text, "output[0].shape");
}

TEST(ModelConfigTest, UnknownTopLevelKey) {
  ExpectError(Minimal("max_batchsize = 4\n"), "max_batchsize");
}

TEST(ModelConfigTest, UnknownDynamicBatchingKey) {
  ExpectError(Minimal("max_batch_size = 4\n", "[dynamic_batching]\nmax_delay_us = 10\n"),
              "dynamic_batching.max_delay_us");
}

TEST(ModelConfigTest, PreferredBatchSizeAboveMaxBatchSize) {
  ExpectError(
      Minimal("max_batch_size = 8\n", "[dynamic_batching]\npreferred_batch_sizes = [4, 16]\n"),
      "dynamic_batching.preferred_batch_sizes");
}

TEST(ModelConfigTest, PreferredBatchSizeEqualToMaxIsFine) {
  StatusOr<ModelConfig> c = ParseModelConfig(
      Minimal("max_batch_size = 8\n", "[dynamic_batching]\npreferred_batch_sizes = [8]\n"), kPath,
      "m");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
}

TEST(ModelConfigTest, DynamicBatchingNeedsMaxBatchSize) {
  ExpectError(Minimal("max_batch_size = 0\n", "[dynamic_batching]\nmax_queue_delay_us = 100\n"),
              "dynamic_batching");
  ExpectError(Minimal("", "[dynamic_batching]\n"), "dynamic_batching");
}

TEST(ModelConfigTest, MissingInput) {
  std::string text =
      "backend = \"torchscript\"\n[[output]]\nname = \"y\"\ndatatype = \"FP32\"\n"
      "dims = [2]\n";
  ExpectError(text, "input");
  StatusOr<ModelConfig> c = ParseModelConfig(text, kPath, "m");
  EXPECT_THAT(c.status().message(), HasSubstr("[[input]]"));
}

TEST(ModelConfigTest, MissingOutput) {
  std::string text =
      "backend = \"torchscript\"\n[[input]]\nname = \"x\"\ndatatype = \"FP32\"\n"
      "dims = [2]\n";
  ExpectError(text, "output");
}

TEST(ModelConfigTest, EmptyName) {
  std::string text = Minimal();
  text.replace(text.find("\"x\""), 3, "\"\"");
  ExpectError(text, "input[0].name");
}

TEST(ModelConfigTest, TomlSyntaxErrorNamesPath) {
  StatusOr<ModelConfig> c = ParseModelConfig("backend = \n[[input]", kPath, "m");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr(kPath));
}

TEST(ModelConfigTest, LoadModelConfigMissingFile) {
  StatusOr<ModelConfig> c = LoadModelConfig("/nonexistent/inferd/config.toml", "m");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("/nonexistent/inferd/config.toml"));
}

// ---------------------------------------------------------------- Repository

class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/inferd_repository_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void Write(const std::string& rel, const std::string& text) {
    std::filesystem::path p = std::filesystem::path(dir_) / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  void MakeDir(const std::string& rel) {
    std::filesystem::create_directories(std::filesystem::path(dir_) / rel);
  }

  std::string dir_;
};

TEST_F(RepositoryTest, ScansGoodBrokenAndVersionlessModels) {
  Write("good/config.toml", Minimal());
  MakeDir("good/1");
  MakeDir("good/3");
  MakeDir("good/latest");  // not a number: ignored
  MakeDir("good/0");       // not positive: ignored
  MakeDir("good/2x");      // not a number: ignored
  Write("good/7", "a file, not a directory: ignored");

  Write("broken/config.toml", Minimal("max_batch_size = \"lots\"\n"));
  MakeDir("broken/1");

  Write("noversion/config.toml", Minimal());

  Write("README.md", "files at the top level are not models");
  MakeDir(".hidden/1");

  StatusOr<std::vector<RepositoryEntry>> scan = ScanRepository(dir_);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  ASSERT_EQ(scan->size(), 3u);
  const RepositoryEntry& broken = (*scan)[0];
  const RepositoryEntry& good = (*scan)[1];
  const RepositoryEntry& noversion = (*scan)[2];

  EXPECT_EQ(good.name, "good");
  EXPECT_EQ(good.dir, dir_ + "/good");
  EXPECT_TRUE(good.status.ok()) << good.status.ToString();
  EXPECT_EQ(good.config.name, "good");
  EXPECT_EQ(good.config.backend, "torchscript");
  ASSERT_EQ(good.versions.size(), 2u);
  EXPECT_EQ(good.versions.at(1), dir_ + "/good/1");
  EXPECT_EQ(good.versions.at(3), dir_ + "/good/3");

  EXPECT_EQ(broken.name, "broken");
  EXPECT_EQ(broken.status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(broken.status.message(), HasSubstr(dir_ + "/broken/config.toml"));
  EXPECT_THAT(broken.status.message(), HasSubstr("max_batch_size"));
  EXPECT_EQ(broken.versions.size(), 1u);

  EXPECT_EQ(noversion.name, "noversion");
  EXPECT_FALSE(noversion.status.ok());
  EXPECT_EQ(noversion.status.code(), StatusCode::kNotFound);
  EXPECT_THAT(noversion.status.message(), HasSubstr("version"));
  EXPECT_TRUE(noversion.versions.empty());
}

TEST_F(RepositoryTest, ModelWithoutConfigIsListedWithNotFound) {
  MakeDir("bare/1");
  StatusOr<std::vector<RepositoryEntry>> scan = ScanRepository(dir_);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  ASSERT_EQ(scan->size(), 1u);
  EXPECT_EQ((*scan)[0].status.code(), StatusCode::kNotFound);
  EXPECT_THAT((*scan)[0].status.message(), HasSubstr("config.toml"));
}

TEST_F(RepositoryTest, EmptyRepository) {
  StatusOr<std::vector<RepositoryEntry>> scan = ScanRepository(dir_);
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  EXPECT_TRUE(scan->empty());
}

TEST_F(RepositoryTest, MissingDirectoryIsNotFound) {
  StatusOr<std::vector<RepositoryEntry>> scan = ScanRepository(dir_ + "/nope");
  ASSERT_FALSE(scan.ok());
  EXPECT_EQ(scan.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(scan.status().message(), HasSubstr(dir_ + "/nope"));
}

}  // namespace
}  // namespace inferd

namespace inferd {
namespace {

TEST(ModelConfigSchedulingTest, DefaultsAreOneLevelWithoutOverloadControl) {
  StatusOr<ModelConfig> c = ParseModelConfig(Minimal(), kPath, "m");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->scheduling.priority_levels, 1);
  EXPECT_EQ(c->scheduling.Level(0, 0), 1);
  EXPECT_EQ(c->scheduling.Level(7, 0), 1);
  EXPECT_FALSE(c->overload.enabled);
}

TEST(ModelConfigSchedulingTest, ParsesLevelsPoliciesAndOverload) {
  StatusOr<ModelConfig> c = ParseModelConfig(Minimal("", R"(
[scheduling]
priority_levels = 3
lower_level_share = 0.2
[scheduling.default_queue_policy]
max_timeout_us = 5000000
[scheduling.priority_queue_policy.3]
max_queue_size = 7
default_timeout_us = 1000
timeout_action = "delay"
[overload]
target_delay_us = 20000
min_limit = 2
max_limit = 9
)"),
                                             kPath, "m");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const SchedulingConfig& s = c->scheduling;
  EXPECT_EQ(s.default_priority, 3);  // the lowest level unless set
  EXPECT_DOUBLE_EQ(s.lower_level_share, 0.2);
  EXPECT_EQ(s.Policy(1).max_timeout_us, 5000000);  // the default policy
  EXPECT_FALSE(s.Policy(1).delay);
  EXPECT_EQ(s.Policy(3).max_queue_size, 7);
  EXPECT_EQ(s.Policy(3).max_timeout_us, 5000000);  // inherited
  EXPECT_TRUE(s.Policy(3).delay);
  EXPECT_EQ(s.Level(0, 0), 3);
  EXPECT_EQ(s.Level(1, 0), 1);
  EXPECT_EQ(s.Level(9, 0), 3);  // clamped to the lowest level
  EXPECT_EQ(s.Level(1, 2), 2);  // capped by the tenant's max_priority
  EXPECT_EQ(s.Level(1, 1), 1);  // 1: no cap
  EXPECT_TRUE(c->overload.enabled);
  EXPECT_EQ(c->overload.target_delay_us, 20000);
  EXPECT_EQ(c->overload.max_limit, 9);
}

TEST(ModelConfigSchedulingTest, ErrorsNameTheField) {
  ExpectError(Minimal("", "[scheduling]\npriority_levels = 17\n"), "scheduling.priority_levels");
  ExpectError(Minimal("", "[scheduling]\npriority_levels = 2\ndefault_priority = 3\n"),
              "scheduling.default_priority");
  ExpectError(Minimal("", "[scheduling]\nlower_level_share = 0.7\n"),
              "scheduling.lower_level_share");
  ExpectError(Minimal("", "[scheduling]\nlevels = 2\n"), "scheduling.levels");
  ExpectError(Minimal("",
                      "[scheduling]\npriority_levels = 2\n"
                      "[scheduling.priority_queue_policy.3]\nmax_queue_size = 1\n"),
              "scheduling.priority_queue_policy.3");
  ExpectError(Minimal("", "[scheduling.default_queue_policy]\ntimeout_action = \"drop\"\n"),
              "scheduling.default_queue_policy.timeout_action");
  ExpectError(Minimal("",
                      "[scheduling.default_queue_policy]\ndefault_timeout_us = 9\n"
                      "max_timeout_us = 5\n"),
              "default_timeout_us");
  ExpectError(Minimal("", "[overload]\ninterval_us = 5\n"), "overload.interval_us");
  ExpectError(Minimal("", "[overload]\nmin_limit = 5\nmax_limit = 2\n"), "overload.min_limit");
  ExpectError(Minimal("", "[overload]\nlimit = 5\n"), "overload.limit");
  ExpectError(Minimal("", "[scheduling]\nlower_level_share = 1e-30\n"),
              "scheduling.lower_level_share");
  ExpectError(Minimal("", "[overload]\nmin_limit = 4611686018427387904\n"), "overload");
  ExpectError(Minimal("max_batch_size = 16777217\n"), "max_batch_size");
  ExpectError(Minimal("max_queue_size = 16777217\n"), "max_queue_size");
  ExpectError(Minimal("max_batch_size = 8\n", "[dynamic_batching]\nadaptive = true\n"),
              "dynamic_batching.latency_target_us");
  ExpectError(Minimal("max_batch_size = 8\n", "[dynamic_batching]\nadaptive = 1\n"),
              "dynamic_batching.adaptive");
}

TEST(ModelConfigSchedulingTest, ParsesAdaptiveBatching) {
  StatusOr<ModelConfig> c =
      ParseModelConfig(Minimal("max_batch_size = 8\n",
                               "[dynamic_batching]\nadaptive = true\nlatency_target_us = 200000\n"),
                       kPath, "m");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->dynamic_batching.adaptive);
  EXPECT_EQ(c->dynamic_batching.latency_target_us, 200000);
}

}  // namespace
}  // namespace inferd

namespace inferd {
namespace {

TEST(ModelConfigLifecycleTest, KeepAliveAndPin) {
  StatusOr<ModelConfig> plain = ParseModelConfig(Minimal(), kPath, "m");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_FALSE(plain->keep_alive_s.has_value());  // the server's default
  EXPECT_FALSE(plain->pin);
  StatusOr<ModelConfig> c =
      ParseModelConfig(Minimal("keep_alive_s = -1\npin = true\n"), kPath, "m");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->keep_alive_s, -1);
  EXPECT_TRUE(c->pin);
  EXPECT_EQ(ParseModelConfig(Minimal("keep_alive_s = 0\n"), kPath, "m")->keep_alive_s, 0);
  ExpectError(Minimal("keep_alive_s = -2\n"), "keep_alive_s");
  ExpectError(Minimal("keep_alive_s = 315360001\n"), "keep_alive_s");
  ExpectError(Minimal("keep_alive_s = \"5m\"\n"), "keep_alive_s");
  ExpectError(Minimal("pin = 1\n"), "pin");
}

}  // namespace
}  // namespace inferd
