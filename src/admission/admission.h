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
// Global mode (settings rate_limits.*, AdmissionConfig::global): with a
// Redis URL every configured limit is shared by all the inferd processes
// that point at that Redis. CheckLimits still runs first at the full rate
// (one process alone never exceeds the global rate, so its refusal is
// final and costs no Redis call); then CheckGlobal asks Redis
// (RedisRateLimiter). Whenever Redis cannot answer (error, timeout, open
// circuit, full queue) the tenant's fallback limiters decide locally, at
// rate / instances and burst / instances (at least 1), so that the
// processes together stay about at the global rate; what they admit then
// is not written back to Redis.
//
// Threading: immutable after Create (but for the limiters' atomics and the
// Redis limiter's own state); every method is safe from any thread.

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "admission/api_key.h"
#include "admission/gcra.h"
#include "admission/recent_counts.h"
#include "admission/redis_rate_limiter.h"
#include "common/clock.h"
#include "common/status.h"
#include "metrics/metrics.h"

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

// Limits shared through Redis (settings rate_limits.*).
struct GlobalLimitsConfig {
  std::string redis_url;                  // "": off, every limit is per process
  std::string key_prefix = "inferd:rl:";  // of every Redis key; non-empty
  int64_t timeout_ms = 5;                 // bound of a Redis exchange and of a queued wait; >= 1
  int64_t instances = 1;                  // processes sharing the limits; >= 1
  int64_t max_pending = 4096;             // decisions waiting for Redis; >= 1
};

struct AdmissionConfig {
  bool auth_required = false;
  std::vector<TenantConfig> tenants;
  GlobalLimitsConfig global;
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
  size_t keys = 0;                     // how many API keys name it
  std::unique_ptr<GcraLimiter> limit;  // null: none
  std::map<std::string, std::unique_ptr<GcraLimiter>, std::less<>> model_limits;
  // Global mode only: a limit as Redis keeps it, and the local limiter
  // that decides in its place while Redis cannot.
  struct GlobalLimit {
    std::string key;    // <prefix>t:<tenant>, <prefix>tm:<tenant>:<model>
    std::string model;  // "" for the tenant's own limit
    double rate_per_s = 0;
    int64_t burst = 0;
    int64_t interval_us = 0, tolerance_us = 0;
    std::unique_ptr<GcraLimiter> fallback;  // rate and burst / instances
  };
  std::unique_ptr<GlobalLimit> global;                            // of `limit`
  std::map<std::string, GlobalLimit, std::less<>> model_globals;  // of model_limits
  // Refusals and drops of the last minute (the pipeline adds them).
  mutable RecentCounts recent;
};

class Admission {
 public:
  static constexpr const char* kDefaultTenant = "default";

  // Checks the config: unique names and keys, auth.required with a key,
  // the rate_limits settings (errors name the setting). With a Redis URL,
  // starts the global mode (RedisRateLimiter connects lazily). `registry`
  // (optional) gets inferd_global_rate_limit_decisions_total in global
  // mode; `clock` (default: the system clock) times the fallback limiters
  // and the Redis limiter's waits.
  static StatusOr<std::unique_ptr<Admission>> Create(AdmissionConfig config,
                                                     Registry* registry = nullptr,
                                                     Clock* clock = nullptr);
  ~Admission();

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

  // Global mode (rate_limits.redis_url set).
  bool has_global() const { return redis_ != nullptr; }
  // After CheckLimits admitted a request under at least one limit: the
  // cluster-wide decision on the same limits, all or nothing, by Redis or,
  // when Redis cannot answer, by the fallback limiters. `done` gets OK or
  // RateLimited (with *report filled again) exactly once, never while a
  // lock is held: on the Redis thread, or on the calling thread when no
  // exchange with Redis was possible (open circuit, full queue). `report`
  // must stay valid until then. Without the global mode: done(OK) at once.
  void CheckGlobal(const Tenant& tenant, std::string_view model, AdmissionReport* report,
                   std::function<void(Status)> done) const;
  // For GET /v2/admin/tenants: "off" without the global mode, "fallback"
  // while Redis's circuit is open (or half-open), else "ok"; and the
  // decisions answered by a fallback so far.
  struct GlobalState {
    const char* redis = "off";
    uint64_t fallbacks = 0;
  };
  GlobalState global_state() const;
  // Stops the global mode: the Redis thread ends, and decisions still
  // waiting for it (and any later) fall back at once. For shutdown, while
  // the callers' continuations can still run. Idempotent.
  void StopGlobal();

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
  // Results of a global decision, the counter's labels.
  enum GlobalResult {
    kAllowed,
    kLimited,
    kFallbackError,
    kFallbackTimeout,
    kFallbackCircuit,
    kFallbackQueueFull,
    kGlobalResults
  };
  // Takes one request from `tl` and `ml` (either may be null): both or
  // neither. Fills *report; a refusal's message starts with `qualifier`.
  static Status TakeLimits(const Tenant& tenant, std::string_view model, GcraLimiter* tl,
                           GcraLimiter* ml, Time now, AdmissionReport* report,
                           std::string_view qualifier);
  // admission_global.cc: the Redis limiter, keys and fallback limiters.
  Status SetUpGlobal(const GlobalLimitsConfig& config, Registry* registry);
  // The answer to a global decision (on whichever thread it came).
  Status OnGlobal(const Tenant& tenant, const Tenant::GlobalLimit* tg,
                  const Tenant::GlobalLimit* mg, const RedisRateLimiter::Result& r,
                  AdmissionReport* report) const;

  bool auth_required_ = false;
  Clock* clock_ = nullptr;
  Tenant default_tenant_;
  std::vector<std::unique_ptr<Tenant>> tenants_;
  std::vector<Key> keys_;
  std::array<Counter*, kGlobalResults> global_decisions_{};  // null without a registry
  // Last: destroyed first, while the tenants its pending decisions name
  // still exist.
  std::unique_ptr<RedisRateLimiter> redis_;
};

}  // namespace inferd
