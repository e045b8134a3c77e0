#include "common/settings.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace inferd {
namespace {

using ::testing::HasSubstr;
using Type = SettingSpec::Type;
using Map = std::map<std::string, std::string>;

std::vector<SettingSpec> Specs() {
  return {
      {"http.port", Type::kInt, "8000", "HTTP port"},
      {"http.host", Type::kString, "0.0.0.0", "listen address"},
      {"log.level", Type::kString, "info", "log level"},
      {"cache.enabled", Type::kBool, "false", "enable the response cache"},
      {"cache.memory.max_bytes", Type::kInt, "1048576", "memory cache size"},
      {"cache.hit_ratio_target", Type::kDouble, "0.5", "a double"},
      {"sched.max_queue_size", Type::kInt, "1024", "queue bound"},
  };
}

class SettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/inferd_settings_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Writes `text` to a file in the temp dir and returns its path.
  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary);
    out << text;
    return path;
  }

  std::string dir_;
};

TEST_F(SettingsTest, DefaultsOnly) {
  StatusOr<Settings> s = Settings::Load(Specs(), "", {}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->GetInt("http.port"), 8000);
  EXPECT_EQ(s->GetString("http.host"), "0.0.0.0");
  EXPECT_FALSE(s->GetBool("cache.enabled"));
  EXPECT_EQ(s->GetInt("cache.memory.max_bytes"), 1048576);
  EXPECT_DOUBLE_EQ(s->GetDouble("cache.hit_ratio_target"), 0.5);
  EXPECT_EQ(s->Source("http.port"), "default");
  EXPECT_EQ(s->Source("cache.enabled"), "default");
}

TEST_F(SettingsTest, PrecedenceFlagOverEnvOverFileOverDefault) {
  std::string file = WriteFile("c.toml", R"(
[http]
port = 9000
host = "10.0.0.1"

[log]
level = "debug"

[sched]
max_queue_size = 10
)");
  Map env = {
      {"INFERD_HTTP_PORT", "9100"},
      {"INFERD_HTTP_HOST", "10.0.0.2"},
      {"INFERD_CACHE_ENABLED", "true"},
      {"INFERD_UNRELATED", "ignored"},
  };
  Map flags = {{"http.port", "9200"}, {"cache.memory.max_bytes", "4096"}};
  StatusOr<Settings> s = Settings::Load(Specs(), file, env, flags);
  ASSERT_TRUE(s.ok()) << s.status().ToString();

  // flag > env > file
  EXPECT_EQ(s->GetInt("http.port"), 9200);
  EXPECT_EQ(s->Source("http.port"), "flag");
  // env > file
  EXPECT_EQ(s->GetString("http.host"), "10.0.0.2");
  EXPECT_EQ(s->Source("http.host"), "env");
  // env > default
  EXPECT_TRUE(s->GetBool("cache.enabled"));
  EXPECT_EQ(s->Source("cache.enabled"), "env");
  // flag > default
  EXPECT_EQ(s->GetInt("cache.memory.max_bytes"), 4096);
  EXPECT_EQ(s->Source("cache.memory.max_bytes"), "flag");
  // file > default
  EXPECT_EQ(s->GetString("log.level"), "debug");
  EXPECT_EQ(s->Source("log.level"), "file");
  EXPECT_EQ(s->GetInt("sched.max_queue_size"), 10);
  EXPECT_EQ(s->Source("sched.max_queue_size"), "file");
  // default
  EXPECT_DOUBLE_EQ(s->GetDouble("cache.hit_ratio_target"), 0.5);
  EXPECT_EQ(s->Source("cache.hit_ratio_target"), "default");
}

TEST_F(SettingsTest, FlagOverFileWithoutEnv) {
  std::string file = WriteFile("c.toml", "[log]\nlevel = \"warn\"\n");
  StatusOr<Settings> s = Settings::Load(Specs(), file, {}, {{"log.level", "trace"}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->GetString("log.level"), "trace");
  EXPECT_EQ(s->Source("log.level"), "flag");
}

TEST_F(SettingsTest, NestedTomlKeys) {
  std::string file = WriteFile("c.toml", R"(
[cache]
enabled = true
hit_ratio_target = 0.75

[cache.memory]
max_bytes = 123456789
)");
  StatusOr<Settings> s = Settings::Load(Specs(), file, {}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->GetInt("cache.memory.max_bytes"), 123456789);
  EXPECT_EQ(s->Source("cache.memory.max_bytes"), "file");
  EXPECT_TRUE(s->GetBool("cache.enabled"));
  EXPECT_DOUBLE_EQ(s->GetDouble("cache.hit_ratio_target"), 0.75);
}

TEST_F(SettingsTest, FileIntegerForDoubleKey) {
  std::string file = WriteFile("c.toml", "[cache]\nhit_ratio_target = 2\n");
  StatusOr<Settings> s = Settings::Load(Specs(), file, {}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_DOUBLE_EQ(s->GetDouble("cache.hit_ratio_target"), 2.0);
}

// BUG (src/common/settings.cc, NodeText): a TOML float is turned into text with
// std::to_string, which prints 6 decimals, so 1.25e-7 from the file reads back
// as 0 (and every file double loses precision past 1e-6). Disabled until fixed.
TEST_F(SettingsTest, FileDoubleKeepsPrecision) {
  std::string file = WriteFile("c.toml", "[cache]\nhit_ratio_target = 1.25e-7\n");
  StatusOr<Settings> s = Settings::Load(Specs(), file, {}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_DOUBLE_EQ(s->GetDouble("cache.hit_ratio_target"), 1.25e-7);
}

TEST_F(SettingsTest, DottedTomlKeysAreTheSameAsTables) {
  std::string file = WriteFile("c.toml", "cache.memory.max_bytes = 77\nhttp.port = 1234\n");
  StatusOr<Settings> s = Settings::Load(Specs(), file, {}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->GetInt("cache.memory.max_bytes"), 77);
  EXPECT_EQ(s->GetInt("http.port"), 1234);
}

TEST_F(SettingsTest, EnvAndFlagSpelling) {
  EXPECT_EQ(Settings::EnvName("http.port"), "INFERD_HTTP_PORT");
  EXPECT_EQ(Settings::EnvName("cache.memory.max_bytes"), "INFERD_CACHE_MEMORY_MAX_BYTES");
  EXPECT_EQ(Settings::FlagName("http.port"), "--http-port");
  EXPECT_EQ(Settings::FlagName("cache.memory.max_bytes"), "--cache-memory-max-bytes");
}

TEST_F(SettingsTest, EnvUsesEnvName) {
  StatusOr<Settings> s = Settings::Load(Specs(), "", {{"INFERD_CACHE_MEMORY_MAX_BYTES", "55"}}, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->GetInt("cache.memory.max_bytes"), 55);
  EXPECT_EQ(s->Source("cache.memory.max_bytes"), "env");
}

TEST_F(SettingsTest, BoolSpellings) {
  for (const char* t : {"true", "1", "yes", "on"}) {
    StatusOr<Settings> s = Settings::Load(Specs(), "", {{"INFERD_CACHE_ENABLED", t}}, {});
    ASSERT_TRUE(s.ok()) << t;
    EXPECT_TRUE(s->GetBool("cache.enabled")) << t;
  }
  for (const char* f : {"false", "0", "no", "off"}) {
    StatusOr<Settings> s = Settings::Load(Specs(), "", {}, {{"cache.enabled", f}});
    ASSERT_TRUE(s.ok()) << f;
    EXPECT_FALSE(s->GetBool("cache.enabled")) << f;
  }
}

TEST_F(SettingsTest, BadIntInEnvNamesVariableAndKey) {
  StatusOr<Settings> s = Settings::Load(Specs(), "", {{"INFERD_HTTP_PORT", "80x"}}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("environment variable INFERD_HTTP_PORT"));
  EXPECT_THAT(s.status().message(), HasSubstr("http.port"));
  EXPECT_THAT(s.status().message(), HasSubstr("80x"));
}

TEST_F(SettingsTest, EmptyIntInEnvIsAnError) {
  StatusOr<Settings> s = Settings::Load(Specs(), "", {{"INFERD_HTTP_PORT", ""}}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("INFERD_HTTP_PORT"));
}

TEST_F(SettingsTest, BadBoolInFileNamesFileAndKey) {
  std::string file = WriteFile("bad_bool.toml", "[cache]\nenabled = \"maybe\"\n");
  StatusOr<Settings> s = Settings::Load(Specs(), file, {}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr(file));
  EXPECT_THAT(s.status().message(), HasSubstr("cache.enabled"));
  EXPECT_THAT(s.status().message(), HasSubstr("boolean"));
}

TEST_F(SettingsTest, NonScalarInFileNamesFileAndKey) {
  std::string file = WriteFile("array.toml", "[http]\nport = [1, 2]\n");
  StatusOr<Settings> s = Settings::Load(Specs(), file, {}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr(file));
  EXPECT_THAT(s.status().message(), HasSubstr("http.port"));
}

TEST_F(SettingsTest, BadFlagNamesFlagAndKey) {
  StatusOr<Settings> s = Settings::Load(Specs(), "", {}, {{"cache.memory.max_bytes", "lots"}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("--cache-memory-max-bytes"));
  EXPECT_THAT(s.status().message(), HasSubstr("cache.memory.max_bytes"));
  EXPECT_THAT(s.status().message(), HasSubstr("lots"));
}

TEST_F(SettingsTest, BadDoubleFlag) {
  StatusOr<Settings> s = Settings::Load(Specs(), "", {}, {{"cache.hit_ratio_target", "0.5.1"}});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("--cache-hit-ratio-target"));
}

TEST_F(SettingsTest, UnknownFlagIsAnError) {
  StatusOr<Settings> s = Settings::Load(Specs(), "", {}, {{"http.prot", "1"}});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("--http-prot"));
}

TEST_F(SettingsTest, UnknownFileKeyNamesKey) {
  std::string file = WriteFile("typo.toml", "[cache.memory]\nmax_byte = 10\n");
  StatusOr<Settings> s = Settings::Load(Specs(), file, {}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("cache.memory.max_byte"));
  EXPECT_THAT(s.status().message(), HasSubstr(file));
}

TEST_F(SettingsTest, MissingFileIsAnErrorNamingIt) {
  std::string file = dir_ + "/does_not_exist.toml";
  StatusOr<Settings> s = Settings::Load(Specs(), file, {}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr(file));
}

TEST_F(SettingsTest, UnparsableFileIsAnErrorNamingIt) {
  std::string file = WriteFile("broken.toml", "[http\nport = = 3\n");
  StatusOr<Settings> s = Settings::Load(Specs(), file, {}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr(file));
  EXPECT_THAT(s.status().message(), HasSubstr("line"));
}

TEST_F(SettingsTest, ProcessEnvKeepsOnlyInferdVariables) {
  ASSERT_EQ(setenv("INFERD_SETTINGS_TEST_VAR", "v=1", 1), 0);
  ASSERT_EQ(setenv("NOT_INFERD_SETTINGS_TEST_VAR", "x", 1), 0);
  Map env = Settings::ProcessEnv();
  unsetenv("INFERD_SETTINGS_TEST_VAR");
  unsetenv("NOT_INFERD_SETTINGS_TEST_VAR");
  ASSERT_EQ(env.count("INFERD_SETTINGS_TEST_VAR"), 1u);
  EXPECT_EQ(env["INFERD_SETTINGS_TEST_VAR"], "v=1");
  EXPECT_EQ(env.count("NOT_INFERD_SETTINGS_TEST_VAR"), 0u);
  for (const auto& [k, v] : env) EXPECT_EQ(k.rfind("INFERD_", 0), 0u) << k;
}

}  // namespace
}  // namespace inferd
