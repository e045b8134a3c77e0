#include "api/auth.h"

#include <charconv>

namespace inferd::api {
StatusOr<std::string> ReadCredential(const http::Request& req) {
  auto auth = req[http::beast_http::field::authorization];
  auto key = req["X-Api-Key"];
  return CredentialFrom({auth.data(), auth.size()}, {key.data(), key.size()});
}

StatusOr<int> ReadPriority(const http::Request& req) {
  if (req.count("X-Inferd-Priority") == 0) return 0;
  const std::string_view v = req["X-Inferd-Priority"];
  int level = -1;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), level);
  if (ec != std::errc() || end != v.data() + v.size() || level < 0 || level > 255) {
    return InvalidArgumentError(
        "X-Inferd-Priority must be an integer from 0 to 255 (1 is the highest level; 0: the "
        "model's default)");
  }
  return level;
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

std::optional<http::HttpError> RefuseBeforeBody(const ApiContext* ctx,
                                                const http::Request& header) {
  const Admission* admission = ctx->admission;
  if (admission == nullptr || !admission->auth_required()) return std::nullopt;
  // Small bodies are cheap to read: their route answers (and the key is
  // hashed once, there).
  constexpr uint64_t kSmallBody = 64 << 10;
  const bool chunked = header.count("Transfer-Encoding") > 0;
  auto length_field = header["Content-Length"];
  uint64_t length = 0;
  std::from_chars(length_field.data(), length_field.data() + length_field.size(), length);
  if (!chunked && length <= kSmallBody) return std::nullopt;
  std::string_view path(header.target().data(), header.target().size());
  path = path.substr(0, path.find('?'));
  if (path == "/v2" || path == "/metrics" || path.rfind("/v2/health/", 0) == 0) return std::nullopt;
  StatusOr<std::string> credential = ReadCredential(header);
  if (!credential.ok()) return std::nullopt;  // the route answers 400
  StatusOr<const Tenant*> tenant = admission->Authenticate(*credential);
  if (tenant.ok()) return std::nullopt;
  return http::HttpError{http::Status::unauthorized,
                         tenant.status().message(),
                         {{"WWW-Authenticate", "Bearer realm=\"inferd\""}}};
}

}  // namespace inferd::api
