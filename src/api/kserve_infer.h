#pragma once
// The KServe v2 infer endpoint (POST /v2/models/{m}[/versions/{v}]/infer):
// the HTTP request becomes one InferExchange submitted to the pipeline; its
// completion becomes the HTTP response. Private to src/api.

#include <string>

#include "api/api.h"

namespace inferd::api {

void HandleInfer(const ApiContext* ctx, http::Request&& req, std::string model, std::string version,
                 http::Responder respond);

}  // namespace inferd::api
