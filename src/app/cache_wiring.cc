#include "app/cache_wiring.h"

#include "cache/disk_cache.h"
#include "cache/lower_tiers.h"
#include "cache/redis_cache.h"
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
  o.memory.copy_share = s.GetDouble("cache.exact_repeat_share");
  o.registry = registry;
  // Lower tiers in lookup order: L2 disk, then L3 Redis.
  if (std::string path = s.GetString("cache.disk.path"); !path.empty()) {
    DiskCache::Options d;
    d.path = path;
    d.max_bytes = static_cast<size_t>(std::max<int64_t>(1 << 20, s.GetInt("cache.disk.max_bytes")));
    d.file_ttl_s = static_cast<uint64_t>(std::max<int64_t>(0, s.GetInt("cache.disk.file_ttl_s")));
    auto disk = DiskCache::Create(d);
    if (disk.ok()) {
      o.lower_tiers.push_back(MakeDiskTier(std::move(disk).value()));
      INFERD_LOG_INFO("response cache: disk tier at {} (cap {} bytes)", path, d.max_bytes);
    } else {
      INFERD_LOG_ERROR("response cache: disk tier disabled: {}", disk.status().message());
    }
  }
  if (std::string url = s.GetString("cache.redis.url"); !url.empty()) {
    RedisCache::Options r;
    r.url = url;
    r.key_prefix = s.GetString("cache.redis.key_prefix");
    auto timeout =
        std::chrono::milliseconds(std::max<int64_t>(1, s.GetInt("cache.redis.timeout_ms")));
    r.connect_timeout = timeout;
    r.op_timeout = timeout;
    auto redis = RedisCache::Create(r);
    if (redis.ok()) {
      o.lower_tiers.push_back(MakeRedisTier(std::move(redis).value()));
      // The URL may carry a password: log only what follows the '@'.
      std::string shown = url.substr(url.find('@') == std::string::npos ? 0 : url.find('@') + 1);
      INFERD_LOG_INFO("response cache: Redis tier at {} (prefix '{}')", shown, r.key_prefix);
    } else {
      INFERD_LOG_ERROR("response cache: Redis tier disabled: {}", redis.status().message());
    }
  }
  return ResponseCache::Create(std::move(o));
}

}  // namespace inferd
