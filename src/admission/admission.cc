#include "admission/admission.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

namespace inferd {

// A presented key longer than this names no tenant (ours are 46 bytes).
constexpr size_t kMaxKeyBytes = 512;

namespace {

// The bounds of GcraLimiter (checked here too, not only by the parser, so
// that a config built in code cannot overflow the limiter's arithmetic).
Status MakeLimiter(const RateLimitConfig& c, const std::string& what,
                   std::unique_ptr<GcraLimiter>* out) {
  if (c.requests_per_s == 0 && c.burst == 0) return Status::OK();
  if (!GcraLimiter::ValidRate(c.requests_per_s) || c.burst < 0 ||
      c.burst > GcraLimiter::kMaxBurst) {
    return InvalidArgumentError(
        what + ": requests_per_s must be in [0.001, 1000000] and burst in [1, 1000000]");
  }
  int64_t burst =
      c.burst > 0 ? c.burst : std::max<int64_t>(1, std::llround(std::ceil(c.requests_per_s)));
  *out = std::make_unique<GcraLimiter>(c.requests_per_s, burst);
  return Status::OK();
}

Status SetLimits(const TenantConfig& c, Tenant* t) {
  INFERD_RETURN_IF_ERROR(MakeLimiter(c.limit, "tenant '" + c.name + "'", &t->limit));
  for (const TenantConfig::ModelLimit& m : c.models) {
    INFERD_RETURN_IF_ERROR(MakeLimiter(
        m.limit, "tenant '" + c.name + "' on model '" + m.model + "'", &t->model_limits[m.model]));
  }
  return Status::OK();
}

int64_t CeilSeconds(Duration d) {
  using std::chrono::nanoseconds;
  int64_t ns = std::chrono::duration_cast<nanoseconds>(d).count();
  return ns <= 0 ? 0 : (ns + 999'999'999) / 1'000'000'000;
}

void Record(AdmissionReport* r, const char* scope, const GcraLimiter& l,
            const GcraLimiter::Decision& d) {
  if (r->count >= static_cast<int>(r->limits.size())) return;
  AdmissionReport::Limit& out = r->limits[r->count++];
  out.scope = scope;
  out.rate_per_s = l.rate_per_s();
  out.burst = l.burst();
  out.remaining = d.remaining;
  out.reset_s = CeilSeconds(d.reset_after);
}

}  // namespace

StatusOr<std::unique_ptr<Admission>> Admission::Create(AdmissionConfig config, Registry* registry,
                                                       Clock* clock) {
  std::unique_ptr<Admission> a(new Admission());
  a->auth_required_ = config.auth_required;
  a->clock_ = clock != nullptr ? clock : Clock::System();
  a->default_tenant_.name = kDefaultTenant;
  std::set<std::string> names;
  std::set<KeyDigest> digests;
  for (TenantConfig& t : config.tenants) {
    if (!names.insert(t.name).second) {
      return InvalidArgumentError("tenant '" + t.name + "' is defined twice");
    }
    if (t.name == kDefaultTenant) {
      // Requests without a key: their limits only.
      if (!t.key_digests.empty() || t.admin) {
        return InvalidArgumentError(
            "tenant 'default' (requests without a key) takes limits only, no api_key_sha256 or "
            "admin");
      }
      INFERD_RETURN_IF_ERROR(SetLimits(t, &a->default_tenant_));
      a->default_tenant_.weight = t.weight;
      a->default_tenant_.max_priority = t.max_priority;
      continue;
    }
    if (t.key_digests.empty()) {
      return InvalidArgumentError("tenant '" + t.name + "' has no api_key_sha256");
    }
    auto tenant = std::make_unique<Tenant>();
    tenant->id = static_cast<uint32_t>(a->tenants_.size() + 1);
    tenant->name = t.name;
    tenant->admin = t.admin;
    tenant->weight = t.weight;
    tenant->max_priority = t.max_priority;
    INFERD_RETURN_IF_ERROR(SetLimits(t, tenant.get()));
    for (const KeyDigest& d : t.key_digests) {
      if (!digests.insert(d).second) {
        return InvalidArgumentError("api_key_sha256 " + DigestHex(d) +
                                    " is listed twice (each key names one tenant)");
      }
      a->keys_.push_back({d, tenant.get()});
      ++tenant->keys;
    }
    a->tenants_.push_back(std::move(tenant));
  }
  // Requests without a key may call the admin endpoints only on a server
  // without keyed tenants (as before tenants existed); once tenants exist,
  // an admin key is needed, whether or not keys are required.
  a->default_tenant_.admin = a->keys_.empty();
  if (config.auth_required && a->keys_.empty()) {
    return InvalidArgumentError(
        "auth.required is true but no [[tenants]] entry has an api_key_sha256: no request could "
        "be admitted");
  }
  INFERD_RETURN_IF_ERROR(a->SetUpGlobal(config.global, registry));  // admission_global.cc
  return a;
}

Status Admission::CheckLimits(const Tenant& tenant, std::string_view model, Time now,
                              AdmissionReport* report) const {
  GcraLimiter* tl = tenant.limit.get();
  GcraLimiter* ml = nullptr;
  if (auto it = tenant.model_limits.find(model); it != tenant.model_limits.end())
    ml = it->second.get();
  if (tl == nullptr && ml == nullptr) return Status::OK();
  return TakeLimits(tenant, model, tl, ml, now, report, "");
}

Status Admission::TakeLimits(const Tenant& tenant, std::string_view model, GcraLimiter* tl,
                             GcraLimiter* ml, Time now, AdmissionReport* report,
                             std::string_view qualifier) {
  GcraLimiter::Decision td, md;
  const GcraLimiter* refused = nullptr;
  Duration retry{};
  if (tl != nullptr) {
    td = tl->Take(now);
    if (!td.allowed) {
      refused = tl;
      retry = td.retry_after;
    }
  }
  if (ml != nullptr) {
    if (refused == nullptr) {
      md = ml->Take(now);
      if (!md.allowed) {
        refused = ml;
        retry = md.retry_after;
        if (tl != nullptr) {  // all or nothing: give the tenant's back
          tl->Refund();
          td = tl->Peek(now);
        }
      }
    } else {
      md = ml->Peek(now);
    }
  }
  if (tl != nullptr) Record(report, "tenant", *tl, td);
  if (ml != nullptr) Record(report, "model", *ml, md);
  if (refused == nullptr) return Status::OK();
  report->retry_after_s = std::max<int64_t>(1, CeilSeconds(retry));
  char rate[32];
  std::snprintf(rate, sizeof(rate), "%g", refused->rate_per_s());
  std::string what = refused == tl
                         ? "tenant '" + tenant.name + "'"
                         : "tenant '" + tenant.name + "' on model '" + std::string(model) + "'";
  return RateLimitedError(std::string(qualifier) + "rate limit of " + what + " exceeded (" + rate +
                          " requests/s, burst " + std::to_string(refused->burst()) +
                          "): retry after " + std::to_string(report->retry_after_s) + " s");
}

StatusOr<const Tenant*> Admission::Authenticate(std::string_view credential) const {
  // Without keyed tenants a credential names no one and is ignored (a
  // gateway's own token, an SDK's habit), as before tenants existed.
  if (keys_.empty()) return &default_tenant_;
  if (credential.empty()) {
    if (auth_required_) {
      return UnauthenticatedError(
          "missing API key: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'");
    }
    return &default_tenant_;
  }
  const Tenant* found = nullptr;
  if (credential.size() <= kMaxKeyBytes) {
    const KeyDigest digest = Sha256(credential);
    // Every stored digest is compared, whichever matches.
    for (const Key& k : keys_) {
      if (DigestsEqual(k.digest, digest)) found = k.tenant;
    }
  }
  if (found == nullptr) return UnauthenticatedError("unknown API key");
  return found;
}

}  // namespace inferd
