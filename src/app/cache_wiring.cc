#include "app/cache_wiring.h"

#include "common/logging.h"

namespace inferd {

StatusOr<std::unique_ptr<ResponseCache>> BuildResponseCache(const Settings& s, Registry* registry) {
  int64_t max_bytes = s.GetInt("cache.memory.max_bytes");
  if (max_bytes < 0) return InvalidArgumentError("cache.memory.max_bytes must be >= 0");
  if (max_bytes == 0) return std::unique_ptr<ResponseCache>();
  ResponseCache::Options o;
  o.memory.max_bytes = static_cast<size_t>(max_bytes);
  o.memory.shards = static_cast<int>(s.GetInt("cache.memory.shards"));
  o.memory.max_stale_us = s.GetInt("cache.memory.max_stale_s") * 1000000;
  o.registry = registry;
  return ResponseCache::Create(std::move(o));
}

}  // namespace inferd
