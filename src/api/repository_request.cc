#include "api/repository_request.h"

#include <simdjson.h>

#include <string>

namespace inferd::api {

StatusOr<RepositoryRequest> ParseRepositoryRequest(std::string_view body, RepositoryCall call) {
  RepositoryRequest out;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return out;
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(body.data(), body.size()).get(doc)) {
    return InvalidArgumentError(std::string("malformed JSON: ") + simdjson::error_message(err));
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) {
    return InvalidArgumentError("the request body must be a JSON object");
  }
  for (auto field : obj) {
    const std::string_view key = field.key;
    if (call == RepositoryCall::kIndex && key == "ready") {
      if (field.value.get_bool().get(out.ready_only) != simdjson::SUCCESS)
        return InvalidArgumentError("'ready' must be true or false");
      continue;
    }
    if (call != RepositoryCall::kIndex && key == "parameters") {
      simdjson::dom::object params;
      if (field.value.get_object().get(params) != simdjson::SUCCESS)
        return InvalidArgumentError("'parameters' must be an object");
      for (auto p : params) {
        // tritonclient's unload always sends unload_dependents (false):
        // there are no dependents (ensembles) to unload.
        bool flag = true;
        if (call == RepositoryCall::kUnload && p.key == "unload_dependents" &&
            p.value.get_bool().get(flag) == simdjson::SUCCESS && !flag) {
          continue;
        }
        return InvalidArgumentError(
            "parameter '" + std::string(p.key) + "' is not supported" +
            (call == RepositoryCall::kLoad
                 ? " (a model loads from its repository directory)"
                 : " (inferd has no ensembles: an unload has no dependents)"));
      }
      continue;
    }
    return InvalidArgumentError("unknown field '" + std::string(key) + "'");
  }
  return out;
}

}  // namespace inferd::api
