// Fuzz target: what admission reads from outside: the credential headers
// (Authorization, X-Api-Key) and the [[tenants]] tables of a config file.
// Invariants: no crash or out-of-bounds read; a credential, when one is
// found, is a trimmed substring of a header; Authenticate answers a known
// key with its tenant and anything else with Unauthenticated, never
// another tenant.
#include <cstdint>
#include <string>
#include <string_view>

#include "admission/admission.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace inferd;
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {  // the [[tenants]] parser
    auto tenants = ParseTenants(in, "fuzz.toml");
    if (tenants.ok()) {
      AdmissionConfig config;
      config.tenants = std::move(tenants).value();
      (void)Admission::Create(std::move(config));
    }
    return 0;
  }
  // The two header values, split at the first NUL.
  size_t nul = in.find('\0');
  std::string_view authorization = in.substr(0, nul);
  std::string_view api_key = nul == std::string_view::npos ? "" : in.substr(nul + 1);
  auto credential = CredentialFrom(authorization, api_key);
  if (!credential.ok()) return 0;
  FUZZ_CHECK(credential->empty() || authorization.find(*credential) != std::string_view::npos ||
             api_key.find(*credential) != std::string_view::npos);
  static const auto* admission = [] {
    AdmissionConfig config;
    TenantConfig acme;
    acme.name = "acme";
    acme.key_digests = {Sha256("ik_known")};
    config.tenants = {acme};
    return Admission::Create(std::move(config)).value().release();
  }();
  auto tenant = admission->Authenticate(*credential);
  if (*credential == "ik_known") {
    FUZZ_CHECK(tenant.ok() && (*tenant)->name == "acme");
  } else if (credential->empty()) {
    FUZZ_CHECK(tenant.ok() && (*tenant)->name == "default");
  } else {
    FUZZ_CHECK(!tenant.ok() && tenant.status().code() == StatusCode::kUnauthenticated);
  }
  return 0;
}
