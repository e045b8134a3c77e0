// Tests of the L3 Redis tier against a real redis-server, started by each
// test on an ephemeral port and torn down after it.

#include "cache/redis_cache.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace inferd {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string FindRedisServer() {
  const char* path = std::getenv("PATH");
  std::string dirs = std::string(path != nullptr ? path : "") + ":/usr/bin:/usr/local/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/redis-server";
    if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// A port that was free a moment ago (bound to port 0, then closed).
int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using RawConn = std::unique_ptr<redisContext, ContextFree>;
struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RawReply = std::unique_ptr<redisReply, ReplyFree>;

RawConn RawConnect(int port) {
  RawConn c(redisConnectWithTimeout("127.0.0.1", port, timeval{1, 0}));
  if (c && c->err == 0) redisSetTimeout(c.get(), timeval{2, 0});
  return c;
}

RawReply Raw(redisContext* c, std::vector<std::string> args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return RawReply(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
}

// One redis-server child process on a fixed port.
class RedisServer {
 public:
  RedisServer(std::string binary, int port) : binary_(std::move(binary)), port_(port) {}
  ~RedisServer() { Kill(); }

  // Starts the server and waits (bounded) until it answers PING.
  bool Start() {
    std::string port = std::to_string(port_);
    std::vector<std::string> args = {binary_,     "--port",       port,  "--save",
                                     "",          "--appendonly", "no",  "--bind",
                                     "127.0.0.1", "--dir",        "/tmp"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {  // child: async-signal-safe calls only
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int devnull = open("/dev/null", O_RDWR);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (RawConn c = RawConnect(port_); c && c->err == 0) {
        RawReply r = Raw(c.get(), {"PING"});
        if (r && r->type == REDIS_REPLY_STATUS) return true;
      }
      std::this_thread::sleep_for(milliseconds(5));  // polling, bounded by the deadline
    }
    return false;
  }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void Pause() { kill(pid_, SIGSTOP); }
  void Resume() { kill(pid_, SIGCONT); }
  int port() const { return port_; }

 private:
  std::string binary_;
  int port_;
  pid_t pid_ = -1;
};

CacheKey Key(const std::string& model, uint64_t n) {
  CacheKey k;
  k.digest = {n, n * 31 + 7};
  k.check = "Creq-" + std::to_string(n);
  k.model = model;
  return k;
}

std::shared_ptr<const CacheEntry> Entry(const CacheKey& k, int64_t expires_us,
                                        std::string payload = "response bytes") {
  auto e = std::make_shared<CacheEntry>();
  e->check = k.check;
  e->model = k.model;
  e->created_us = 1;
  e->expires_us = expires_us;
  e->payload = std::move(payload);
  return e;
}

class RedisCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string binary = FindRedisServer();
    if (binary.empty()) GTEST_SKIP() << "redis-server is not installed; Redis tier not tested";
    server_ = std::make_unique<RedisServer>(binary, PickFreePort());
    ASSERT_TRUE(server_->Start()) << "redis-server did not answer PING on " << server_->port();
    raw_ = RawConnect(server_->port());
    ASSERT_TRUE(raw_ && raw_->err == 0);
  }

  RedisCache::Options Opts() {
    RedisCache::Options o;
    o.url = "redis://127.0.0.1:" + std::to_string(server_->port());
    o.clock = &clock_;
    // Generous on a loaded test machine; the timeout tests shorten them.
    o.connect_timeout = milliseconds(1000);
    o.op_timeout = milliseconds(1000);
    return o;
  }
  std::unique_ptr<RedisCache> Make(const RedisCache::Options& o) {
    auto c = RedisCache::Create(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  int64_t In(std::chrono::seconds s) { return clock_.WallMicros() + s.count() * 1'000'000; }

  FakeClock clock_;
  std::unique_ptr<RedisServer> server_;
  RawConn raw_;
};

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

  EXPECT_EQ(cache->EraseModel("m1"), 3u);
  for (uint64_t i = 0; i < 3; ++i) EXPECT_FALSE(cache->Get(Key("m1", i)).ok());
  for (uint64_t i = 0; i < 2; ++i) EXPECT_TRUE(cache->Get(Key("m1:x", i)).ok()) << i;
  for (uint64_t i = 0; i < 2; ++i) EXPECT_TRUE(cache->Get(Key("m2", i)).ok()) << i;

  // A write still queued is erased with the model's stored entries.
  cache->PauseWriterForTesting(true);
  cache->Put(Key("m2", 9), Entry(Key("m2", 9), exp));
  EXPECT_EQ(cache->EraseModel("m2"), 3u);
  cache->PauseWriterForTesting(false);
  cache->Flush();
  EXPECT_FALSE(cache->Get(Key("m2", 9)).ok());

  cache->Clear();
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
  EXPECT_EQ(cache->EraseModel("big"), 2500u);
  RawReply n = Raw(raw_.get(), {"DBSIZE"});
  ASSERT_TRUE(n && n->type == REDIS_REPLY_INTEGER);
  EXPECT_EQ(n->integer, 0);
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
