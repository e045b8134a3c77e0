#pragma once
// Builds the response cache and its tiers from the serve settings. A lower
// tier that cannot start (an unwritable directory, a bad Redis URL) is
// disabled with an error in the log; the server runs without it.

#include <memory>

#include "cache/response_cache.h"
#include "common/settings.h"
#include "metrics/metrics.h"

namespace inferd {

// Null (and OK) when cache.memory.max_bytes is 0.
StatusOr<std::unique_ptr<ResponseCache>> BuildResponseCache(const Settings& s, Registry* registry);

}  // namespace inferd
