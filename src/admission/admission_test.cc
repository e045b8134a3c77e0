#include "admission/admission.h"

#include <gtest/gtest.h>

namespace inferd {
namespace {

TenantConfig KeyedTenant(const std::string& name, const std::string& key, bool admin = false) {
  TenantConfig t;
  t.name = name;
  t.key_digests = {Sha256(key)};
  t.admin = admin;
  return t;
}

TEST(AdmissionTest, KeysNameTheirTenantAndNoKeyIsTheDefaultTenant) {
  AdmissionConfig config;
  config.tenants = {KeyedTenant("acme", "key-a", /*admin=*/true), KeyedTenant("beta", "key-b")};
  config.tenants[1].key_digests.push_back(Sha256("key-b2"));
  auto a = Admission::Create(config);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto t = (*a)->Authenticate("key-a");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->name, "acme");
  EXPECT_TRUE((*t)->admin);
  EXPECT_EQ((*(*a)->Authenticate("key-b2"))->name, "beta");
  EXPECT_FALSE((*(*a)->Authenticate("key-b"))->admin);
  // Keys optional: no key is the default tenant, not admin once keyed
  // tenants exist.
  auto d = (*a)->Authenticate("");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->name, "default");
  EXPECT_FALSE((*d)->admin);
  // An unknown key is refused even so, and so is one too long to be ours.
  EXPECT_EQ((*a)->Authenticate("key-c").status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ((*a)->Authenticate(std::string(10000, 'k')).status().code(),
            StatusCode::kUnauthenticated);
}

TEST(AdmissionTest, WithoutKeyedTenantsCredentialsAreIgnored) {
  auto a = Admission::Create(AdmissionConfig{});
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE((*a)->uses_keys());
  for (const char* credential : {"", "some.jwt.token", "ik_whatever"}) {
    auto t = (*a)->Authenticate(credential);
    ASSERT_TRUE(t.ok()) << credential;
    EXPECT_EQ((*t)->name, "default");
    EXPECT_TRUE((*t)->admin);
  }
}

TEST(AdmissionTest, RequiredAuthRefusesRequestsWithoutAKey) {
  AdmissionConfig config;
  config.auth_required = true;
  config.tenants = {KeyedTenant("acme", "key-a")};
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
  twice.tenants = {KeyedTenant("acme", "k1"), KeyedTenant("acme", "k2")};
  EXPECT_FALSE(Admission::Create(twice).ok());
  AdmissionConfig shared_key;
  shared_key.tenants = {KeyedTenant("acme", "k1"), KeyedTenant("beta", "k1")};
  EXPECT_FALSE(Admission::Create(shared_key).ok());
  AdmissionConfig reserved;
  reserved.tenants = {KeyedTenant("default", "k1")};
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

TEST(AdmissionTest, LimitsTakeBothOrNeitherAndReportTheirState) {
  FakeClock clock;
  AdmissionConfig config;
  TenantConfig acme = KeyedTenant("acme", "key-a");
  acme.limit = {/*requests_per_s=*/10, /*burst=*/3};
  acme.models = {{"resnet18", {/*requests_per_s=*/1, /*burst=*/1}}};
  config.tenants = {acme};
  auto a = Admission::Create(config);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  const Tenant* t = *(*a)->Authenticate("key-a");
  // resnet18: the model's limit (1) is the tighter one.
  AdmissionReport r1;
  EXPECT_TRUE((*a)->CheckLimits(*t, "resnet18", clock.Now(), &r1).ok());
  ASSERT_EQ(r1.count, 2);
  EXPECT_STREQ(r1.limits[0].scope, "tenant");
  EXPECT_EQ(r1.limits[0].remaining, 2);
  EXPECT_EQ(r1.limits[0].burst, 3);
  EXPECT_STREQ(r1.limits[1].scope, "model");
  EXPECT_EQ(r1.limits[1].remaining, 0);
  EXPECT_EQ(r1.limits[1].reset_s, 1);
  AdmissionReport r2;
  Status refused = (*a)->CheckLimits(*t, "resnet18", clock.Now(), &r2);
  EXPECT_EQ(refused.code(), StatusCode::kRateLimited);
  EXPECT_NE(refused.message().find("tenant 'acme' on model 'resnet18'"), std::string::npos)
      << refused.message();
  EXPECT_EQ(r2.retry_after_s, 1);
  EXPECT_EQ(r2.limits[0].remaining, 2);  // the tenant's token was given back
  // Other models only see the tenant's limit: 2 left, then refused.
  AdmissionReport r3;
  EXPECT_TRUE((*a)->CheckLimits(*t, "mlp", clock.Now(), &r3).ok());
  EXPECT_EQ(r3.count, 1);
  EXPECT_TRUE((*a)->CheckLimits(*t, "mlp", clock.Now(), &r3).ok());
  AdmissionReport r4;
  Status over = (*a)->CheckLimits(*t, "mlp", clock.Now(), &r4);
  EXPECT_EQ(over.code(), StatusCode::kRateLimited);
  EXPECT_NE(over.message().find("rate limit of tenant 'acme' exceeded (10 requests/s, burst 3)"),
            std::string::npos)
      << over.message();
  clock.Advance(std::chrono::milliseconds(100));
  AdmissionReport r5;
  EXPECT_TRUE((*a)->CheckLimits(*t, "mlp", clock.Now(), &r5).ok());
  // A tenant without limits reports none.
  AdmissionReport none;
  EXPECT_TRUE((*a)->CheckLimits((*a)->default_tenant(), "mlp", clock.Now(), &none).ok());
  EXPECT_EQ(none.count, 0);
}

TEST(AdmissionTest, TheDefaultEntryLimitsRequestsWithoutAKey) {
  FakeClock clock;
  auto tenants = ParseTenants(
      "[[tenants]]\nname = \"default\"\nrequests_per_s = 0.5\n"
      "[[tenants]]\nname = \"acme\"\napi_key_sha256 = [\"" +
          DigestHex(Sha256("key-a")) + "\"]\n",
      "t.toml");
  ASSERT_TRUE(tenants.ok()) << tenants.status().ToString();
  AdmissionConfig config;
  config.tenants = *tenants;
  auto a = Admission::Create(config);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  const Tenant* d = *(*a)->Authenticate("");
  AdmissionReport r;
  EXPECT_TRUE((*a)->CheckLimits(*d, "m", clock.Now(), &r).ok());  // burst: ceil(0.5) = 1
  EXPECT_EQ((*a)->CheckLimits(*d, "m", clock.Now(), &r).code(), StatusCode::kRateLimited);
  EXPECT_EQ(r.retry_after_s, 2);
  // The default entry takes limits only.
  AdmissionConfig keyed;
  keyed.tenants = {KeyedTenant("default", "k")};
  EXPECT_FALSE(Admission::Create(keyed).ok());
  // Limits built in code are checked as the parser checks them.
  AdmissionConfig too_slow;
  too_slow.tenants = {KeyedTenant("acme", "k")};
  too_slow.tenants[0].limit = {/*requests_per_s=*/1e-12, /*burst=*/1000000};
  EXPECT_FALSE(Admission::Create(too_slow).ok());
}

TEST(TenantConfigTest, ParsesLimitsAndRejectsBadOnes) {
  const std::string keys = "api_key_sha256 = [\"" + DigestHex(Sha256("k")) + "\"]\n";
  auto t = ParseTenants("[[tenants]]\nname = \"acme\"\n" + keys +
                            "requests_per_s = 100\nburst = 20\n"
                            "[[tenants.models]]\nname = \"resnet18\"\nrequests_per_s = 2.5\n",
                        "t.toml");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)[0].limit.requests_per_s, 100);
  EXPECT_EQ((*t)[0].limit.burst, 20);
  ASSERT_EQ((*t)[0].models.size(), 1u);
  EXPECT_EQ((*t)[0].models[0].model, "resnet18");
  EXPECT_EQ((*t)[0].models[0].limit.requests_per_s, 2.5);
  auto expect_error = [&](const std::string& extra, const std::string& fragment) {
    auto r = ParseTenants("[[tenants]]\nname = \"acme\"\n" + keys + extra, "t.toml");
    ASSERT_FALSE(r.ok()) << extra;
    EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
  };
  expect_error("requests_per_s = 0\n", "tenants[0].requests_per_s must be a number");
  expect_error("requests_per_s = 0.0009\n", "in [0.001, 1000000]");
  expect_error("requests_per_s = 1000001\n", "in [0.001, 1000000]");
  expect_error("requests_per_s = \"5\"\n", "requests_per_s must be a number");
  expect_error("burst = 3\n", "burst needs requests_per_s");
  expect_error("requests_per_s = 1\nburst = 0\n", "burst must be an integer");
  expect_error("[[tenants.models]]\nname = \"m\"\n", "tenants[0].models[0] has no requests_per_s");
  expect_error("[[tenants.models]]\nrequests_per_s = 1\n", "models[0] has no name");
  expect_error(
      "[[tenants.models]]\nname = \"m\"\nrequests_per_s = 1\n[[tenants.models]]\nname = "
      "\"m\"\nrequests_per_s = 2\n",
      "limited twice");
  expect_error("[[tenants.models]]\nname = \"m\"\nrequests_per_s = 1\nweight = 2\n",
               "unknown field 'weight'");
}

}  // namespace
}  // namespace inferd
