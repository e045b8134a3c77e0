#pragma once
// Protocol adapters: they turn HTTP requests into calls on the
// InferenceServer and the ModelManager, and results into HTTP responses.
//
//   RegisterKServeRoutes: KServe v2 / Triton HTTP (/v2/...): server and model
//     metadata, readiness, model config, inference, repository index.
//   RegisterAdminRoutes:  /metrics (Prometheus text format 0.0.4) and
//     GET /v2/admin/tenants (admin_tenants.cc).

#include <atomic>
#include <string>

#include "common/status.h"
#include "http/router.h"
#include "metrics/metrics.h"
#include "server/inference_server.h"

namespace inferd::api {

struct ApiContext {
  InferenceServer* server = nullptr;
  Registry* registry = nullptr;
  std::string version = "0.1.0";
  // Who may call what (api/auth.h); null: everyone, as the default tenant.
  const Admission* admission = nullptr;
};

void RegisterKServeRoutes(http::Router* router, const ApiContext* context);
// Triton's repository extension (repository_api.cc, part of the KServe
// routes): POST /v2/repository/index, /v2/repository/models/{m}/load and
// /unload (admin), and GET /v2/memory/stats.
void RegisterRepositoryRoutes(http::Router* router, const ApiContext* context);
void RegisterAdminRoutes(http::Router* router, const ApiContext* context);
// Replays a file of requests (JSON lines: a KServe v2 infer body plus
// "model" and optional "model_version") through the pipeline, to fill the
// response cache before the server reports ready. Fails only if the file
// cannot be read; bad lines are logged and skipped.
Status WarmCache(const ApiContext* context, const std::string& path);

// /v2/cache/stats (GET), /v2/cache and /v2/cache/models/{m} (DELETE).
void RegisterCacheRoutes(http::Router* router, const ApiContext* context);

// GET /v2/admin/tenants: each tenant's limits, token levels, queued
// requests and recent refusals, as JSON (admin only).
void RegisterTenantAdminRoute(http::Router* router, const ApiContext* context);

// {"error": ...} with the HTTP status that matches `status`' code; a full
// queue also carries Retry-After.
http::Response ErrorResponse(const Status& status);

}  // namespace inferd::api
