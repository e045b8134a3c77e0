#include <fstream>
#include <future>

#include "api/api.h"
#include "api/kserve_codec.h"
#include "common/logging.h"

namespace inferd::api {

// Each line: a KServe v2 infer request body with more top-level fields:
// "model", optionally "model_version" and "tenant" (whose cache scope the
// line fills; default: the default tenant's). Lines run one after another
// through the normal pipeline (so they fill the cache like any request).
Status WarmCache(const ApiContext* ctx, const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot read " + path);
  std::string line;
  int64_t lineno = 0, ok = 0, failed = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto body = std::make_shared<const std::string>(line);
    auto decoded = kserve::DecodeInferRequest(body, -1);
    auto target = kserve::DecodeWarmTarget(*body);
    if (!decoded.ok() || !target.ok()) {
      Status st = !decoded.ok() ? decoded.status() : target.status();
      INFERD_LOG_WARN("cache_warm {}:{}: {}", path, lineno, st.message());
      ++failed;
      continue;
    }
    InferRequest request = std::move(decoded->request);
    request.model = target->model;
    request.version = target->version;
    RequestContext context;
    if (!target->tenant.empty()) {
      bool known = target->tenant == Admission::kDefaultTenant;
      if (ctx->admission != nullptr) {
        for (const auto& t : ctx->admission->tenants()) known = known || t->name == target->tenant;
      }
      if (!known) {
        INFERD_LOG_WARN("cache_warm {}:{}: unknown tenant '{}'", path, lineno, target->tenant);
        ++failed;
        continue;
      }
      context.tenant = target->tenant;
    }
    std::promise<Status> done;
    ctx->server->Infer(
        std::move(request), [&done](StatusOr<InferResponse> r) { done.set_value(r.status()); },
        std::move(context));
    Status st = done.get_future().get();
    if (st.ok()) {
      ++ok;
    } else {
      INFERD_LOG_WARN("cache_warm {}:{}: {}", path, lineno, st.message());
      ++failed;
    }
  }
  INFERD_LOG_INFO("cache_warm {}: {} request(s) replayed, {} failed", path, ok, failed);
  return Status::OK();
}

}  // namespace inferd::api
