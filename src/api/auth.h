#pragma once
// Who may call what over HTTP: the API key a request presents, and a guard
// for routes that are not inference (which authenticates in the pipeline's
// admission stage instead; see admission/admission.h).
//
//   kTenant: any tenant (model metadata, readiness, config, the repository
//            index, cache stats); without auth.required, requests without
//            a key pass as the default tenant.
//   kAdmin:  a tenant with admin = true (DELETE /v2/cache*); on a server
//            without keyed tenants, every request (credentials are then
//            ignored), as before tenants existed.
// /v2, /v2/health/* and /metrics are open.

#include <optional>
#include <string>

#include "admission/admission.h"
#include "api/api.h"
#include "http/request_reader.h"
#include "http/router.h"

namespace inferd::api {

enum class Access { kTenant, kAdmin };

// The key that `req` presents: `Authorization: Bearer KEY` (the scheme in
// any case) or `X-Api-Key: KEY`; "" for none (another Authorization
// scheme counts as none). Both with different keys: InvalidArgument.
StatusOr<std::string> ReadCredential(const http::Request& req);

// The priority level `req` asks for with `X-Inferd-Priority: N` (0..255;
// 1 is the highest; 0 or no header: the model's default, or the body's
// parameters.priority). Anything else: InvalidArgument.
StatusOr<int> ReadPriority(const http::Request& req);

// The tenant `req` speaks for, if it may call a route that needs
// `access`: else Unauthenticated (401) or PermissionDenied (403).
StatusOr<const Tenant*> Authorize(const ApiContext* ctx, const http::Request& req, Access access);

// `handler`, behind Authorize.
http::Handler Guard(const ApiContext* ctx, Access access, http::Handler handler);

// For http::Server::Options::check_header: with auth.required, a request
// whose body is large (over 64 KiB, or chunked) and whose key is missing or
// unknown is refused with 401 from its header, before its body is read;
// open routes and small bodies are left to the routes.
std::optional<http::HttpError> RefuseBeforeBody(const ApiContext* ctx, const http::Request& header);

}  // namespace inferd::api
