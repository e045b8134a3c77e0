#pragma once
// Admission: the first stage of every request (docs/design-admission.md).
// It says who is asking (the tenant that a request's API key names, or the
// default tenant for a request without one while keys are not required)
// and whether the tenant's rate limits let the request in. Priorities and
// overload control come next.
//
// Server config file (the rest of it is Settings'):
//
//   [auth]
//   required = false          # true: every /v2 request but health needs a key
//   [[tenants]]
//   name = "acme"             # 1-64 of [a-z0-9_.-]; "default" is reserved
//   api_key_sha256 = ["<64 hex digits>"]   # 1-16 per tenant (`inferd keygen`)
//   admin = false             # may call DELETE /v2/cache*
//   requests_per_s = 100      # GCRA rate (absent: no limit), with
//   burst = 20                # burst (default: the rate, rounded up)
//   weight = 1                # share of a model's capacity at equal priority
//   max_priority = 0          # highest level it may ask for (1 is the
//                             # highest; 0 or 1: any), else capped to it
//   [[tenants.models]]        # a limit per tenant and model
//   name = "resnet18"
//   requests_per_s = 10
//   burst = 5
//   [[tenants]]
//   name = "default"          # limits of requests without a key (no keys here)
//   requests_per_s = 5
//
// Threading: immutable after Create; every method is safe from any thread.

#include <array>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "admission/api_key.h"
#include "admission/gcra.h"
#include "common/clock.h"
#include "common/status.h"

namespace inferd {

struct RateLimitConfig {
  double requests_per_s = 0;  // 0: no limit
  int64_t burst = 0;
};

struct TenantConfig {
  std::string name;
  std::vector<KeyDigest> key_digests;
  bool admin = false;
  uint32_t weight = 1;   // share of a model at equal priority (1..1000)
  int max_priority = 0;  // the highest level it may ask for; 0 or 1: any
  RateLimitConfig limit;
  struct ModelLimit {
    std::string model;
    RateLimitConfig limit;
  };
  std::vector<ModelLimit> models;
};

// What admission decided about a request's limits, for the response's
// RateLimit-Policy / RateLimit / Retry-After fields. No allocation.
struct AdmissionReport {
  struct Limit {
    const char* scope = "";  // "tenant" or "model"
    double rate_per_s = 0;
    int64_t burst = 0;
    int64_t remaining = 0;  // requests allowed right now, 0..burst
    int64_t reset_s = 0;    // whole seconds until the bucket is full
  };
  std::array<Limit, 2> limits{};
  int count = 0;
  int64_t retry_after_s = 0;  // a refusal: when to retry
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
  uint32_t id = 0;  // dense: 0 is the default tenant, then config order
  std::string name;
  bool admin = false;
  uint32_t weight = 1;
  int max_priority = 0;
  std::unique_ptr<GcraLimiter> limit;  // null: none
  std::map<std::string, std::unique_ptr<GcraLimiter>, std::less<>> model_limits;
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
  // default tenant), except on a server without keyed tenants, which
  // ignores credentials. Constant time in the key's contents.
  StatusOr<const Tenant*> Authenticate(std::string_view credential) const;

  // Takes one request from the tenant's limit and its limit for `model`:
  // both or neither (a request refused by one does not use up the other).
  // Refused: RateLimited, and report->retry_after_s. The report gets the
  // state of each limit that applies.
  Status CheckLimits(const Tenant& tenant, std::string_view model, Time now,
                     AdmissionReport* report) const;

  bool auth_required() const { return auth_required_; }
  // Admin only on a server without keyed tenants.
  const Tenant& default_tenant() const { return default_tenant_; }
  // Whether any tenant has a key (else credentials are not even read).
  bool uses_keys() const { return !keys_.empty(); }
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
