#include "cache/lower_tiers.h"
#include "cache/redis_cache.h"

namespace inferd {
namespace {

class RedisTier final : public LowerTier {
 public:
  explicit RedisTier(std::unique_ptr<RedisCache> redis) : redis_(std::move(redis)) {}
  CacheTier tier() const override { return CacheTier::kRedis; }
  StatusOr<std::shared_ptr<const CacheEntry>> Get(const CacheKey& key) override {
    return redis_->Get(key);
  }
  void Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry) override {
    redis_->Put(key, std::move(entry));  // counts its own drops
  }
  // The status of the SCAN and UNLINK/DEL commands the call issued (or of
  // the circuit that refused them), nothing else.
  Status EraseModel(std::string_view model) override { return redis_->EraseModel(model).status(); }
  Status Clear() override { return redis_->Clear(); }
  void Flush() override { redis_->Flush(); }

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
