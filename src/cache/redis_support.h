#pragma once
// Self-contained pieces of RedisCache (cache/redis_cache.h): the
// cache.redis.url parser, hiredis command helpers, the zstd codec of the
// stored values, the circuit breaker and two small process/protocol helpers.

#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "cache/cache_entry.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"

struct redisContext;
struct redisReader;
struct redisReply;

namespace inferd {

// A parsed cache.redis.url.
struct RedisEndpoint {
  std::string host;
  int port = 6379;
  int db = 0;
  std::string user, password;
};

// Parses redis://[[user]:password@]host[:port][/db] (host may be [IPv6]);
// InvalidArgument, naming `setting` (the setting the URL came from), on a
// malformed URL.
StatusOr<RedisEndpoint> ParseRedisUrl(std::string_view url,
                                      std::string_view setting = "cache.redis.url");

// Frees a hiredis reply.
struct RedisReplyDeleter {
  void operator()(redisReply* r) const;
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyDeleter>;

// Runs one command; *saved_errno receives errno right after it (hiredis
// reports a socket timeout as REDIS_ERR_IO with errno EAGAIN).
RedisReply RedisCommand(redisContext* c, std::initializer_list<std::string_view> args,
                        int* saved_errno);

// Deletes `keys` (an array reply) with *del_cmd (UNLINK; switched to DEL for
// the rest of the scan when UNLINK fails); returns the reply, null on an I/O
// error.
RedisReply RedisDeleteKeys(redisContext* c, const redisReply& keys, std::string_view* del_cmd,
                           int* saved_errno);

// True when the failure of a command on `c` (errno `saved_errno` right after
// it) was a timeout rather than another error.
bool IsRedisTimeout(const redisContext* c, int saved_errno);

// `ms` as a timeval, for hiredis' timeouts.
timeval ToTimeval(std::chrono::milliseconds ms);

// zstd-compresses `raw` at `level` with this thread's context. Empty on
// failure (a serialized entry is never empty).
std::string ZstdCompress(std::string_view raw, int level);

// Inflates one zstd frame with this thread's context; InvalidArgument when
// `value` is not a frame of known size up to 256 MiB, or is corrupt.
StatusOr<std::string> ZstdDecompress(std::string_view value);

// A value read back from Redis: a zstd frame holding a serialized
// CacheEntry. InvalidArgument on anything else.
StatusOr<std::shared_ptr<const CacheEntry>> DecodeRedisValue(std::string_view value);

// A SCAN reply: [cursor string, [key strings...]]. Sets *cursor and *keys
// (the array reply inside `reply`); false for any other shape, including
// keys that are not strings.
bool ParseScanReply(const redisReply& reply, std::string* cursor, const redisReply** keys);

// The most elements a reply array may announce (SCAN replies hold about
// COUNT = 1000 keys); a larger one is a reader error.
inline constexpr int kRedisMaxReplyElements = 1 << 20;

// Makes `reader` build replies as hiredis does, but refuse an array that
// announces more than kRedisMaxReplyElements elements: hiredis 0.14
// allocates the announced array before any element arrives (up to 16 GiB for
// "*2147483647"). Replies stay compatible with freeReplyObject.
void BoundRedisReplies(redisReader* reader);

// Escapes the glob characters of SCAN MATCH.
std::string GlobEscape(std::string_view s);

// Sets SIGPIPE to SIG_IGN if it is still at its default (once per process).
void IgnoreSigpipeIfDefault();

// The circuit breaker of RedisCache, timed with a Clock: after
// failures_to_open consecutive errors or timeouts it opens for open_for;
// then one call is let through as a probe (half-open), whose success closes
// it and whose failure opens it again. Every method is thread-safe.
class CircuitBreaker {
 public:
  // Result of one exchange with Redis, for the circuit and the counters.
  enum class Outcome { kOk, kError, kTimeout, kNeutral };

  // `name` ("host:port") identifies the server in the log lines.
  CircuitBreaker(Clock* clock, std::chrono::milliseconds open_for, int failures_to_open,
                 std::string name);
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // True when a call may use the network (the caller is then the probe if
  // the circuit was half-open); every admitted call reports exactly one
  // Outcome.
  bool Admit() EXCLUDES(mu_);
  void Report(Outcome outcome) EXCLUDES(mu_);
  // Open, and not yet due for a probe.
  bool IsOpen() EXCLUDES(mu_);
  // Open or half-open.
  bool NotClosed() EXCLUDES(mu_);
  // Times the circuit opened.
  uint64_t opens() const { return opens_.load(std::memory_order_relaxed); }

 private:
  enum class State { kClosed, kOpen, kHalfOpen };

  Clock* const clock_;
  const std::chrono::milliseconds open_for_;
  const int failures_to_open_;
  const std::string name_;

  Mutex mu_;
  State state_ GUARDED_BY(mu_) = State::kClosed;
  int consecutive_failures_ GUARDED_BY(mu_) = 0;
  Time open_until_ GUARDED_BY(mu_);
  bool probe_in_flight_ GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> opens_{0};
};

}  // namespace inferd
