#pragma once
// Adapters from the concrete lower tiers to the LowerTier interface
// (cache_tier.h). Kept apart so that response_cache.h needs neither
// RocksDB's nor hiredis' headers.

#include <memory>

#include "cache/cache_tier.h"

namespace inferd {

class DiskCache;
class RedisCache;

std::unique_ptr<LowerTier> MakeDiskTier(std::unique_ptr<DiskCache> disk);
std::unique_ptr<LowerTier> MakeRedisTier(std::unique_ptr<RedisCache> redis);

}  // namespace inferd
