#include "admission/redis_rate_limiter.h"

#include <hiredis/hiredis.h>

#include <cerrno>
#include <cstdio>
#include <exception>

namespace inferd {
namespace {

// GCRA over every key in KEYS, all or nothing, on Redis's clock.
// ARGV[2i-1], ARGV[2i]: T and burst*T of KEYS[i], in microseconds.
// Returns {allowed, retry_after_us, remaining_1, reset_us_1, ...}.
// '%.0f': Lua 5.1's tostring would write 16-digit microseconds as 1.7e+15.
constexpr std::string_view kScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats, retry = {}, 0
for i = 1, #KEYS do
  local T, tol = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  tats[i] = tat
  local wait = tat + T - now - tol
  if wait > retry then retry = wait end
end
local allowed = (retry <= 0) and 1 or 0
local out = {allowed, retry}
for i = 1, #KEYS do
  local T, tol = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])
  local tat = tats[i]
  if allowed == 1 then
    tat = tat + T
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  end
  out[#out+1] = math.max(0, math.floor((tol - (tat - now)) / T))
  out[#out+1] = tat - now
end
return out
)lua";

bool IsNoscript(const redisReply& r) {
  return r.type == REDIS_REPLY_ERROR && std::string_view(r.str, r.len).starts_with("NOSCRIPT");
}

// The script's reply for a decision of `n` limits.
bool ParseResult(const redisReply& r, int n, RedisRateLimiter::Result* out) {
  if (r.type != REDIS_REPLY_ARRAY || r.elements != static_cast<size_t>(2 + 2 * n)) return false;
  for (size_t i = 0; i < r.elements; ++i) {
    if (r.element[i] == nullptr || r.element[i]->type != REDIS_REPLY_INTEGER) return false;
  }
  out->allowed = r.element[0]->integer == 1;
  out->retry_after_us = r.element[1]->integer;
  for (int i = 0; i < n; ++i) {
    out->remaining_reset_us[i] = {r.element[2 + 2 * i]->integer, r.element[3 + 2 * i]->integer};
  }
  return true;
}

RedisRateLimiter::Fallback FallbackOf(CircuitBreaker::Outcome o) {
  return o == CircuitBreaker::Outcome::kTimeout ? RedisRateLimiter::Fallback::kTimeout
                                                : RedisRateLimiter::Fallback::kError;
}

}  // namespace

void RedisRateLimiter::ContextDeleter::operator()(redisContext* c) const { redisFree(c); }

std::string_view RedisRateLimiter::Script() { return kScript; }

StatusOr<std::unique_ptr<RedisRateLimiter>> RedisRateLimiter::Create(const Options& options) {
  INFERD_ASSIGN_OR_RETURN(RedisEndpoint ep, ParseRedisUrl(options.url, options.url_setting));
  if (options.timeout.count() <= 0) return InvalidArgumentError("redis rate limiter: timeout > 0");
  if (options.max_pending < 1 || options.max_pipeline < 1) {
    return InvalidArgumentError("redis rate limiter: max_pending and max_pipeline >= 1");
  }
  if (options.circuit_open.count() < 0 || options.failures_to_open < 1) {
    return InvalidArgumentError("redis rate limiter: circuit_open >= 0 and failures_to_open >= 1");
  }
  IgnoreSigpipeIfDefault();
  Clock* clock = options.clock != nullptr ? options.clock : Clock::System();
  std::unique_ptr<RedisRateLimiter> l(new RedisRateLimiter(options, std::move(ep), clock));
  RedisRateLimiter* raw = l.get();
  l->thread_ = std::thread([raw] { raw->Loop(); });
  return l;
}

RedisRateLimiter::RedisRateLimiter(const Options& options, RedisEndpoint endpoint, Clock* clock)
    : options_(options),
      endpoint_(std::move(endpoint)),
      clock_(clock),
      circuit_(clock, options.circuit_open, options.failures_to_open,
               "rate limits " + endpoint_.host + ":" + std::to_string(endpoint_.port)) {}

RedisRateLimiter::~RedisRateLimiter() { Shutdown(); }

void RedisRateLimiter::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    {
      MutexLock l(&mu_);
      stop_ = true;
    }
    cv_.SignalAll();
    if (thread_.joinable()) thread_.join();
  });
}

void RedisRateLimiter::Decide(const std::array<Limit, 2>& limits, int n,
                              std::function<void(Result)> done) {
  Fallback f = Fallback::kNone;
  if (n < 1 || n > static_cast<int>(limits.size())) {
    f = Fallback::kError;  // a caller's bug; never sent
  } else if (circuit_.IsOpen()) {
    f = Fallback::kCircuitOpen;
  } else {
    const Time now = clock_->Now();
    MutexLock l(&mu_);
    if (stop_) {
      f = Fallback::kError;
    } else if (queue_.size() >= options_.max_pending) {
      f = Fallback::kQueueFull;
    } else {
      queue_.push_back(Pending{limits, n, std::move(done), now, Result()});
    }
  }
  if (f == Fallback::kNone) {
    cv_.Signal();
    return;
  }
  fallbacks_.fetch_add(1, std::memory_order_relaxed);
  Result r;
  r.fallback = f;
  done(r);  // on the caller's stack, no lock held
}

RedisRateLimiter::Stats RedisRateLimiter::GetStats() {
  Stats s;
  s.decided = decided_.load(std::memory_order_relaxed);
  s.fallbacks = fallbacks_.load(std::memory_order_relaxed);
  s.script_loads = script_loads_.load(std::memory_order_relaxed);
  s.noscript = noscript_.load(std::memory_order_relaxed);
  s.circuit_opens = circuit_.opens();
  s.circuit_open = circuit_.NotClosed();
  return s;
}

// ---- the Redis thread ----

void RedisRateLimiter::Loop() {
  std::vector<Pending> batch;
  for (;;) {
    bool stopping = false;
    {
      MutexLock l(&mu_);
      while (queue_.empty() && !stop_) cv_.Wait(&mu_);
      stopping = stop_;
      size_t take = queue_.size();
      if (!stopping) take = std::min(take, static_cast<size_t>(options_.max_pipeline));
      for (size_t i = 0; i < take; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (stopping) {
      for (Pending& p : batch) {
        p.result.fallback = Fallback::kError;
        Deliver(p);
      }
      break;
    }
    RunBatch(batch);
    batch.clear();
  }
  conn_.reset();
}

void RedisRateLimiter::RunBatch(std::vector<Pending>& batch) {
  const Time now = clock_->Now();
  std::vector<Pending*> live;
  live.reserve(batch.size());
  for (Pending& p : batch) {
    if (now - p.enqueued > options_.timeout) {
      p.result.fallback = Fallback::kTimeout;  // too late to be worth sending
    } else {
      live.push_back(&p);
    }
  }
  if (!live.empty()) {
    if (circuit_.Admit()) {
      // Reported before any answer goes out, so that a caller that decides
      // again at once sees the circuit as this exchange left it.
      circuit_.Report(Exchange(live));
    } else {
      for (Pending* p : live) p->result.fallback = Fallback::kCircuitOpen;
    }
  }
  for (Pending& p : batch) Deliver(p);
}

RedisRateLimiter::Outcome RedisRateLimiter::Exchange(std::vector<Pending*>& live) {
  if (!conn_) {
    if (Outcome o = Connect(); o != Outcome::kOk) {
      for (Pending* p : live) p->result.fallback = FallbackOf(o);
      return o;
    }
  }
  // Reads the replies of `sent`, in order, into their results; collects
  // NOSCRIPT refusals in *retry (when given; else they are errors). On an
  // I/O failure the rest of `sent` and *retry fall back.
  bool error_reply = false;
  auto read = [&](const std::vector<Pending*>& sent, std::vector<Pending*>* retry) -> Outcome {
    for (size_t i = 0; i < sent.size(); ++i) {
      void* raw = nullptr;
      errno = 0;
      int rc = redisGetReply(conn_.get(), &raw);
      int saved = errno;
      RedisReply reply(static_cast<redisReply*>(raw));
      if (rc != REDIS_OK || !reply) {
        Outcome o = IoFailure(saved, "EVALSHA");
        for (size_t j = i; j < sent.size(); ++j) sent[j]->result.fallback = FallbackOf(o);
        if (retry != nullptr) {
          for (Pending* p : *retry) p->result.fallback = FallbackOf(o);
        }
        return o;
      }
      if (retry != nullptr && IsNoscript(*reply)) {
        retry->push_back(sent[i]);
        continue;
      }
      if (ParseResult(*reply, sent[i]->n, &sent[i]->result)) continue;
      error_reply = true;
      int64_t suppressed = 0;
      if (error_log_.ShouldLog(&suppressed)) {
        INFERD_LOG_WARN("redis {}:{}: rate limit script: unexpected reply '{}' ({} suppressed)",
                        endpoint_.host, endpoint_.port,
                        reply->type == REDIS_REPLY_ERROR ? std::string(reply->str, reply->len)
                                                         : "type " + std::to_string(reply->type),
                        suppressed);
      }
      sent[i]->result = Result();
      sent[i]->result.fallback = Fallback::kError;
    }
    return Outcome::kOk;
  };
  for (Pending* p : live) Append(*p);
  std::vector<Pending*> retry;
  if (Outcome o = read(live, &retry); o != Outcome::kOk) return o;
  if (!retry.empty()) {
    // The script is gone (SCRIPT FLUSH, a restarted Redis): load it again
    // and send those once more.
    noscript_.fetch_add(retry.size(), std::memory_order_relaxed);
    if (Outcome o = LoadScript(); o != Outcome::kOk) {
      for (Pending* p : retry) p->result.fallback = FallbackOf(o);
      return o;
    }
    for (Pending* p : retry) Append(*p);
    if (Outcome o = read(retry, nullptr); o != Outcome::kOk) return o;
  }
  return error_reply ? Outcome::kError : Outcome::kOk;
}

void RedisRateLimiter::Append(const Pending& p) {
  // EVALSHA sha numkeys key... (T tol)...; at most 2 keys.
  char numbers[5][24];
  const char* argv[9];
  size_t lens[9];
  int argc = 0;
  auto add = [&](std::string_view s) {
    argv[argc] = s.data();
    lens[argc] = s.size();
    ++argc;
  };
  int used = 0;
  auto number = [&](int64_t v) {
    int len =
        std::snprintf(numbers[used], sizeof(numbers[used]), "%lld", static_cast<long long>(v));
    add(std::string_view(numbers[used++], static_cast<size_t>(len)));
  };
  add("EVALSHA");
  add(sha_);
  number(p.n);
  for (int i = 0; i < p.n; ++i) add(p.limits[i].key);
  for (int i = 0; i < p.n; ++i) {
    number(p.limits[i].interval_us);
    number(p.limits[i].tolerance_us);
  }
  // Copies the arguments into the context's output buffer; the write
  // happens in the first redisGetReply.
  redisAppendCommandArgv(conn_.get(), argc, argv, lens);
}

RedisRateLimiter::Outcome RedisRateLimiter::Connect() {
  errno = 0;
  conn_.reset(
      redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, ToTimeval(options_.timeout)));
  int saved = errno;
  if (!conn_) return Outcome::kError;
  if (conn_->err != 0) return IoFailure(saved, "connect");
  BoundRedisReplies(conn_->reader);
  if (redisSetTimeout(conn_.get(), ToTimeval(options_.timeout)) != REDIS_OK) {
    return IoFailure(errno, "set timeout");
  }
  auto setup = [&](std::initializer_list<std::string_view> cmd, std::string_view what) {
    RedisReply r = RedisCommand(conn_.get(), cmd, &saved);
    if (!r) return IoFailure(saved, what);
    if (r->type == REDIS_REPLY_ERROR) {
      INFERD_LOG_WARN("redis {}:{}: {}: {}", endpoint_.host, endpoint_.port, what,
                      std::string(r->str, r->len));
      conn_.reset();
      return Outcome::kError;
    }
    return Outcome::kOk;
  };
  if (!endpoint_.password.empty()) {
    Outcome o = endpoint_.user.empty()
                    ? setup({"AUTH", endpoint_.password}, "AUTH")
                    : setup({"AUTH", endpoint_.user, endpoint_.password}, "AUTH");
    if (o != Outcome::kOk) return o;
  }
  if (endpoint_.db != 0) {
    std::string db = std::to_string(endpoint_.db);
    if (Outcome o = setup({"SELECT", db}, "SELECT"); o != Outcome::kOk) return o;
  }
  return LoadScript();
}

RedisRateLimiter::Outcome RedisRateLimiter::LoadScript() {
  int saved = 0;
  RedisReply r = RedisCommand(conn_.get(), {"SCRIPT", "LOAD", kScript}, &saved);
  if (!r) return IoFailure(saved, "SCRIPT LOAD");
  if (r->type != REDIS_REPLY_STRING) {
    INFERD_LOG_WARN("redis {}:{}: SCRIPT LOAD: {}", endpoint_.host, endpoint_.port,
                    r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len) : "bad reply");
    conn_.reset();
    return Outcome::kError;
  }
  sha_.assign(r->str, r->len);
  script_loads_.fetch_add(1, std::memory_order_relaxed);
  return Outcome::kOk;
}

RedisRateLimiter::Outcome RedisRateLimiter::IoFailure(int saved_errno, std::string_view what) {
  const bool timeout = IsRedisTimeout(conn_.get(), saved_errno);
  int64_t suppressed = 0;
  if (error_log_.ShouldLog(&suppressed)) {
    INFERD_LOG_WARN(
        "redis {}:{}: rate limits: {}: {}; deciding locally meanwhile ({} similar suppressed)",
        endpoint_.host, endpoint_.port, what, conn_->errstr, suppressed);
  }
  conn_.reset();  // a hiredis context is unusable after an error
  return timeout ? Outcome::kTimeout : Outcome::kError;
}

void RedisRateLimiter::Deliver(Pending& p) {
  if (p.result.fallback == Fallback::kNone) {
    decided_.fetch_add(1, std::memory_order_relaxed);
  } else {
    p.result.allowed = false;
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
  }
  try {
    p.done(p.result);
  } catch (const std::exception& e) {
    INFERD_LOG_ERROR("rate limit decision callback threw: {}", e.what());
  }
}

}  // namespace inferd
