#include "cache/lower_tiers.h"
#include "cache/redis_cache.h"

namespace inferd {
namespace {

class RedisTier final : public LowerTier {
 public:
  explicit RedisTier(std::unique_ptr<RedisCache> redis) : redis_(std::move(redis)) {}
  StatusOr<std::shared_ptr<const CacheEntry>> Get(const CacheKey& key) override {
    return redis_->Get(key);
  }
  void Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry) override {
    redis_->Put(key, std::move(entry));
  }
  // RedisCache skips deletions while its circuit is open and counts a
  // failed one as an error; either way, say so.
  Status EraseModel(std::string_view model) override {
    uint64_t before = Failures();
    redis_->EraseModel(model);
    return Reachable(before);
  }
  Status Clear() override {
    uint64_t before = Failures();
    redis_->Clear();
    return Reachable(before);
  }
  void Flush() override { redis_->Flush(); }
  uint64_t Failures() {
    RedisCache::Stats r = redis_->GetStats();
    return r.errors + r.timeouts;
  }
  Status Reachable(uint64_t failures_before) {
    RedisCache::Stats r = redis_->GetStats();
    if (!r.circuit_open && r.errors + r.timeouts == failures_before) return Status::OK();
    return UnavailableError(
        "the Redis tier is unavailable: its entries were not deleted and may be "
        "served again once Redis is back; retry the request");
  }

  Stats GetStats() override {
    RedisCache::Stats r = redis_->GetStats();
    Stats s;
    s.hits = r.hits;
    s.misses = r.misses;
    s.errors = r.errors + r.timeouts;
    s.writes = r.writes;
    s.dropped_writes = r.dropped_writes;
    s.circuit_open = r.circuit_open ? 1 : 0;
    return s;  // entries and bytes are not tracked for a shared Redis
  }

 private:
  std::unique_ptr<RedisCache> redis_;
};

}  // namespace

std::unique_ptr<LowerTier> MakeRedisTier(std::unique_ptr<RedisCache> redis) {
  return std::make_unique<RedisTier>(std::move(redis));
}

}  // namespace inferd
