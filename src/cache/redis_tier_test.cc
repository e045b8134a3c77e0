// ResponseCache over the real lower tiers (a real redis-server, a RocksDB
// directory): an invalidation's result is made of its own calls' results.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>

#include "cache/cache_test_util.h"
#include "cache/disk_cache.h"
#include "cache/lower_tiers.h"
#include "cache/redis_cache.h"
#include "cache/redis_test_server.h"
#include "cache/response_cache.h"
#include "common/clock.h"
#include "common/mutex.h"

namespace inferd {
namespace {

using redis_test::Entry;
using redis_test::Key;
using redis_test::Raw;
using redis_test::RawReply;

// A FakeClock whose WallMicros, once armed, holds its next caller until
// released. RedisCache's writer reads the wall time in the middle of a
// batch, holding the write queue's writer lock that every erase waits for:
// so an erase started meanwhile cannot end before the release.
class GateClock final : public Clock {
 public:
  Time Now() override { return base_.Now(); }
  int64_t WallMicros() override EXCLUDES(mu_) {
    {
      MutexLock l(&mu_);
      if (armed_) {
        armed_ = false;
        held_ = true;
        cv_.SignalAll();
        while (held_) cv_.Wait(&mu_);
      }
    }
    return base_.WallMicros();
  }
  bool WaitUntil(CondVar* cv, Mutex* mu, Time deadline) override REQUIRES(mu) {
    return base_.WaitUntil(cv, mu, deadline);
  }

  void Arm() EXCLUDES(mu_) {
    MutexLock l(&mu_);
    armed_ = true;
  }
  // Returns once a caller is held.
  void WaitHeld() EXCLUDES(mu_) {
    MutexLock l(&mu_);
    while (!held_) cv_.Wait(&mu_);
  }
  void Release() EXCLUDES(mu_) {
    {
      MutexLock l(&mu_);
      held_ = false;
    }
    cv_.SignalAll();
  }

 private:
  FakeClock base_;
  Mutex mu_;
  CondVar cv_;
  bool armed_ GUARDED_BY(mu_) = false;
  bool held_ GUARDED_BY(mu_) = false;
};

class RedisTierTest : public redis_test::RedisFixture {
 protected:
  // A ResponseCache over `tiers` (lookup order).
  std::unique_ptr<ResponseCache> MakeCache(std::vector<std::unique_ptr<LowerTier>> tiers) {
    ResponseCache::Options o;
    o.memory.max_bytes = 1 << 20;
    o.memory.clock = &clock_;
    o.clock = &clock_;
    o.lower_tiers = std::move(tiers);
    auto c = ResponseCache::Create(std::move(o));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
};

// The regression behind this test: the Redis tier used to infer an
// invalidation's failure from the tier's global error counters, so Gets
// failing meanwhile turned a successful invalidation into a 503.
TEST_F(RedisTierTest, InvalidationIsOkWhileConcurrentGetsFail) {
  GateClock gate;
  RedisCache::Options ro = Opts();
  ro.clock = &gate;
  auto made = Make(ro);
  ASSERT_TRUE(made);
  RedisCache* redis = made.get();
  std::vector<std::unique_ptr<LowerTier>> tiers;
  tiers.push_back(MakeRedisTier(std::move(made)));
  auto cache = MakeCache(std::move(tiers));
  ASSERT_TRUE(cache);

  // A key holding a list: every Get of it fails (WRONGTYPE), counted as a
  // Redis error but not held against the server by the circuit.
  const CacheKey broken = Key("other", 1);
  RawReply pushed = Raw(raw_.get(), {"RPUSH", redis->RedisKey(broken), "x"});
  ASSERT_TRUE(pushed && pushed->type == REDIS_REPLY_INTEGER);
  ASSERT_EQ(redis->Get(broken).status().code(), StatusCode::kUnavailable);

  const CacheKey k = Key("m", 1);
  for (bool clear : {false, true}) {
    SCOPED_TRACE(clear ? "Clear" : "InvalidateModel");
    gate.Arm();
    cache->Store(k, Entry(k, In(std::chrono::seconds(60))));
    gate.WaitHeld();  // the writer is inside the batch: erases wait for it
    Status result = InternalError("not run");
    std::thread invalidation(
        [&] { result = clear ? cache->Clear() : cache->InvalidateModel("m"); });
    const uint64_t errors = redis->GetStats().errors;
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(redis->Get(broken).status().code(), StatusCode::kUnavailable);
    }
    EXPECT_EQ(redis->GetStats().errors, errors + 10);
    gate.Release();
    invalidation.join();
    EXPECT_TRUE(result.ok()) << result.ToString();
    // The entry written before the erase did not survive it.
    EXPECT_EQ(redis->Get(k).status().code(), StatusCode::kNotFound);
  }
  EXPECT_FALSE(redis->GetStats().circuit_open);
}

TEST_F(RedisTierTest, AFailingRedisTierFailsTheInvalidationAfterTheDiskRan) {
  cache_test::TempDir dir("redis_tier_test");
  ASSERT_FALSE(dir.path().empty());
  DiskCache::Options d;
  d.path = dir.path() + "/db";
  d.clock = &clock_;
  auto disk_made = DiskCache::Create(d);
  ASSERT_TRUE(disk_made.ok()) << disk_made.status().ToString();
  DiskCache* disk = disk_made->get();
  RedisCache::Options ro = Opts();
  ro.failures_to_open = 100;  // every call below reaches the (dead) server
  auto redis_made = Make(ro);
  ASSERT_TRUE(redis_made);
  RedisCache* redis = redis_made.get();
  std::vector<std::unique_ptr<LowerTier>> tiers;
  tiers.push_back(MakeDiskTier(std::move(disk_made).value()));
  tiers.push_back(MakeRedisTier(std::move(redis_made)));
  auto cache = MakeCache(std::move(tiers));
  ASSERT_TRUE(cache);
  EXPECT_TRUE(cache->has_disk() && cache->has_redis());

  const CacheKey k = Key("m", 1);
  cache->Store(k, Entry(k, In(std::chrono::seconds(60))));
  cache->Flush();
  ASSERT_TRUE(disk->Get(k).ok());
  ASSERT_TRUE(redis->Get(k).ok());

  server_->Kill();
  Status st = cache->InvalidateModel("m");
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("the Redis tier could not erase model 'm'"), std::string::npos)
      << st.ToString();
  EXPECT_FALSE(cache->Probe(k));    // L1 erased
  EXPECT_FALSE(disk->Get(k).ok());  // L2 erased
  cache->Store(k, Entry(k, In(std::chrono::seconds(60))));
  cache->Flush();
  st = cache->Clear();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("the Redis tier could not clear"), std::string::npos)
      << st.ToString();
  EXPECT_FALSE(disk->Get(k).ok());

  ASSERT_TRUE(server_->Start());  // back, empty
  st = cache->InvalidateModel("m");
  EXPECT_TRUE(st.ok()) << st.ToString();
  st = cache->Clear();
  EXPECT_TRUE(st.ok()) << st.ToString();
}

}  // namespace
}  // namespace inferd
