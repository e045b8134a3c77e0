// Admission's global mode: limits shared through Redis (rate_limits.*), with
// local fallback limiters while Redis cannot answer.

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "admission/admission.h"

namespace inferd {
namespace {

constexpr const char* kResultNames[] = {"allowed",          "limited",
                                        "fallback_error",   "fallback_timeout",
                                        "fallback_circuit", "fallback_queue_full"};

int64_t CeilSecondsOfMicros(int64_t us) { return us <= 0 ? 0 : (us + 999'999) / 1'000'000; }

Tenant::GlobalLimit MakeGlobal(const GcraLimiter& local, std::string key, std::string model,
                               int64_t instances) {
  Tenant::GlobalLimit g;
  g.key = std::move(key);
  g.model = std::move(model);
  g.rate_per_s = local.rate_per_s();
  g.burst = local.burst();
  g.interval_us = std::max<int64_t>(1, std::llround(1e6 / g.rate_per_s));
  g.tolerance_us = g.burst * g.interval_us;
  // This process's share while Redis cannot answer; the rate stays within
  // GcraLimiter's bounds.
  g.fallback = std::make_unique<GcraLimiter>(
      std::max(GcraLimiter::kMinRate, g.rate_per_s / static_cast<double>(instances)),
      std::max<int64_t>(1, g.burst / instances));
  return g;
}

}  // namespace

Admission::~Admission() = default;

Status Admission::SetUpGlobal(const GlobalLimitsConfig& c, Registry* registry) {
  if (c.redis_url.empty()) return Status::OK();
  if (c.key_prefix.empty()) return InvalidArgumentError("rate_limits.key_prefix must not be empty");
  if (c.timeout_ms < 1) return InvalidArgumentError("rate_limits.timeout_ms must be >= 1");
  if (c.instances < 1 || c.instances > 1'000'000) {
    return InvalidArgumentError("rate_limits.instances must be in [1, 1000000]");
  }
  if (c.max_pending < 1) return InvalidArgumentError("rate_limits.max_pending must be >= 1");
  RedisRateLimiter::Options o;
  o.url = c.redis_url;
  o.url_setting = "rate_limits.redis_url";
  o.timeout = std::chrono::milliseconds(c.timeout_ms);
  o.max_pending = static_cast<size_t>(c.max_pending);
  o.clock = clock_;
  // Tenant names have no ':', so "tm:<tenant>:<model>" is unambiguous.
  auto set_up = [&](Tenant& t) {
    if (t.limit) {
      t.global = std::make_unique<Tenant::GlobalLimit>(
          MakeGlobal(*t.limit, c.key_prefix + "t:" + t.name, "", c.instances));
    }
    for (const auto& [model, limit] : t.model_limits) {
      if (!limit) continue;
      t.model_globals.emplace(model, MakeGlobal(*limit, c.key_prefix + "tm:" + t.name + ":" + model,
                                                model, c.instances));
    }
  };
  set_up(default_tenant_);
  for (auto& t : tenants_) set_up(*t);
  if (registry != nullptr) {
    Family<Counter>* f = registry->AddCounter(
        "inferd_global_rate_limit_decisions_total",
        "Decisions on rate limits shared through Redis (rate_limits.redis_url): allowed or "
        "limited by Redis, or fallback_* decided by this process's share of the limit",
        {"result"});
    for (int i = 0; i < kGlobalResults; ++i)
      global_decisions_[i] = f->WithLabels({kResultNames[i]});
  }
  INFERD_ASSIGN_OR_RETURN(redis_, RedisRateLimiter::Create(o));
  return Status::OK();
}

Admission::GlobalState Admission::global_state() const {
  GlobalState g;
  if (redis_ == nullptr) return g;
  RedisRateLimiter::Stats s = redis_->GetStats();
  g.redis = s.circuit_open ? "fallback" : "ok";
  g.fallbacks = s.fallbacks;
  return g;
}

void Admission::StopGlobal() {
  if (redis_) redis_->Shutdown();
}

void Admission::CheckGlobal(const Tenant& tenant, std::string_view model, AdmissionReport* report,
                            std::function<void(Status)> done) const {
  const Tenant::GlobalLimit* tg = tenant.global.get();
  const Tenant::GlobalLimit* mg = nullptr;
  if (auto it = tenant.model_globals.find(model); it != tenant.model_globals.end())
    mg = &it->second;
  if (redis_ == nullptr || (tg == nullptr && mg == nullptr)) {
    done(Status::OK());
    return;
  }
  std::array<RedisRateLimiter::Limit, 2> limits;
  int n = 0;
  for (const Tenant::GlobalLimit* g : {tg, mg}) {
    if (g != nullptr) limits[n++] = {g->key, g->interval_us, g->tolerance_us};
  }
  redis_->Decide(
      limits, n,
      [this, &tenant, tg, mg, report, done = std::move(done)](const RedisRateLimiter::Result& r) {
        done(OnGlobal(tenant, tg, mg, r, report));
      });
}

Status Admission::OnGlobal(const Tenant& tenant, const Tenant::GlobalLimit* tg,
                           const Tenant::GlobalLimit* mg, const RedisRateLimiter::Result& r,
                           AdmissionReport* report) const {
  using Fallback = RedisRateLimiter::Fallback;
  GlobalResult result = r.allowed ? kAllowed : kLimited;
  switch (r.fallback) {
    case Fallback::kNone:
      break;
    case Fallback::kError:
      result = kFallbackError;
      break;
    case Fallback::kTimeout:
      result = kFallbackTimeout;
      break;
    case Fallback::kCircuitOpen:
      result = kFallbackCircuit;
      break;
    case Fallback::kQueueFull:
      result = kFallbackQueueFull;
      break;
  }
  if (Counter* c = global_decisions_[result]) c->Increment();
  report->count = 0;
  report->retry_after_s = 0;
  if (r.fallback != Fallback::kNone) {
    // This process's share decides; it is not written back to Redis.
    return TakeLimits(tenant, mg != nullptr ? std::string_view(mg->model) : std::string_view(),
                      tg != nullptr ? tg->fallback.get() : nullptr,
                      mg != nullptr ? mg->fallback.get() : nullptr, clock_->Now(), report,
                      "Redis unreachable: this server's share of the ");
  }
  // The configured limits, with what Redis says is left of them. In a
  // refused decision nothing was taken, and a limit with nothing left is
  // one that refused.
  const Tenant::GlobalLimit* refused = nullptr;
  int i = 0;
  for (const Tenant::GlobalLimit* g : {tg, mg}) {
    if (g == nullptr) continue;
    const auto [remaining, reset_us] = r.remaining_reset_us[i++];
    AdmissionReport::Limit& out = report->limits[report->count++];
    out.scope = g == tg ? "tenant" : "model";
    out.rate_per_s = g->rate_per_s;
    out.burst = g->burst;
    out.remaining = std::clamp<int64_t>(remaining, 0, g->burst);
    out.reset_s = CeilSecondsOfMicros(reset_us);
    if (!r.allowed && remaining <= 0 && refused == nullptr) refused = g;
  }
  if (r.allowed) return Status::OK();
  if (refused == nullptr) refused = tg != nullptr ? tg : mg;
  report->retry_after_s = std::max<int64_t>(1, CeilSecondsOfMicros(r.retry_after_us));
  char rate[32];
  std::snprintf(rate, sizeof(rate), "%g", refused->rate_per_s);
  std::string what = refused == tg
                         ? "tenant '" + tenant.name + "'"
                         : "tenant '" + tenant.name + "' on model '" + refused->model + "'";
  return RateLimitedError("rate limit of " + what + " exceeded (" + rate + " requests/s, burst " +
                          std::to_string(refused->burst) +
                          ", shared by every server): retry after " +
                          std::to_string(report->retry_after_s) + " s");
}

}  // namespace inferd
