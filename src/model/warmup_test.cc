// [[warmup]]: parsing (every rule names its field), the inputs each entry
// makes (shapes, fills, seeded random data, files), and running entries on
// instances (errors name the entry and the batch size).

#include "model/warmup.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/model_config.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;

// A batching model with an FP32 [4] input "x" and an INT64 [-1] input "ids".
std::string Config(const std::string& warmup, int64_t max_batch = 8) {
  return "backend = \"fake\"\nmax_batch_size = " + std::to_string(max_batch) +
         "\n[[input]]\nname = \"x\"\ndatatype = \"FP32\"\ndims = [4]\n"
         "[[input]]\nname = \"ids\"\ndatatype = \"INT64\"\ndims = [-1]\n"
         "[[output]]\nname = \"y\"\ndatatype = \"FP32\"\ndims = [2]\n" +
         warmup;
}

constexpr char kIds[] = "[warmup.input.ids]\ndims = [3]\n";

StatusOr<ModelConfig> Parse(const std::string& text) {
  return ParseModelConfig(text, "/m/config.toml", "m");
}

void ExpectRefused(const std::string& text, const std::string& field) {
  auto c = Parse(text);
  ASSERT_FALSE(c.ok()) << text;
  EXPECT_NE(c.status().message().find(field), std::string::npos) << c.status().message();
}

TEST(WarmupConfigTest, ParsesEntriesWithDefaults) {
  auto c = Parse(Config(std::string("[[warmup]]\nbatch_sizes = [1, 8]\ncount = 2\n") + kIds +
                        "fill = \"values\"\nvalues = [7]\n"
                        "[[warmup]]\nname = \"zeros\"\nfill = \"zero\"\n" +
                        kIds));
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->warmup.size(), 2u);
  EXPECT_EQ(c->warmup[0].name, "warmup0");
  EXPECT_EQ(c->warmup[0].batch_sizes, (std::vector<int64_t>{1, 8}));
  EXPECT_EQ(c->warmup[0].count, 2);
  EXPECT_EQ(c->warmup[0].fill, WarmupFill::kRandom);
  EXPECT_EQ(c->warmup[1].name, "zeros");
  EXPECT_EQ(c->warmup[1].batch_sizes, (std::vector<int64_t>{1}));
}

TEST(WarmupConfigTest, ErrorsNameTheField) {
  ExpectRefused(Config("[[warmup]]\n"), "warmup[0].input.ids.dims");  // variable dims
  ExpectRefused(Config(std::string("[[warmup]]\nbatch_sizes = [16]\n") + kIds),
                "warmup[0].batch_sizes");
  ExpectRefused(Config(std::string("[[warmup]]\nbatch_sizes = [1]\n") + kIds, 0),
                "warmup[0].batch_sizes");
  ExpectRefused(Config(std::string("[[warmup]]\ncount = 101\n") + kIds), "warmup[0].count");
  ExpectRefused(Config(std::string("[[warmup]]\nfill = \"ones\"\n") + kIds), "warmup[0].fill");
  ExpectRefused(Config(std::string("[[warmup]]\nsize = 1\n") + kIds), "warmup[0].size");
  ExpectRefused(Config("[[warmup]]\n[warmup.input.nope]\n"), "warmup[0].input.nope");
  ExpectRefused(Config("[[warmup]]\n[warmup.input.ids]\ndims = [3, 1]\n"),
                "warmup[0].input.ids.dims");
  ExpectRefused(Config("[[warmup]]\n[warmup.input.x]\ndims = [5]\n"), "warmup[0].input.x.dims");
  ExpectRefused(Config(std::string(kIds) + "fill = \"values\"\n", 8).insert(0, ""),
                "warmup");  // a table without [[warmup]]: not an array of tables
  ExpectRefused(Config(std::string("[[warmup]]\n") + kIds + "fill = \"values\"\n"),
                "warmup[0].input.ids.values");
  ExpectRefused(Config(std::string("[[warmup]]\n") + kIds + "fill = \"file\"\n"),
                "warmup[0].input.ids.file");
  ExpectRefused(Config(std::string("[[warmup]]\n") + kIds + "file = \"../x.bin\"\n"),
                "warmup[0].input.ids.file");
}

TEST(WarmupInputsTest, ShapesFillsAndSeededRandomData) {
  auto c = Parse(Config(std::string("[[warmup]]\nbatch_sizes = [1, 8]\n") + kIds +
                        "fill = \"values\"\nvalues = [7, 8]\n"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto in = WarmupInputs(*c, c->warmup[0], 0, 8, "/nonexistent");
  ASSERT_TRUE(in.ok()) << in.status().message();
  ASSERT_EQ(in->size(), 2u);
  EXPECT_EQ((*in)[0].shape(), (Shape{8, 4}));
  EXPECT_EQ((*in)[1].shape(), (Shape{8, 3}));
  int64_t ids[24];
  std::memcpy(ids, (*in)[1].data(), sizeof(ids));
  EXPECT_EQ(ids[0], 7);
  EXPECT_EQ(ids[1], 8);
  EXPECT_EQ(ids[23], 8);
  float x[32];
  std::memcpy(x, (*in)[0].data(), sizeof(x));
  bool varied = false;
  for (float f : x) {
    EXPECT_GE(f, 0.0f);
    EXPECT_LT(f, 1.0f);
    varied = varied || f != x[0];
  }
  EXPECT_TRUE(varied);
  // The same entry gives the same data at every load.
  auto again = WarmupInputs(*c, c->warmup[0], 0, 8, "/nonexistent");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].bytes(), (*in)[0].bytes());
}

TEST(WarmupInputsTest, FilesHoldOneItemAndAreRepeated) {
  char tmpl[] = "/tmp/inferd_warmup_test_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  const float item[4] = {1, 2, 3, 4};
  std::ofstream(dir / "x.bin", std::ios::binary).write(reinterpret_cast<const char*>(item), 16);
  std::ofstream(dir / "short.bin", std::ios::binary).write("abc", 3);
  auto c = Parse(Config(std::string("[[warmup]]\nbatch_sizes = [2]\n") + kIds +
                        "[warmup.input.x]\nfill = \"file\"\nfile = \"x.bin\"\n"
                        "[[warmup]]\n" +
                        kIds + "[warmup.input.x]\nfill = \"file\"\nfile = \"short.bin\"\n"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto in = WarmupInputs(*c, c->warmup[0], 0, 2, dir.string());
  ASSERT_TRUE(in.ok()) << in.status().message();
  float x[8];
  std::memcpy(x, (*in)[0].data(), sizeof(x));
  EXPECT_EQ(x[4], 1.0f);
  EXPECT_EQ(x[7], 4.0f);
  auto bad = WarmupInputs(*c, c->warmup[1], 1, 1, dir.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("short.bin holds 3 bytes"), std::string::npos)
      << bad.status().message();
  fs::remove_all(dir);
}

class CountingInstance final : public BackendInstance {
 public:
  StatusOr<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
    batches.push_back(inputs[0].shape()[0]);
    if (fail_at > 0 && inputs[0].shape()[0] == fail_at) return InternalError("out of memory");
    return inputs;
  }
  std::vector<int64_t> batches;
  int64_t fail_at = 0;
};

TEST(RunWarmupTest, RunsEveryEntryCountTimesPerBatchSizeAndNamesFailures) {
  auto c = Parse(
      Config(std::string("[[warmup]]\nname = \"b\"\nbatch_sizes = [1, 4]\ncount = 2\n") + kIds));
  ASSERT_TRUE(c.ok()) << c.status().message();
  CountingInstance a, b;
  FakeClock clock;
  Duration took{};
  ASSERT_TRUE(RunWarmup(*c, {&a, &b}, "/nonexistent", &clock, &took).ok());
  EXPECT_EQ(a.batches, (std::vector<int64_t>{1, 1, 4, 4}));
  EXPECT_EQ(b.batches, a.batches);
  CountingInstance failing;
  failing.fail_at = 4;
  Status st = RunWarmup(*c, {&failing}, "/nonexistent", &clock, &took);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("warm-up 'b' at batch size 4"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("out of memory"), std::string::npos);
}

}  // namespace
}  // namespace inferd
