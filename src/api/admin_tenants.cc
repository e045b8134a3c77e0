// GET /v2/admin/tenants: what admission knows about each tenant, as JSON.
//
// {"auth_required": true, "global_limits": {"redis": "off|ok|fallback", "fallbacks": 0},
//  "tenants": [{"name": "acme", "admin": false, "weight": 1, "max_priority": 0, "keys": 2,
//    "limits": [{"scope": "tenant", "requests_per_s": 100, "burst": 20,
//                "remaining": 17, "reset_s": 0.03},
//               {"scope": "model", "model": "resnet18", ...}],
//    "queued": {"resnet18": 14},
//    "recent_rejections": {"window_s": 60, "rate_limited": 12, "shed": 3,
//                          "evicted": 1, "expired": 0, "cancelled": 0,
//                          "queue_full": 0}}]}
//
// The default tenant (requests without a key) comes first. `remaining` and
// `reset_s` are this process's token levels (GCRA Peek); `queued` counts
// the tenant's requests waiting in each model's queue. Key hashes are
// never shown.

#include <charconv>
#include <map>
#include <string>
#include <vector>

#include "api/api.h"
#include "api/auth.h"
#include "http/types.h"

namespace inferd::api {
namespace {

namespace bh = boost::beast::http;

void AppendNumber(std::string* out, double v) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, res.ptr);
}

void AppendLimit(std::string* out, const char* scope, const std::string* model,
                 const GcraLimiter& limit, Time now) {
  const GcraLimiter::Decision d = limit.Peek(now);
  *out += "{\"scope\":\"";
  *out += scope;
  *out += '"';
  if (model != nullptr) {
    *out += ",\"model\":\"";
    http::AppendJsonEscaped(out, *model);
    *out += '"';
  }
  *out += ",\"requests_per_s\":";
  AppendNumber(out, limit.rate_per_s());
  *out += ",\"burst\":" + std::to_string(limit.burst());
  *out += ",\"remaining\":" + std::to_string(d.remaining);
  *out += ",\"reset_s\":";
  AppendNumber(out, std::chrono::duration<double>(d.reset_after).count());
  *out += '}';
}

// Queued requests per tenant id, per model name (summed over versions).
std::map<std::string, std::vector<int64_t>> QueuedByModel(InferenceServer* server) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const ModelState& s : server->models()->List()) {
    if (!s.ready()) continue;
    auto mv = server->models()->Get(s.name, std::to_string(s.version));
    if (!mv.ok()) continue;
    std::vector<int64_t>& counts = out[s.name];
    std::vector<int64_t> version_counts;
    (*mv)->CountByTenant(&version_counts);
    if (counts.size() < version_counts.size()) counts.resize(version_counts.size(), 0);
    for (size_t i = 0; i < version_counts.size(); ++i) counts[i] += version_counts[i];
  }
  return out;
}

void AppendTenant(std::string* out, const Tenant& t, Time now,
                  const std::map<std::string, std::vector<int64_t>>& queued) {
  *out += "{\"name\":\"";
  http::AppendJsonEscaped(out, t.name);
  *out += "\",\"admin\":";
  *out += t.admin ? "true" : "false";
  *out += ",\"weight\":" + std::to_string(t.weight);
  *out += ",\"max_priority\":" + std::to_string(t.max_priority);
  *out += ",\"keys\":" + std::to_string(t.keys);
  *out += ",\"limits\":[";
  bool first = true;
  if (t.limit) {
    AppendLimit(out, "tenant", nullptr, *t.limit, now);
    first = false;
  }
  for (const auto& [model, limit] : t.model_limits) {
    if (!first) *out += ',';
    AppendLimit(out, "model", &model, *limit, now);
    first = false;
  }
  *out += "],\"queued\":{";
  first = true;
  for (const auto& [model, counts] : queued) {
    if (t.id >= counts.size() || counts[t.id] == 0) continue;
    if (!first) *out += ',';
    *out += '"';
    http::AppendJsonEscaped(out, model);
    *out += "\":" + std::to_string(counts[t.id]);
    first = false;
  }
  const auto recent = t.recent.Sum(now);
  *out += "},\"recent_rejections\":{\"window_s\":" + std::to_string(RecentCounts::kWindowS);
  static const char* kNames[] = {"rate_limited", "shed",      "evicted",
                                 "expired",      "cancelled", "queue_full"};
  static_assert(std::size(kNames) == RecentCounts::kKinds);
  for (int k = 0; k < RecentCounts::kKinds; ++k)
    *out += ",\"" + std::string(kNames[k]) + "\":" + std::to_string(recent[k]);
  *out += "}}";
}

}  // namespace

void RegisterTenantAdminRoute(http::Router* router, const ApiContext* ctx) {
  router->Add(http::Verb::get, "/v2/admin/tenants",
              Guard(ctx, Access::kAdmin,
                    [ctx](http::Request&&, const http::PathParams&, http::Responder r) {
                      if (ctx->admission == nullptr) {
                        r.Send(ErrorResponse(NotFoundError("this server has no admission stage")));
                        return;
                      }
                      const Admission& a = *ctx->admission;
                      const Time now = ctx->server->clock()->Now();
                      const auto queued = QueuedByModel(ctx->server);
                      std::string body = "{\"auth_required\":";
                      body += a.auth_required() ? "true" : "false";
                      const Admission::GlobalState g = a.global_state();
                      body += ",\"global_limits\":{\"redis\":\"";
                      body += g.redis;
                      body += "\",\"fallbacks\":" + std::to_string(g.fallbacks);
                      body += "},\"tenants\":[";
                      AppendTenant(&body, a.default_tenant(), now, queued);
                      for (const auto& t : a.tenants()) {
                        body += ',';
                        AppendTenant(&body, *t, now, queued);
                      }
                      body += "]}";
                      r.Send(http::MakeJsonResponse(bh::status::ok, body));
                    }));
}

}  // namespace inferd::api
