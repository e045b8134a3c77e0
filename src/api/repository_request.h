#pragma once
// The body of Triton's repository extension requests: POST
// /v2/repository/index (`{}`, empty, or `{"ready": true}`) and POST
// /v2/repository/models/{m}/load|unload (empty, `{}` or
// `{"parameters": {}}`; Triton's load parameters "config" and "file:..."
// are not supported and refused by name; unload's "unload_dependents" is
// accepted when false, as tritonclient sends it, and refused when true).

#include <string_view>

#include "common/status.h"

namespace inferd::api {

struct RepositoryRequest {
  bool ready_only = false;  // index: only READY rows
};

enum class RepositoryCall { kIndex, kLoad, kUnload };

// InvalidArgument naming the problem for anything else. Never throws; the
// body is read as it is (its size is bounded by the HTTP server).
StatusOr<RepositoryRequest> ParseRepositoryRequest(std::string_view body, RepositoryCall call);

}  // namespace inferd::api
