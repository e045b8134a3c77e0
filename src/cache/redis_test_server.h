#pragma once
// A real redis-server for the Redis tier's unit tests: started by a test on
// a free loopback port, killed with the object; plus a raw hiredis client to
// look at (or tamper with) what the tier stored.

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
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache_entry.h"
#include "cache/redis_cache.h"
#include "common/clock.h"

namespace inferd::redis_test {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// The path of redis-server (PATH, then /usr/bin, /usr/local/bin), or "".
inline std::string FindRedisServer() {
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
inline int PickFreePort() {
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

inline RawConn RawConnect(int port) {
  RawConn c(redisConnectWithTimeout("127.0.0.1", port, timeval{1, 0}));
  if (c && c->err == 0) redisSetTimeout(c.get(), timeval{2, 0});
  return c;
}

inline RawReply Raw(redisContext* c, std::vector<std::string> args) {
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

// A key of `model`, distinct per `n`.
inline CacheKey Key(const std::string& model, uint64_t n) {
  CacheKey k;
  k.digest = {n, n * 31 + 7};
  k.check = "Creq-" + std::to_string(n);
  k.model = model;
  return k;
}

// An entry stored under `k`.
inline std::shared_ptr<const CacheEntry> Entry(const CacheKey& k, int64_t expires_us,
                                               std::string payload = "response bytes") {
  auto e = std::make_shared<CacheEntry>();
  e->check = k.check;
  e->model = k.model;
  e->created_us = 1;
  e->expires_us = expires_us;
  e->payload = std::move(payload);
  return e;
}

// Starts a redis-server for each test (skips the test when there is none)
// and opens a raw connection to it.
class RedisFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string binary = FindRedisServer();
    if (binary.empty()) GTEST_SKIP() << "redis-server is not installed; Redis tier not tested";
    server_ = std::make_unique<RedisServer>(binary, PickFreePort());
    ASSERT_TRUE(server_->Start()) << "redis-server did not answer PING on " << server_->port();
    raw_ = RawConnect(server_->port());
    ASSERT_TRUE(raw_ && raw_->err == 0);
  }

  // Options for the server of this test, timed by clock_.
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

}  // namespace inferd::redis_test
