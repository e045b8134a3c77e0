#include "cache/disk_cache.h"
#include "cache/lower_tiers.h"

namespace inferd {
namespace {

class DiskTier final : public LowerTier {
 public:
  explicit DiskTier(std::unique_ptr<DiskCache> disk) : disk_(std::move(disk)) {}
  CacheTier tier() const override { return CacheTier::kDisk; }
  StatusOr<std::shared_ptr<const CacheEntry>> Get(const CacheKey& key) override {
    return disk_->Get(key);
  }
  void Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry) override {
    disk_->Put(key, std::move(entry));  // counts its own drops
  }
  Status EraseModel(std::string_view model) override { return disk_->EraseModel(model).status(); }
  Status Clear() override { return disk_->Clear(); }
  void Flush() override { disk_->Flush(); }
  Stats GetStats() override {
    DiskCache::Stats d = disk_->GetStats();
    Stats s;
    s.hits = d.hits;
    s.misses = d.misses;
    s.errors = d.errors;
    // Entries dropped by the size cap (and file TTL); expired entries found
    // on read are DiskCache::Stats::expired, counted as misses here.
    s.evictions = d.evictions;
    s.writes = d.writes;
    s.dropped_writes = d.dropped_writes;
    s.entries = static_cast<int64_t>(d.approx_entries);
    s.bytes = static_cast<int64_t>(d.approx_bytes);
    return s;
  }

 private:
  std::unique_ptr<DiskCache> disk_;
};

}  // namespace

std::unique_ptr<LowerTier> MakeDiskTier(std::unique_ptr<DiskCache> disk) {
  return std::make_unique<DiskTier>(std::move(disk));
}

}  // namespace inferd
