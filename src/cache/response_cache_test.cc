// Tests of ResponseCache over an arbitrary list of lower tiers, here fakes
// that keep entries in memory, record the calls made to them and can be
// told to fail their invalidations. (The real tiers under ResponseCache:
// disk_cache_fault_test.cc and redis_tier_test.cc.)

#include "cache/response_cache.h"

#include <gtest/gtest.h>

#include <future>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cache/cache_test_util.h"
#include "common/mutex.h"
#include "metrics/metrics.h"

namespace inferd {
namespace {

using cache_test::Key;

// The calls made to the fake tiers, in order ("disk.Get", "redis.Put", ...).
class CallLog {
 public:
  void Add(std::string call) EXCLUDES(mu_) {
    MutexLock l(&mu_);
    calls_.push_back(std::move(call));
  }
  // The calls logged since the last Take.
  std::vector<std::string> Take() EXCLUDES(mu_) {
    MutexLock l(&mu_);
    return std::exchange(calls_, {});
  }

 private:
  Mutex mu_;
  std::vector<std::string> calls_ GUARDED_BY(mu_);
};

class FakeTier final : public LowerTier {
 public:
  FakeTier(CacheTier tier, CallLog* log) : tier_(tier), log_(log) {}

  CacheTier tier() const override { return tier_; }
  StatusOr<std::shared_ptr<const CacheEntry>> Get(const CacheKey& key) override {
    Log("Get");
    MutexLock l(&mu_);
    auto it = entries_.find(Id(key));
    if (it == entries_.end()) return NotFoundError("not here");
    return it->second;
  }
  void Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry) override {
    Log("Put");
    Set(key, std::move(entry));
  }
  Status EraseModel(std::string_view model) override {
    Log("EraseModel");
    MutexLock l(&mu_);
    if (!invalidation_error_.ok()) return invalidation_error_;
    std::erase_if(entries_, [&](const auto& e) { return e.second->model == model; });
    return Status::OK();
  }
  Status Clear() override {
    Log("Clear");
    MutexLock l(&mu_);
    if (!invalidation_error_.ok()) return invalidation_error_;
    entries_.clear();
    return Status::OK();
  }
  void Flush() override { Log("Flush"); }
  Stats GetStats() override {
    MutexLock l(&mu_);
    return stats_;
  }

  // For the test.
  void Set(const CacheKey& key, std::shared_ptr<const CacheEntry> entry) {
    MutexLock l(&mu_);
    entries_[Id(key)] = std::move(entry);
  }
  bool Has(const CacheKey& key) {
    MutexLock l(&mu_);
    return entries_.count(Id(key)) > 0;
  }
  // EraseModel and Clear return `error` (deleting nothing) until reset.
  void FailInvalidations(Status error) {
    MutexLock l(&mu_);
    invalidation_error_ = std::move(error);
  }
  void SetStats(const Stats& stats) {
    MutexLock l(&mu_);
    stats_ = stats;
  }

 private:
  static std::string Id(const CacheKey& k) { return k.model + ":" + k.digest.Hex(); }
  void Log(const char* op) { log_->Add(std::string(CacheTierName(tier_)) + "." + op); }

  const CacheTier tier_;
  CallLog* const log_;
  Mutex mu_;
  std::map<std::string, std::shared_ptr<const CacheEntry>> entries_ GUARDED_BY(mu_);
  Status invalidation_error_ GUARDED_BY(mu_);
  Stats stats_ GUARDED_BY(mu_);
};

std::shared_ptr<const CacheEntry> Entry(const CacheKey& k, std::string payload) {
  auto e = std::make_shared<CacheEntry>();
  e->check = k.check;
  e->model = k.model;
  e->created_us = 1;
  e->expires_us = std::numeric_limits<int64_t>::max();
  e->payload = std::move(payload);
  return e;
}

using Calls = std::vector<std::string>;

class ResponseCacheTest : public ::testing::Test {
 protected:
  // A cache over fake tiers of `order` (lookup order); fakes_ by tier.
  void Make(std::vector<CacheTier> order) {
    ResponseCache::Options o;
    o.memory.max_bytes = 1 << 20;
    o.registry = &registry_;
    for (CacheTier t : order) {
      auto tier = std::make_unique<FakeTier>(t, &log_);
      fakes_[t] = tier.get();
      o.lower_tiers.push_back(std::move(tier));
    }
    auto cache = ResponseCache::Create(std::move(o));
    ASSERT_TRUE(cache.ok()) << cache.status().ToString();
    cache_ = std::move(cache).value();
  }
  FakeTier& disk() { return *fakes_.at(CacheTier::kDisk); }
  FakeTier& redis() { return *fakes_.at(CacheTier::kRedis); }

  // Lookup's answer, waiting for the lookup thread if it goes there.
  std::optional<ResponseCache::Hit> Lookup(const CacheKey& key) {
    std::promise<std::optional<ResponseCache::Hit>> answer;
    cache_->Lookup(key, [&](std::optional<ResponseCache::Hit> hit) { answer.set_value(hit); });
    return answer.get_future().get();
  }
  Status InvalidateModelAsync(const std::string& model) {
    std::promise<Status> done;
    cache_->InvalidateModelAsync(model, [&](Status st) { done.set_value(st); });
    return done.get_future().get();
  }
  Status ClearAsync() {
    std::promise<Status> done;
    cache_->ClearAsync([&](Status st) { done.set_value(st); });
    return done.get_future().get();
  }

  Registry registry_;
  CallLog log_;
  std::map<CacheTier, FakeTier*> fakes_;
  std::unique_ptr<ResponseCache> cache_;
};

TEST_F(ResponseCacheTest, LooksUpTheTiersInOrderAndPromotesAHitUpward) {
  Make({CacheTier::kDisk, CacheTier::kRedis});
  const CacheKey in_redis = Key(1), in_disk = Key(2), nowhere = Key(3);
  redis().Set(in_redis, Entry(in_redis, "from redis"));
  disk().Set(in_disk, Entry(in_disk, "from disk"));

  auto hit = Lookup(in_redis);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->source, ResponseCache::Source::kRedis);
  EXPECT_EQ(hit->entry->payload, "from redis");
  EXPECT_EQ(log_.Take(), (Calls{"disk.Get", "redis.Get", "disk.Put"}));
  EXPECT_TRUE(disk().Has(in_redis));
  hit = Lookup(in_redis);  // promoted into L1 too
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->source, ResponseCache::Source::kMemory);
  EXPECT_EQ(log_.Take(), Calls{});

  hit = Lookup(in_disk);  // L3 is not asked, nothing is written below
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->source, ResponseCache::Source::kDisk);
  EXPECT_EQ(log_.Take(), Calls{"disk.Get"});
  EXPECT_FALSE(redis().Has(in_disk));

  EXPECT_FALSE(Lookup(nowhere));
  EXPECT_EQ(log_.Take(), (Calls{"disk.Get", "redis.Get"}));
}

TEST_F(ResponseCacheTest, FollowsTheOrderOfTheListWhateverItIs) {
  Make({CacheTier::kRedis, CacheTier::kDisk});
  const CacheKey k = Key(1);
  disk().Set(k, Entry(k, "from disk"));
  auto hit = Lookup(k);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->source, ResponseCache::Source::kDisk);
  EXPECT_EQ(log_.Take(), (Calls{"redis.Get", "disk.Get", "redis.Put"}));
  EXPECT_TRUE(redis().Has(k));
}

TEST_F(ResponseCacheTest, StoreAndFlushReachEveryTier) {
  Make({CacheTier::kDisk, CacheTier::kRedis});
  const CacheKey k = Key(1);
  cache_->Store(k, Entry(k, "v"));
  cache_->Flush();
  EXPECT_EQ(log_.Take(), (Calls{"disk.Put", "redis.Put", "disk.Flush", "redis.Flush"}));
  EXPECT_TRUE(disk().Has(k));
  EXPECT_TRUE(redis().Has(k));
  EXPECT_TRUE(cache_->Probe(k));
}

TEST_F(ResponseCacheTest, InvalidationIsOkOnlyIfEveryTierSucceeded) {
  Make({CacheTier::kDisk, CacheTier::kRedis});
  const CacheKey a = Key(1, "a"), b = Key(2, "b");
  cache_->Store(a, Entry(a, "a"));
  cache_->Store(b, Entry(b, "b"));
  log_.Take();

  const uint64_t generation = cache_->generation();
  Status st = cache_->InvalidateModel("a");
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(log_.Take(), (Calls{"disk.EraseModel", "redis.EraseModel"}));
  EXPECT_EQ(cache_->generation(), generation + 2);
  EXPECT_FALSE(cache_->Probe(a));
  EXPECT_FALSE(disk().Has(a) || redis().Has(a));
  EXPECT_TRUE(disk().Has(b) && redis().Has(b) && cache_->Probe(b));

  st = cache_->Clear();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(log_.Take(), (Calls{"disk.Clear", "redis.Clear"}));
  EXPECT_FALSE(disk().Has(b) || redis().Has(b) || cache_->Probe(b));
}

TEST_F(ResponseCacheTest, AFailingTierFailsTheInvalidationAfterEveryTierRan) {
  Make({CacheTier::kDisk, CacheTier::kRedis});
  const CacheKey a = Key(1, "a");
  cache_->Store(a, Entry(a, "a"));
  log_.Take();

  // L3 fails: L1 and L2 are erased all the same; the error names L3.
  redis().FailInvalidations(DeadlineExceededError("SCAN timed out"));
  Status st = cache_->InvalidateModel("a");
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_NE(st.message().find("the Redis tier could not erase model 'a'"), std::string::npos)
      << st.ToString();
  EXPECT_NE(st.message().find("SCAN timed out"), std::string::npos) << st.ToString();
  EXPECT_EQ(log_.Take(), (Calls{"disk.EraseModel", "redis.EraseModel"}));
  EXPECT_FALSE(cache_->Probe(a));
  EXPECT_FALSE(disk().Has(a));
  EXPECT_TRUE(redis().Has(a));

  // Both fail: the first one (in lookup order) is named; both were called.
  disk().FailInvalidations(UnavailableError("disk full"));
  st = cache_->Clear();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("the disk tier could not clear (disk full)"), std::string::npos)
      << st.ToString();
  EXPECT_EQ(st.message().find("Redis"), std::string::npos) << st.ToString();
  EXPECT_EQ(log_.Take(), (Calls{"disk.Clear", "redis.Clear"}));

  // The same through the asynchronous forms.
  st = InvalidateModelAsync("a");
  EXPECT_NE(st.message().find("the disk tier could not erase model 'a'"), std::string::npos)
      << st.ToString();
  st = ClearAsync();
  EXPECT_NE(st.message().find("the disk tier could not clear"), std::string::npos) << st.ToString();

  // Each result comes from its own calls: once the tiers succeed, OK.
  disk().FailInvalidations(Status::OK());
  redis().FailInvalidations(Status::OK());
  EXPECT_TRUE(InvalidateModelAsync("a").ok());
  EXPECT_TRUE(ClearAsync().ok());
  EXPECT_FALSE(redis().Has(a));
}

TEST_F(ResponseCacheTest, CreateChecksTheTiers) {
  auto create = [](std::vector<std::unique_ptr<LowerTier>> tiers) {
    ResponseCache::Options o;
    o.memory.max_bytes = 1 << 20;
    o.lower_tiers = std::move(tiers);
    return ResponseCache::Create(std::move(o)).status();
  };
  CallLog log;
  std::vector<std::unique_ptr<LowerTier>> tiers;
  tiers.push_back(nullptr);
  EXPECT_EQ(create(std::move(tiers)).code(), StatusCode::kInvalidArgument);
  tiers.clear();
  tiers.push_back(std::make_unique<FakeTier>(CacheTier::kMemory, &log));
  EXPECT_EQ(create(std::move(tiers)).code(), StatusCode::kInvalidArgument);
  tiers.clear();
  tiers.push_back(std::make_unique<FakeTier>(CacheTier::kDisk, &log));
  tiers.push_back(std::make_unique<FakeTier>(CacheTier::kDisk, &log));
  EXPECT_EQ(create(std::move(tiers)).code(), StatusCode::kInvalidArgument);
}

TEST_F(ResponseCacheTest, HasTier) {
  Make({CacheTier::kRedis});
  EXPECT_FALSE(cache_->has_disk());
  EXPECT_TRUE(cache_->has_redis());
  EXPECT_TRUE(cache_->has_tier(CacheTier::kRedis));
}

// The stats JSON of GET /v2/cache/stats, byte for byte as it was when the
// cache had one field per tier.
TEST_F(ResponseCacheTest, StatsJsonListsEveryTierInAFixedOrder) {
  const std::string latency = R"("lookup_seconds":{"p50":0.0,"p90":0.0,"p99":0.0})";
  const std::string memory =
      R"("memory":{"enabled":true,"hits":0,"misses":0,"hit_ratio":0.0,"entries":0,"bytes":0,)"
      R"("evictions":0,"errors":0,"writes":0,"dropped_writes":0,)" +
      latency + "}";
  auto disabled = [&](const char* name) {
    return std::string("\"") + name +
           R"(":{"enabled":false,"hits":0,"misses":0,"hit_ratio":0.0,"entries":-1,"bytes":-1,)"
           R"("evictions":0,"errors":0,"writes":0,"dropped_writes":0,)" +
           latency + "}";
  };
  const std::string tail = R"(},"coalesced":0,"coalesce_waiting":0})";

  ResponseCache::Options memory_only;
  memory_only.memory.max_bytes = 1 << 20;
  auto plain = ResponseCache::Create(std::move(memory_only));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->StatsJson(),
            "{\"tiers\":{" + memory + "," + disabled("disk") + "," + disabled("redis") + tail);

  // Redis first in the list: still listed after the disk.
  Make({CacheTier::kRedis, CacheTier::kDisk});
  disk().SetStats({.hits = 3,
                   .misses = 1,
                   .errors = 2,
                   .evictions = 4,
                   .writes = 5,
                   .dropped_writes = 6,
                   .entries = 7,
                   .bytes = 8});
  redis().SetStats(
      {.hits = 10, .misses = 30, .errors = 1, .writes = 9, .dropped_writes = 2, .circuit_open = 1});
  EXPECT_EQ(
      cache_->StatsJson(),
      "{\"tiers\":{" + memory +
          R"(,"disk":{"enabled":true,"hits":3,"misses":1,"hit_ratio":0.75,"entries":7,"bytes":8,)"
          R"("evictions":4,"errors":2,"writes":5,"dropped_writes":6,)" +
          latency +
          R"(},"redis":{"enabled":true,"hits":10,"misses":30,"hit_ratio":0.25,"entries":-1,)"
          R"("bytes":-1,"evictions":0,"errors":1,"writes":9,"dropped_writes":2,)"
          R"("circuit_open":true,)" +
          latency + "}" + tail);

  // The metrics carry the same figures under the same tier labels.
  const std::string text = registry_.ExposeText();
  for (const char* line :
       {"inferd_cache_hits_total{tier=\"disk\"} 3", "inferd_cache_hits_total{tier=\"redis\"} 10",
        "inferd_cache_misses_total{tier=\"redis\"} 30",
        "inferd_cache_errors_total{tier=\"disk\"} 2",
        "inferd_cache_dropped_writes_total{tier=\"disk\"} 6",
        "inferd_cache_entries{tier=\"disk\"} 7", "inferd_cache_bytes{tier=\"redis\"} -1",
        "inferd_cache_redis_circuit_open 1"}) {
    EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << text;
  }
}

}  // namespace
}  // namespace inferd
