#pragma once
// Adapters from the concrete lower tiers to ResponseCache's LowerTier
// interface. Kept apart so that response_cache.h needs neither RocksDB's
// nor hiredis' headers.

#include <memory>

#include "cache/response_cache.h"

namespace inferd {

class DiskCache;
class RedisCache;

std::unique_ptr<LowerTier> MakeDiskTier(std::unique_ptr<DiskCache> disk);
std::unique_ptr<LowerTier> MakeRedisTier(std::unique_ptr<RedisCache> redis);

}  // namespace inferd
