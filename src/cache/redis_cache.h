#pragma once
// RedisCache: the optional L3 response cache, shared by every inferd process
// that points at the same Redis (cache.redis.url), through hiredis.
//
// Purpose: let several servers reuse each other's responses, without ever
// making a request slower or failing it when Redis is slow or down.
//
// Storage:
//   - Key = key_prefix + model + ':' + 32 hex digits of the digest. Value =
//     zstd(CacheEntry::Serialize()), which carries its own checksum. A value
//     that fails to decompress or deserialize is a miss counted in `errors`;
//     an entry whose check or model differs from the key's, or that is past
//     expires_us (Options::clock->WallMicros()), is a plain miss.
//   - TTL: SET ... PX (expires_us - now) in ms; an entry without expires_us
//     gets ttl_s_default. Already expired entries are not written.
//
// Network: a pool of at most pool_size blocking connections, opened lazily
// (Create does not need Redis to be up) with connect_timeout, and every
// socket read/write bounded by op_timeout (SO_RCVTIMEO/SO_SNDTIMEO). A
// connection that saw an I/O error is closed, and so are the idle ones (they
// likely share its fate), so the next call reconnects. When all pool_size
// connections are lent out, a caller waits up to op_timeout for one, then
// gives up (counted in `timeouts`, not held against the circuit). These
// waits are real time: they bound real sockets. Host names are resolved by
// the system resolver at connect time (prefer an IP in the URL).
// Create() sets SIGPIPE to SIG_IGN if it is at its default (hiredis 0.14
// writes with write(2); a server that went away must not kill the process).
//
// Circuit breaker (timed with Options::clock): after failures_to_open
// consecutive errors or timeouts, the tier is skipped for circuit_open: Get
// returns Unavailable at once without touching the network, Put drops.
// Then one call is let through as a probe (half-open); its success closes
// the circuit, its failure opens it again for another circuit_open.
//
// Writes: Put never blocks. It appends to a bounded WriteBehindQueue
// drained by one writer thread, which pipelines batches of SETs on one
// connection; a full queue or an open circuit drops the write (counted in
// `dropped_writes`, as are queued writes lost to a failed batch). EraseModel
// and Clear also drop matching queued writes and are ordered against the
// writer (WriteBehindQueue::DropIf), so no write queued before them survives
// them. They return the status of the commands they issued themselves (SCAN,
// UNLINK or DEL), or Unavailable when the open circuit let them issue none;
// a concurrent Get's failure never changes their result.
//
// Counting: every Get adds exactly one of `hits` or `misses` (errors,
// timeouts and circuit skips are misses too); `errors`, `timeouts` and
// `skipped` are counted in addition. Counters are relaxed atomics.
//
// Threading: every method is safe from any thread; errors never throw.
// Lock order: the write queue's writer lock (held by batch writes,
// EraseModel, Clear) before pool_mu_.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_entry.h"
#include "cache/redis_support.h"
#include "cache/write_behind.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "common/status.h"

struct redisContext;

namespace inferd {

class RedisCache {
 public:
  struct Options {
    // redis://[[user]:password@]host[:port][/db]; port defaults to 6379,
    // db to 0.
    std::string url;
    // Prepended to every key; lets several deployments share one Redis.
    std::string key_prefix = "inferd:";
    // Most connections open at once (Gets, the writer, EraseModel); >= 1.
    int pool_size = 4;
    // TCP connect bound; > 0.
    std::chrono::milliseconds connect_timeout{50};
    // Bound of each socket read or write of a command; > 0.
    std::chrono::milliseconds op_timeout{5};
    // TTL of entries whose expires_us is 0; >= 1.
    int64_t ttl_s_default = 3600;
    // How long the tier is skipped once the circuit opens; >= 0.
    std::chrono::milliseconds circuit_open{1000};
    // Consecutive errors or timeouts that open the circuit; >= 1.
    int failures_to_open = 3;
    // Puts waiting for the writer; beyond it writes are dropped; >= 1.
    size_t write_queue_size = 1024;
    // zstd level of the values, 1..19.
    int zstd_level = 1;
    // Times the circuit and TTLs; nullptr means Clock::System().
    Clock* clock = nullptr;
  };

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;          // every Get that is not a hit
    uint64_t errors = 0;          // I/O and protocol errors, corrupt values, failed writes
    uint64_t timeouts = 0;        // connect/op timeouts, no free connection
    uint64_t writes = 0;          // entries SET in Redis
    uint64_t dropped_writes = 0;  // queue full, circuit open, failed batch
    uint64_t circuit_opens = 0;   // times the circuit opened
    uint64_t skipped = 0;         // Gets answered Unavailable by the open circuit
    bool circuit_open = false;    // open or half-open now
  };

  // Fails (InvalidArgument) on a malformed URL or out-of-range option; does
  // not connect.
  static StatusOr<std::unique_ptr<RedisCache>> Create(const Options& options);
  // Drains the write queue (bounded by the timeouts and the circuit), joins
  // the writer, closes the connections.
  ~RedisCache();
  RedisCache(const RedisCache&) = delete;
  RedisCache& operator=(const RedisCache&) = delete;

  // Blocking, bounded by connect_timeout + op_timeout. NotFound on a miss;
  // Unavailable while the circuit is open or on an error; DeadlineExceeded
  // on a timeout.
  StatusOr<std::shared_ptr<const CacheEntry>> Get(const CacheKey& key);
  // Never blocks: queues the write, or drops it.
  void Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry);
  // Deletes every entry of `model` (SCAN + UNLINK, queued writes too);
  // returns how many. Blocking, each command bounded as Get's. Unavailable
  // while the circuit is open (nothing tried), on an I/O or error reply;
  // DeadlineExceeded on a timeout. On a failure some keys may be left.
  StatusOr<size_t> EraseModel(std::string_view model);
  // Deletes every key under key_prefix (and the queued writes); results as
  // for EraseModel.
  Status Clear();
  // Waits until every Put queued before the call is written or dropped.
  void Flush();

  Stats GetStats();

  // The Redis key of `key`.
  std::string RedisKey(const CacheKey& key) const;

  // Test hook: while paused the writer takes nothing from the queue, so a
  // test can fill it deterministically. The destructor still drains it.
  void PauseWriterForTesting(bool paused);

 private:
  using Endpoint = RedisEndpoint;
  using Outcome = CircuitBreaker::Outcome;
  struct ContextDeleter {
    void operator()(redisContext* c) const;
  };
  using Conn = std::unique_ptr<redisContext, ContextDeleter>;

  RedisCache(const Options& options, Endpoint endpoint, Clock* clock);

  // Connection pool. Acquire fills *outcome on failure (kNeutral when no
  // connection was free, else the connect outcome).
  Conn Acquire(Outcome* outcome, Status* status) EXCLUDES(pool_mu_);
  void Release(Conn conn, bool healthy) EXCLUDES(pool_mu_);
  StatusOr<Conn> Connect(Outcome* outcome);
  // Classifies a failed command on `c` (null reply); counts it.
  Status Failure(redisContext* c, int saved_errno, std::string_view what, Outcome* outcome);

  StatusOr<std::shared_ptr<const CacheEntry>> Decode(const CacheKey& key, std::string_view value);
  // The write queue's batch writer (runs on its writer thread).
  void WriteBatch(const std::vector<PendingWrite>& batch);
  // Pipelines a SET ... PX for each unexpired entry of `batch` on `c`;
  // returns how many were appended.
  size_t AppendSets(redisContext* c, const std::vector<PendingWrite>& batch);
  // Deletes the keys matching `pattern` (a SCAN MATCH glob); returns how
  // many, or the first failure. Run by the write queue's DropIf, ordered
  // against batch writes.
  StatusOr<size_t> DeleteMatching(const std::string& pattern);

  const Options options_;
  const Endpoint endpoint_;
  Clock* const clock_;

  Mutex pool_mu_;
  CondVar pool_cv_;
  std::vector<Conn> idle_ GUARDED_BY(pool_mu_);
  int open_ GUARDED_BY(pool_mu_) = 0;  // idle + lent out + connecting

  // Every call that is admitted reports exactly one Outcome to it.
  CircuitBreaker circuit_;

  RateLimitedLog error_log_;
  // dropped_writes_: circuit open, failed batches; the queue counts its own.
  std::atomic<uint64_t> hits_{0}, misses_{0}, errors_{0}, timeouts_{0}, writes_{0},
      dropped_writes_{0}, skipped_{0};

  // Set by Create once the object is built (its batch writer uses `this`);
  // shut down first by the destructor.
  std::unique_ptr<WriteBehindQueue> queue_;
};

}  // namespace inferd
