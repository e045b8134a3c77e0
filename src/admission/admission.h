#pragma once
// Admission: the first stage of every request (docs/design-admission.md).
// Today it says who is asking: the tenant that a request's API key names,
// or the default tenant for a request without one while keys are not
// required. Rate limits, priorities and overload control come next.
//
// Server config file (the rest of it is Settings'):
//
//   [auth]
//   required = false          # true: every /v2 request but health needs a key
//   [[tenants]]
//   name = "acme"             # 1-64 of [a-z0-9_.-]; "default" is reserved
//   api_key_sha256 = ["<64 hex digits>"]   # 1-16 per tenant (`inferd keygen`)
//   admin = false             # may call DELETE /v2/cache*
//
// Threading: immutable after Create; every method is safe from any thread.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "admission/api_key.h"
#include "common/status.h"

namespace inferd {

struct TenantConfig {
  std::string name;
  std::vector<KeyDigest> key_digests;
  bool admin = false;
};

struct AdmissionConfig {
  bool auth_required = false;
  std::vector<TenantConfig> tenants;
};

// The [[tenants]] tables of a server config file ("" or a file without
// them: none). Errors name the file and the field.
StatusOr<std::vector<TenantConfig>> LoadTenants(const std::string& config_file);
// The same from TOML text; `origin` names it in errors.
StatusOr<std::vector<TenantConfig>> ParseTenants(std::string_view toml_text,
                                                 const std::string& origin);

struct Tenant {
  std::string name;
  bool admin = false;
};

class Admission {
 public:
  static constexpr const char* kDefaultTenant = "default";

  // Checks the config: unique names and keys, auth.required with a key.
  static StatusOr<std::unique_ptr<Admission>> Create(AdmissionConfig config);

  // The tenant that `credential` (an API key as the client sent it; empty
  // for none) names. No key: the default tenant, or Unauthenticated when
  // keys are required. A key that names no tenant is Unauthenticated even
  // when keys are optional (a mistyped key must not quietly become the
  // default tenant). Constant time in the key's contents.
  StatusOr<const Tenant*> Authenticate(std::string_view credential) const;

  bool auth_required() const { return auth_required_; }
  // Admin while keys are optional (what a server without tenants allows).
  const Tenant& default_tenant() const { return default_tenant_; }
  const std::vector<std::unique_ptr<Tenant>>& tenants() const { return tenants_; }

 private:
  Admission() = default;

  struct Key {
    KeyDigest digest;
    const Tenant* tenant;
  };
  bool auth_required_ = false;
  Tenant default_tenant_;
  std::vector<std::unique_ptr<Tenant>> tenants_;
  std::vector<Key> keys_;
};

}  // namespace inferd
