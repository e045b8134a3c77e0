#include "api/auth.h"

namespace inferd::api {
StatusOr<std::string> ReadCredential(const http::Request& req) {
  auto auth = req[http::beast_http::field::authorization];
  auto key = req["X-Api-Key"];
  return CredentialFrom({auth.data(), auth.size()}, {key.data(), key.size()});
}

StatusOr<const Tenant*> Authorize(const ApiContext* ctx, const http::Request& req, Access access) {
  if (ctx->admission == nullptr) return nullptr;  // a server without admission admits all
  std::string credential;
  if (ctx->admission->uses_keys()) {
    INFERD_ASSIGN_OR_RETURN(credential, ReadCredential(req));
  }
  INFERD_ASSIGN_OR_RETURN(const Tenant* tenant, ctx->admission->Authenticate(credential));
  if (access == Access::kAdmin && !tenant->admin) {
    return PermissionDeniedError("tenant '" + tenant->name +
                                 "' may not call admin endpoints (admin = false)");
  }
  return tenant;
}

http::Handler Guard(const ApiContext* ctx, Access access, http::Handler handler) {
  return [ctx, access, handler = std::move(handler)](
             http::Request&& req, const http::PathParams& params, http::Responder respond) {
    auto allowed = Authorize(ctx, req, access);
    if (!allowed.ok()) {
      respond.Send(ErrorResponse(allowed.status()));
      return;
    }
    handler(std::move(req), params, std::move(respond));
  };
}

}  // namespace inferd::api
