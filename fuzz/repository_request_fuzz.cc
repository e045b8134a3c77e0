// Fuzz target: the bodies of the repository extension's requests (index,
// load, unload).
// Invariants: parsing never throws or reads out of bounds; an empty body
// is accepted by every call; an accepted load or unload body never selects
// READY-only (that field belongs to the index); a refusal names a problem.
#include <cstdint>
#include <string_view>

#include "api/repository_request.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace inferd::api;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  for (RepositoryCall call :
       {RepositoryCall::kIndex, RepositoryCall::kLoad, RepositoryCall::kUnload}) {
    auto parsed = ParseRepositoryRequest(body, call);
    if (parsed.ok()) {
      if (call != RepositoryCall::kIndex) FUZZ_CHECK(!parsed->ready_only);
    } else {
      FUZZ_CHECK(!parsed.status().message().empty());
    }
    FUZZ_CHECK(ParseRepositoryRequest("", call).ok());
  }
  return 0;
}
