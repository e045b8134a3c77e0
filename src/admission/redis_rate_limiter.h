#pragma once
// RedisRateLimiter: GCRA limits shared by every inferd process that points
// at the same Redis (rate_limits.redis_url), for Admission's global mode
// (docs/design-admission.md section 4).
//
// One decision covers the one or two limits of a request (the tenant's and
// the tenant's for a model) and is all or nothing: one Lua script takes
// every key or none, atomically, on Redis's own clock (TIME), so every
// process shares one clock and one state. The script keeps one TAT per key
// in microseconds; a key expires once its bucket is full again.
//
// Threading and timing: Decide never blocks. It queues the decision for
// the limiter's one Redis thread, which takes up to max_pipeline queued
// decisions at a time, pipelines one EVALSHA per decision on its one
// blocking hiredis connection (every socket read and write bounded by
// `timeout`) and reads the replies in order. SCRIPT LOAD runs on connect and
// again after a NOSCRIPT reply (SCRIPT FLUSH, a restarted Redis), and the
// refused decisions are sent once more. Whatever cannot be decided by Redis
// is answered with a Fallback instead, and the caller decides locally:
//   kQueueFull    max_pending decisions are waiting already (at once);
//   kCircuitOpen  the circuit breaker is open (at once, no network);
//   kTimeout      the decision waited `timeout` in the queue (unsent), or a
//                 socket read or write timed out;
//   kError        connect, I/O or protocol error, an error reply, shutdown.
// An I/O error or timeout answers the rest of its batch, closes the
// connection (the next batch reconnects) and counts against the circuit:
// after failures_to_open consecutive failed batches it opens for
// circuit_open, then one batch probes. So every decision is answered within
// about 2 x timeout (its wait in the queue, then its exchange).
//
// `done` runs exactly once per Decide, never while a lock of the limiter
// is held: on the calling thread for kQueueFull and kCircuitOpen (and after
// Shutdown), else on the Redis thread, which it must not block.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "cache/redis_support.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "common/status.h"

struct redisContext;

namespace inferd {

class RedisRateLimiter {
 public:
  struct Options {
    // redis://[[user]:password@]host[:port][/db]; required.
    std::string url;
    // The setting `url` came from, named in its errors.
    std::string url_setting = "rate_limits.redis_url";
    // Bound of the connect and of each socket read or write, and of a
    // decision's wait in the queue; > 0.
    std::chrono::milliseconds timeout{5};
    // Decisions waiting for the Redis thread; beyond it: kQueueFull; >= 1.
    size_t max_pending = 4096;
    // Decisions sent in one round trip; >= 1.
    int max_pipeline = 256;
    // How long the circuit stays open; >= 0.
    std::chrono::milliseconds circuit_open{1000};
    // Consecutive failed exchanges that open the circuit; >= 1.
    int failures_to_open = 3;
    // Times the queue waits and the circuit; nullptr: Clock::System().
    Clock* clock = nullptr;
  };

  // One limit of a decision. `key` is the full Redis key and must stay
  // valid until the decision's `done` has run.
  struct Limit {
    std::string_view key;
    int64_t interval_us = 0;   // T = 1 s / rate, >= 1
    int64_t tolerance_us = 0;  // burst x T
  };

  enum class Fallback { kNone, kError, kTimeout, kCircuitOpen, kQueueFull };

  struct Result {
    // Redis decided (fallback == kNone): allowed or refused; else false.
    bool allowed = false;
    Fallback fallback = Fallback::kNone;
    int64_t retry_after_us = 0;  // refused: until it would be allowed
    // Per limit (in Decide's order): requests allowed right now after this
    // one, and microseconds until its bucket is full again.
    std::array<std::pair<int64_t, int64_t>, 2> remaining_reset_us{};
  };

  struct Stats {
    uint64_t decided = 0;       // answered by Redis (allowed or refused)
    uint64_t fallbacks = 0;     // answered with a Fallback
    uint64_t script_loads = 0;  // SCRIPT LOADs that succeeded
    uint64_t noscript = 0;      // NOSCRIPT replies (retried)
    uint64_t circuit_opens = 0;
    bool circuit_open = false;  // open or half-open now
  };

  // InvalidArgument (naming options.url_setting) on a malformed URL or an
  // out-of-range option. Starts the Redis thread; connects lazily.
  static StatusOr<std::unique_ptr<RedisRateLimiter>> Create(const Options& options);
  // Shutdown().
  ~RedisRateLimiter();
  RedisRateLimiter(const RedisRateLimiter&) = delete;
  RedisRateLimiter& operator=(const RedisRateLimiter&) = delete;

  // Takes one request from each of limits[0..n) (n is 1 or 2), all or
  // nothing, and calls `done` once with the answer (see above).
  void Decide(const std::array<Limit, 2>& limits, int n, std::function<void(Result)> done)
      EXCLUDES(mu_);

  // Lets the decision in flight finish, answers every queued one kError,
  // joins the Redis thread and closes the connection. Later Decides are
  // answered kError at once. Idempotent.
  void Shutdown() EXCLUDES(mu_);

  Stats GetStats();

  // The Lua script (for tests and docs).
  static std::string_view Script();

 private:
  struct Pending {
    std::array<Limit, 2> limits;
    int n = 0;
    std::function<void(Result)> done;
    Time enqueued;
    Result result;  // filled by the Redis thread, then delivered
  };
  struct ContextDeleter {
    void operator()(redisContext* c) const;
  };
  using Conn = std::unique_ptr<redisContext, ContextDeleter>;
  using Outcome = CircuitBreaker::Outcome;

  RedisRateLimiter(const Options& options, RedisEndpoint endpoint, Clock* clock);

  void Loop() EXCLUDES(mu_);
  // Decides `batch` (the Redis thread; no lock held), reports to the
  // circuit, then answers every entry.
  void RunBatch(std::vector<Pending>& batch);
  // Sends `live` and fills each one's result; returns the exchange's
  // outcome.
  Outcome Exchange(std::vector<Pending*>& live);
  // Opens conn_ (AUTH, SELECT, SCRIPT LOAD); kOk or the failure.
  Outcome Connect();
  // SCRIPT LOAD on conn_; sets sha_.
  Outcome LoadScript();
  // Appends EVALSHA for `p` to conn_'s output buffer.
  void Append(const Pending& p);
  // The outcome of a failed command on conn_ (errno right after it); logs
  // and closes the connection.
  Outcome IoFailure(int saved_errno, std::string_view what);
  // Calls p.done with p.result (the Redis thread, no lock held).
  void Deliver(Pending& p);

  const Options options_;
  const RedisEndpoint endpoint_;
  Clock* const clock_;
  CircuitBreaker circuit_;
  RateLimitedLog error_log_;

  Mutex mu_;
  CondVar cv_;
  std::deque<Pending> queue_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;

  // The Redis thread's own state.
  Conn conn_;
  std::string sha_;

  std::atomic<uint64_t> decided_{0}, fallbacks_{0}, script_loads_{0}, noscript_{0};
  std::once_flag shutdown_once_;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace inferd
