#include "admission/admission.h"

#include <gtest/gtest.h>

namespace inferd {
namespace {

TenantConfig Tenant(const std::string& name, const std::string& key, bool admin = false) {
  return TenantConfig{name, {Sha256(key)}, admin};
}

TEST(AdmissionTest, KeysNameTheirTenantAndNoKeyIsTheDefaultTenant) {
  AdmissionConfig config;
  config.tenants = {Tenant("acme", "key-a", /*admin=*/true), Tenant("beta", "key-b")};
  config.tenants[1].key_digests.push_back(Sha256("key-b2"));
  auto a = Admission::Create(config);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto t = (*a)->Authenticate("key-a");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->name, "acme");
  EXPECT_TRUE((*t)->admin);
  EXPECT_EQ((*(*a)->Authenticate("key-b2"))->name, "beta");
  EXPECT_FALSE((*(*a)->Authenticate("key-b"))->admin);
  // Keys optional: no key is the default tenant, admin (as without tenants).
  auto d = (*a)->Authenticate("");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->name, "default");
  EXPECT_TRUE((*d)->admin);
  // An unknown key is refused even so, and so is one too long to be ours.
  EXPECT_EQ((*a)->Authenticate("key-c").status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ((*a)->Authenticate(std::string(10000, 'k')).status().code(),
            StatusCode::kUnauthenticated);
}

TEST(AdmissionTest, RequiredAuthRefusesRequestsWithoutAKey) {
  AdmissionConfig config;
  config.auth_required = true;
  config.tenants = {Tenant("acme", "key-a")};
  auto a = Admission::Create(config);
  ASSERT_TRUE(a.ok());
  auto none = (*a)->Authenticate("");
  EXPECT_EQ(none.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(none.status().message().find("missing API key"), std::string::npos);
  EXPECT_FALSE((*a)->default_tenant().admin);
  EXPECT_EQ((*(*a)->Authenticate("key-a"))->name, "acme");
}

TEST(AdmissionTest, RejectsConfigsThatCannotWork) {
  AdmissionConfig required_without_keys;
  required_without_keys.auth_required = true;
  EXPECT_FALSE(Admission::Create(required_without_keys).ok());
  AdmissionConfig twice;
  twice.tenants = {Tenant("acme", "k1"), Tenant("acme", "k2")};
  EXPECT_FALSE(Admission::Create(twice).ok());
  AdmissionConfig shared_key;
  shared_key.tenants = {Tenant("acme", "k1"), Tenant("beta", "k1")};
  EXPECT_FALSE(Admission::Create(shared_key).ok());
  AdmissionConfig reserved;
  reserved.tenants = {Tenant("default", "k1")};
  EXPECT_FALSE(Admission::Create(reserved).ok());
}

TEST(TenantConfigTest, ParsesTenantsAndNamesTheFieldInErrors) {
  const std::string hex = DigestHex(Sha256("key-a"));
  auto t = ParseTenants(R"(
http_port = 8000
[auth]
required = true
[[tenants]]
name = "acme"
api_key_sha256 = [")" + hex +
                            R"("]
admin = true
[[tenants]]
name = "beta.team-2"
api_key_sha256 = [")" + DigestHex(Sha256("key-b")) +
                            R"("]
)",
                        "test.toml");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].name, "acme");
  EXPECT_TRUE((*t)[0].admin);
  EXPECT_TRUE(DigestsEqual((*t)[0].key_digests.at(0), Sha256("key-a")));
  EXPECT_EQ((*t)[1].name, "beta.team-2");
  EXPECT_FALSE((*t)[1].admin);

  auto expect_error = [](const std::string& text, const std::string& fragment) {
    auto r = ParseTenants(text, "test.toml");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
  };
  expect_error("[[tenants]]\nname = \"Acme\"\napi_key_sha256 = [\"" + hex + "\"]",
               "tenants[0].name");
  expect_error("[[tenants]]\nname = \"acme\"\napi_key_sha256 = [\"abc\"]", "64 hex digits");
  expect_error("[[tenants]]\nname = \"acme\"\napi_key_sha256 = []", "1 to 16");
  expect_error("[[tenants]]\nname = \"acme\"\napi_key_sha256 = [\"" + hex + "\"]\nrate = 5",
               "unknown field 'rate'");
  expect_error("[[tenants]]\napi_key_sha256 = [\"" + hex + "\"]", "has no name");
  expect_error("tenants = 3", "[[tenants]] tables");
  expect_error("[[tenants]\n", "test.toml");
  EXPECT_TRUE(ParseTenants("http_port = 1\n", "test.toml")->empty());
}

}  // namespace
}  // namespace inferd
