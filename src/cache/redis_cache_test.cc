// Tests of the L3 Redis tier against a real redis-server, started by each
// test on an ephemeral port and torn down after it.

#include "cache/redis_cache.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache_test_util.h"
#include "cache/redis_test_server.h"

namespace inferd {
namespace {

using cache_test::Holds;
using redis_test::PickFreePort;
using redis_test::Raw;
using redis_test::RawConn;
using redis_test::RawConnect;
using redis_test::RawReply;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

using redis_test::Entry;
using redis_test::Key;

class RedisCacheTest : public redis_test::RedisFixture {};

TEST(RedisCacheCreateTest, ValidatesUrlWithoutConnecting) {
  for (const char* bad : {"", "http://h:1", "redis://", "redis://h:0", "redis://h:99999",
                          "redis://h:", "redis://h:12/x", "redis://user@h", "redis://[::1"}) {
    RedisCache::Options o;
    o.url = bad;
    auto c = RedisCache::Create(o);
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  for (const char* good :
       {"redis://h", "redis://[::1]:7/2", "redis://:pw@h:1/0", "redis://u:pw@10.0.0.1:6380"}) {
    RedisCache::Options o;
    o.url = good;
    EXPECT_TRUE(RedisCache::Create(o).ok()) << good;
  }
  // Nothing listens on the port: Create succeeds, Get fails fast.
  RedisCache::Options o;
  o.url = "redis://127.0.0.1:" + std::to_string(PickFreePort());
  auto cache = RedisCache::Create(o);
  ASSERT_TRUE(cache.ok());
  auto got = (*cache)->Get(Key("m", 1));
  EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status().ToString();
  EXPECT_EQ((*cache)->GetStats().errors, 1u);
}

TEST_F(RedisCacheTest, PutFlushGet) {
  auto cache = Make(Opts());
  ASSERT_TRUE(cache);
  CacheKey k = Key("resnet", 1);
  std::string payload(100000, 'x');
  cache->Put(k, Entry(k, In(std::chrono::seconds(60)), payload));
  cache->Flush();
  auto got = cache->Get(k);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ((*got)->payload, payload);
  EXPECT_EQ((*got)->check, k.check);
  EXPECT_EQ(cache->Get(Key("resnet", 2)).status().code(), StatusCode::kNotFound);

  // Stored under prefix + model + ':' + hex digest, zstd-compressed.
  EXPECT_EQ(cache->RedisKey(k), "inferd:resnet:" + k.digest.Hex());
  RawReply v = Raw(raw_.get(), {"GET", cache->RedisKey(k)});
  ASSERT_TRUE(v && v->type == REDIS_REPLY_STRING);
  EXPECT_LT(v->len, payload.size() / 10);
  EXPECT_EQ(std::string(v->str, 4), std::string("\x28\xb5\x2f\xfd", 4));

  RedisCache::Stats s = cache->GetStats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.writes, 1u);
  EXPECT_EQ(s.errors, 0u);
  EXPECT_FALSE(s.circuit_open);
}

TEST_F(RedisCacheTest, TwoInstancesSeeEachOthersEntries) {
  auto a = Make(Opts());
  auto b = Make(Opts());
  ASSERT_TRUE(a && b);
  CacheKey ka = Key("m", 1), kb = Key("m", 2);
  a->Put(ka, Entry(ka, In(std::chrono::seconds(60)), "from a"));
  a->Flush();
  b->Put(kb, Entry(kb, In(std::chrono::seconds(60)), "from b"));
  b->Flush();
  auto got_b = b->Get(ka);
  ASSERT_TRUE(got_b.ok()) << got_b.status().ToString();
  EXPECT_EQ((*got_b)->payload, "from a");
  auto got_a = a->Get(kb);
  ASSERT_TRUE(got_a.ok()) << got_a.status().ToString();
  EXPECT_EQ((*got_a)->payload, "from b");
}

TEST_F(RedisCacheTest, TtlIsSetWithPxAndCheckedOnRead) {
  RedisCache::Options o = Opts();
  o.ttl_s_default = 100;
  auto cache = Make(o);
  ASSERT_TRUE(cache);
  CacheKey timed = Key("m", 1), untimed = Key("m", 2), expired = Key("m", 3);
  cache->Put(timed, Entry(timed, In(std::chrono::seconds(30))));
  cache->Put(untimed, Entry(untimed, 0));
  cache->Put(expired, Entry(expired, clock_.WallMicros() - 1));
  cache->Flush();

  RawReply t = Raw(raw_.get(), {"PTTL", cache->RedisKey(timed)});
  ASSERT_TRUE(t && t->type == REDIS_REPLY_INTEGER);
  EXPECT_GT(t->integer, 25'000);
  EXPECT_LE(t->integer, 30'000);
  RawReply u = Raw(raw_.get(), {"PTTL", cache->RedisKey(untimed)});
  ASSERT_TRUE(u && u->type == REDIS_REPLY_INTEGER);
  EXPECT_GT(u->integer, 95'000);
  EXPECT_LE(u->integer, 100'000);
  RawReply e = Raw(raw_.get(), {"EXISTS", cache->RedisKey(expired)});
  ASSERT_TRUE(e && e->type == REDIS_REPLY_INTEGER);
  EXPECT_EQ(e->integer, 0);
  EXPECT_EQ(cache->GetStats().writes, 2u);

  // Past expires_us by the injected clock, the entry is a miss even though
  // Redis (on real time) still holds it.
  ASSERT_TRUE(cache->Get(timed).ok());
  clock_.Advance(std::chrono::seconds(31));
  EXPECT_EQ(cache->Get(timed).status().code(), StatusCode::kNotFound);
}

TEST_F(RedisCacheTest, SelectsTheDatabaseOfTheUrl) {
  RedisCache::Options o = Opts();
  o.url += "/3";
  auto cache = Make(o);
  ASSERT_TRUE(cache);
  CacheKey k = Key("m", 1);
  cache->Put(k, Entry(k, In(std::chrono::seconds(60))));
  cache->Flush();
  EXPECT_EQ(Raw(raw_.get(), {"EXISTS", cache->RedisKey(k)})->integer, 0);
  Raw(raw_.get(), {"SELECT", "3"});
  EXPECT_EQ(Raw(raw_.get(), {"EXISTS", cache->RedisKey(k)})->integer, 1);
}

TEST_F(RedisCacheTest, CheckMismatchIsAMiss) {
  auto cache = Make(Opts());
  ASSERT_TRUE(cache);
  CacheKey k = Key("m", 1);
  cache->Put(k, Entry(k, In(std::chrono::seconds(60))));
  cache->Flush();
  CacheKey other = k;  // same digest, another request
  other.check = "Cother request";
  EXPECT_EQ(cache->Get(other).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(cache->Get(k).ok());
  RedisCache::Stats s = cache->GetStats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.errors, 0u);
}

TEST_F(RedisCacheTest, CorruptValueIsAMissAndAnError) {
  auto cache = Make(Opts());
  ASSERT_TRUE(cache);
  CacheKey garbage = Key("m", 1), flipped = Key("m", 2);
  Raw(raw_.get(), {"SET", cache->RedisKey(garbage), "not a zstd frame"});
  cache->Put(flipped, Entry(flipped, In(std::chrono::seconds(60)), std::string(1000, 'p')));
  cache->Flush();
  RawReply v = Raw(raw_.get(), {"GET", cache->RedisKey(flipped)});
  ASSERT_TRUE(v && v->type == REDIS_REPLY_STRING);
  std::string bytes(v->str, v->len);
  bytes[bytes.size() - 1] ^= 0x5a;
  Raw(raw_.get(), {"SET", cache->RedisKey(flipped), bytes});

  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(cache->Get(garbage).status().code(), StatusCode::kNotFound);
    EXPECT_EQ(cache->Get(flipped).status().code(), StatusCode::kNotFound);
  }
  RedisCache::Stats s = cache->GetStats();
  EXPECT_EQ(s.errors, 6u);
  EXPECT_EQ(s.misses, 6u);
  EXPECT_FALSE(s.circuit_open);  // bad data is not a sick server
}

TEST_F(RedisCacheTest, EraseModelAndClear) {
  auto cache = Make(Opts());
  ASSERT_TRUE(cache);
  const int64_t exp = In(std::chrono::seconds(60));
  for (uint64_t i = 0; i < 3; ++i) cache->Put(Key("m1", i), Entry(Key("m1", i), exp));
  for (uint64_t i = 0; i < 2; ++i) cache->Put(Key("m1:x", i), Entry(Key("m1:x", i), exp));
  for (uint64_t i = 0; i < 2; ++i) cache->Put(Key("m2", i), Entry(Key("m2", i), exp));
  Raw(raw_.get(), {"SET", "other:key", "v"});
  cache->Flush();

  EXPECT_TRUE(Holds(cache->EraseModel("m1"), 3u));
  for (uint64_t i = 0; i < 3; ++i) EXPECT_FALSE(cache->Get(Key("m1", i)).ok());
  for (uint64_t i = 0; i < 2; ++i) EXPECT_TRUE(cache->Get(Key("m1:x", i)).ok()) << i;
  for (uint64_t i = 0; i < 2; ++i) EXPECT_TRUE(cache->Get(Key("m2", i)).ok()) << i;

  // A write still queued is erased with the model's stored entries.
  cache->PauseWriterForTesting(true);
  cache->Put(Key("m2", 9), Entry(Key("m2", 9), exp));
  EXPECT_TRUE(Holds(cache->EraseModel("m2"), 3u));
  cache->PauseWriterForTesting(false);
  cache->Flush();
  EXPECT_FALSE(cache->Get(Key("m2", 9)).ok());

  ASSERT_TRUE(cache->Clear().ok());
  for (uint64_t i = 0; i < 2; ++i) EXPECT_FALSE(cache->Get(Key("m1:x", i)).ok());
  RawReply n = Raw(raw_.get(), {"DBSIZE"});
  ASSERT_TRUE(n && n->type == REDIS_REPLY_INTEGER);
  EXPECT_EQ(n->integer, 1);  // only the key outside the prefix
}

TEST_F(RedisCacheTest, EraseModelScansManyPages) {
  auto cache = Make(Opts());
  ASSERT_TRUE(cache);
  const int64_t exp = In(std::chrono::seconds(60));
  for (uint64_t i = 0; i < 2500; ++i) {
    cache->Put(Key("big", i), Entry(Key("big", i), exp));
    if (i % 1000 == 999) cache->Flush();  // stay within the write queue
  }
  cache->Flush();
  EXPECT_EQ(cache->GetStats().writes, 2500u);
  EXPECT_TRUE(Holds(cache->EraseModel("big"), 2500u));
  RawReply n = Raw(raw_.get(), {"DBSIZE"});
  ASSERT_TRUE(n && n->type == REDIS_REPLY_INTEGER);
  EXPECT_EQ(n->integer, 0);
}

TEST_F(RedisCacheTest, EraseAndClearReturnTheFailureOfTheirCommands) {
  RedisCache::Options o = Opts();
  o.failures_to_open = 3;
  auto cache = Make(o);
  ASSERT_TRUE(cache);
  CacheKey k = Key("m", 1);
  cache->Put(k, Entry(k, In(std::chrono::seconds(60))));
  cache->Flush();
  ASSERT_TRUE(cache->Get(k).ok());  // leaves a pooled connection

  server_->Kill();
  StatusOr<size_t> erased = cache->EraseModel("m");  // on the pooled connection
  ASSERT_FALSE(erased.ok());
  EXPECT_EQ(erased.status().code(), StatusCode::kUnavailable) << erased.status().ToString();
  EXPECT_NE(erased.status().message().find("SCAN"), std::string::npos)
      << erased.status().ToString();
  Status cleared = cache->Clear();  // a new connection, refused
  EXPECT_EQ(cleared.code(), StatusCode::kUnavailable) << cleared.ToString();
  EXPECT_NE(cleared.message().find("connect"), std::string::npos) << cleared.ToString();

  // The third failure in a row opens the circuit: then nothing is tried.
  EXPECT_FALSE(cache->Get(k).ok());
  ASSERT_TRUE(cache->GetStats().circuit_open);
  const uint64_t errors = cache->GetStats().errors;
  erased = cache->EraseModel("m");
  EXPECT_EQ(erased.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(erased.status().message().find("circuit open"), std::string::npos)
      << erased.status().ToString();
  EXPECT_EQ(cache->GetStats().errors, errors);

  // Back (empty): the erase is the circuit's probe, and succeeds.
  ASSERT_TRUE(server_->Start());
  clock_.Advance(o.circuit_open);
  EXPECT_TRUE(Holds(cache->EraseModel("m"), 0u));
  EXPECT_FALSE(cache->GetStats().circuit_open);
  EXPECT_TRUE(cache->Clear().ok());
}

TEST_F(RedisCacheTest, EraseAndClearReturnAnErrorReply) {
  // A user that may SCAN but neither UNLINK nor DEL: the server refuses the
  // deletions (NOPERM), whatever the other replies were.
  RawReply acl =
      Raw(raw_.get(), {"ACL", "SETUSER", "nodel", "on", ">pw", "~*", "+@all", "-unlink", "-del"});
  ASSERT_TRUE(acl && acl->type == REDIS_REPLY_STATUS) << (acl ? acl->str : "no reply");
  auto writer = Make(Opts());
  ASSERT_TRUE(writer);
  const int64_t exp = In(std::chrono::seconds(60));
  for (uint64_t i = 0; i < 3; ++i) writer->Put(Key("m", i), Entry(Key("m", i), exp));
  writer->Flush();

  RedisCache::Options o = Opts();
  o.url = "redis://nodel:pw@127.0.0.1:" + std::to_string(server_->port());
  auto cache = Make(o);
  ASSERT_TRUE(cache);
  StatusOr<size_t> erased = cache->EraseModel("m");
  ASSERT_FALSE(erased.ok());
  EXPECT_EQ(erased.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(erased.status().message().find("DEL: NOPERM"), std::string::npos)
      << erased.status().ToString();
  Status cleared = cache->Clear();
  EXPECT_NE(cleared.message().find("DEL: NOPERM"), std::string::npos) << cleared.ToString();
  for (uint64_t i = 0; i < 3; ++i) EXPECT_TRUE(writer->Get(Key("m", i)).ok()) << i;
  // The same user's erase of a model without keys issues no deletion.
  EXPECT_TRUE(Holds(cache->EraseModel("none"), 0u));
}

TEST_F(RedisCacheTest, FullQueueDropsWrites) {
  RedisCache::Options o = Opts();
  o.write_queue_size = 2;
  auto cache = Make(o);
  ASSERT_TRUE(cache);
  cache->PauseWriterForTesting(true);
  for (uint64_t i = 0; i < 3; ++i) {
    cache->Put(Key("m", i), Entry(Key("m", i), In(std::chrono::seconds(60))));
  }
  cache->PauseWriterForTesting(false);
  cache->Flush();
  RedisCache::Stats s = cache->GetStats();
  EXPECT_EQ(s.writes, 2u);
  EXPECT_EQ(s.dropped_writes, 1u);
}

TEST_F(RedisCacheTest, KilledServerOpensTheCircuitAndRecoversAfterRestart) {
  RedisCache::Options o = Opts();
  o.failures_to_open = 3;
  o.circuit_open = milliseconds(1000);
  auto cache = Make(o);
  ASSERT_TRUE(cache);
  CacheKey k = Key("m", 1);
  cache->Put(k, Entry(k, In(std::chrono::seconds(600))));
  cache->Flush();
  ASSERT_TRUE(cache->Get(k).ok());  // leaves a pooled connection

  server_->Kill();
  for (int i = 0; i < 3; ++i) {
    auto start = steady_clock::now();
    auto got = cache->Get(k);
    EXPECT_EQ(got.status().code(), StatusCode::kUnavailable) << got.status().ToString();
    EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(2));
  }
  RedisCache::Stats s = cache->GetStats();
  EXPECT_TRUE(s.circuit_open);
  EXPECT_EQ(s.circuit_opens, 1u);
  EXPECT_EQ(s.errors, 3u);

  // Open: no network call, Puts dropped.
  EXPECT_EQ(cache->Get(k).status().code(), StatusCode::kUnavailable);
  cache->Put(k, Entry(k, In(std::chrono::seconds(600))));
  s = cache->GetStats();
  EXPECT_EQ(s.errors, 3u);
  EXPECT_EQ(s.skipped, 1u);
  EXPECT_EQ(s.dropped_writes, 1u);

  // Half-open while the server is still down: the probe fails, it reopens.
  clock_.Advance(milliseconds(1000));
  EXPECT_EQ(cache->Get(k).status().code(), StatusCode::kUnavailable);
  s = cache->GetStats();
  EXPECT_EQ(s.errors, 4u);
  EXPECT_EQ(s.circuit_opens, 2u);
  EXPECT_EQ(cache->Get(k).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(cache->GetStats().skipped, 2u);

  // Restarted server (empty): skipped until circuit_open passes, then the
  // probe succeeds and the tier is back.
  ASSERT_TRUE(server_->Start());
  EXPECT_EQ(cache->Get(k).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(cache->GetStats().skipped, 3u);
  clock_.Advance(milliseconds(1000));
  EXPECT_EQ(cache->Get(k).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(cache->GetStats().circuit_open);
  cache->Put(k, Entry(k, In(std::chrono::seconds(600)), "again"));
  cache->Flush();
  auto got = cache->Get(k);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ((*got)->payload, "again");
}

TEST_F(RedisCacheTest, HungServerTimesOutAndOpensTheCircuit) {
  RedisCache::Options o = Opts();
  o.op_timeout = milliseconds(50);
  o.connect_timeout = milliseconds(50);
  auto cache = Make(o);
  ASSERT_TRUE(cache);
  CacheKey k = Key("m", 1);
  EXPECT_EQ(cache->Get(k).status().code(), StatusCode::kNotFound);

  server_->Pause();  // accepts TCP connections (backlog), never answers
  for (int i = 0; i < 3; ++i) {
    auto start = steady_clock::now();
    auto got = cache->Get(k);
    EXPECT_EQ(got.status().code(), StatusCode::kDeadlineExceeded) << got.status().ToString();
    EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(1));
  }
  RedisCache::Stats s = cache->GetStats();
  EXPECT_EQ(s.timeouts, 3u);
  EXPECT_TRUE(s.circuit_open);
  cache->Put(k, Entry(k, In(std::chrono::seconds(60))));
  EXPECT_EQ(cache->GetStats().dropped_writes, 1u);
  server_->Resume();

  clock_.Advance(o.circuit_open);
  EXPECT_EQ(cache->Get(k).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(cache->GetStats().circuit_open);
}

TEST_F(RedisCacheTest, ConcurrentGetsAndPuts) {
  RedisCache::Options o = Opts();
  o.pool_size = 2;
  auto cache = Make(o);
  ASSERT_TRUE(cache);
  const int64_t exp = In(std::chrono::seconds(60));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < 100; ++i) {
        CacheKey k = Key("m", (i * 4 + static_cast<uint64_t>(t)) % 50);
        cache->Put(k, Entry(k, exp));
        auto got = cache->Get(k);
        EXPECT_TRUE(got.ok() || got.status().code() == StatusCode::kNotFound)
            << got.status().ToString();
      }
    });
  }
  for (auto& th : threads) th.join();
  cache->Flush();
  for (uint64_t i = 0; i < 50; ++i) EXPECT_TRUE(cache->Get(Key("m", i)).ok()) << i;
  RedisCache::Stats s = cache->GetStats();
  EXPECT_EQ(s.errors, 0u);
  EXPECT_EQ(s.hits + s.misses, 450u);
}

}  // namespace
}  // namespace inferd
