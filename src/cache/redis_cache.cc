#include "cache/redis_cache.h"

#include <hiredis/hiredis.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace inferd {
namespace {

constexpr size_t kMaxBatch = 64;  // SETs pipelined per round trip

using Reply = RedisReply;

}  // namespace

void RedisCache::ContextDeleter::operator()(redisContext* c) const { redisFree(c); }

StatusOr<std::unique_ptr<RedisCache>> RedisCache::Create(const Options& options) {
  INFERD_ASSIGN_OR_RETURN(Endpoint ep, ParseRedisUrl(options.url));
  if (options.pool_size < 1) return InvalidArgumentError("cache.redis.pool_size must be >= 1");
  if (options.connect_timeout.count() <= 0 || options.op_timeout.count() <= 0) {
    return InvalidArgumentError("cache.redis timeouts must be > 0");
  }
  if (options.ttl_s_default < 1) return InvalidArgumentError("cache.redis.ttl_s must be >= 1");
  if (options.circuit_open.count() < 0 || options.failures_to_open < 1) {
    return InvalidArgumentError("cache.redis circuit: circuit_open >= 0, failures_to_open >= 1");
  }
  if (options.write_queue_size < 1) {
    return InvalidArgumentError("cache.redis.write_queue_size must be >= 1");
  }
  if (options.zstd_level < 1 || options.zstd_level > 19) {
    return InvalidArgumentError("cache.redis.zstd_level must be in 1..19");
  }
  IgnoreSigpipeIfDefault();
  Clock* clock = options.clock != nullptr ? options.clock : Clock::System();
  std::unique_ptr<RedisCache> cache(new RedisCache(options, std::move(ep), clock));
  WriteBehindQueue::Options q;
  q.capacity = options.write_queue_size;
  q.max_batch = kMaxBatch;
  q.name = "redis cache " + cache->endpoint_.host + ":" + std::to_string(cache->endpoint_.port);
  RedisCache* raw = cache.get();
  INFERD_ASSIGN_OR_RETURN(
      cache->queue_, WriteBehindQueue::Create(q, [raw](const std::vector<PendingWrite>& batch) {
        raw->WriteBatch(batch);
      }));
  return cache;
}

RedisCache::RedisCache(const Options& options, Endpoint endpoint, Clock* clock)
    : options_(options),
      endpoint_(std::move(endpoint)),
      clock_(clock),
      circuit_(clock, options.circuit_open, options.failures_to_open,
               endpoint_.host + ":" + std::to_string(endpoint_.port)) {}

RedisCache::~RedisCache() {
  if (queue_) queue_->Shutdown();  // drains: the batch writer needs the pool
  MutexLock l(&pool_mu_);
  idle_.clear();
}

std::string RedisCache::RedisKey(const CacheKey& key) const {
  std::string k;
  k.reserve(options_.key_prefix.size() + key.model.size() + 33);
  k.append(options_.key_prefix).append(key.model).append(":").append(key.digest.Hex());
  return k;
}

// ---- connections ----

StatusOr<RedisCache::Conn> RedisCache::Connect(Outcome* outcome) {
  errno = 0;
  Conn c(redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port,
                                 ToTimeval(options_.connect_timeout)));
  int saved = errno;
  if (!c) {
    *outcome = Outcome::kError;
    errors_.fetch_add(1, std::memory_order_relaxed);
    return UnavailableError("redis: cannot allocate a context");
  }
  if (c->err != 0) return Failure(c.get(), saved, "connect", outcome);
  BoundRedisReplies(c->reader);
  if (redisSetTimeout(c.get(), ToTimeval(options_.op_timeout)) != REDIS_OK) {
    return Failure(c.get(), errno, "set timeout", outcome);
  }
  auto setup = [&](std::initializer_list<std::string_view> cmd, std::string_view what) -> Status {
    Reply r = RedisCommand(c.get(), cmd, &saved);
    if (!r) return Failure(c.get(), saved, what, outcome);
    if (r->type == REDIS_REPLY_ERROR) {
      *outcome = Outcome::kError;
      errors_.fetch_add(1, std::memory_order_relaxed);
      return UnavailableError("redis " + std::string(what) + ": " + std::string(r->str, r->len));
    }
    return Status::OK();
  };
  if (!endpoint_.password.empty()) {
    if (endpoint_.user.empty()) {
      INFERD_RETURN_IF_ERROR(setup({"AUTH", endpoint_.password}, "AUTH"));
    } else {
      INFERD_RETURN_IF_ERROR(setup({"AUTH", endpoint_.user, endpoint_.password}, "AUTH"));
    }
  }
  if (endpoint_.db != 0) {
    std::string db = std::to_string(endpoint_.db);
    INFERD_RETURN_IF_ERROR(setup({"SELECT", db}, "SELECT"));
  }
  return c;
}

Status RedisCache::Failure(redisContext* c, int saved_errno, std::string_view what,
                           Outcome* outcome) {
  bool timeout = IsRedisTimeout(c, saved_errno);
  *outcome = timeout ? Outcome::kTimeout : Outcome::kError;
  (timeout ? timeouts_ : errors_).fetch_add(1, std::memory_order_relaxed);
  std::string msg = "redis " + endpoint_.host + ":" + std::to_string(endpoint_.port) + ": " +
                    std::string(what) + ": " + c->errstr;
  int64_t suppressed = 0;
  if (error_log_.ShouldLog(&suppressed)) {
    INFERD_LOG_WARN("{} ({} similar messages suppressed)", msg, suppressed);
  }
  return timeout ? DeadlineExceededError(std::move(msg)) : UnavailableError(std::move(msg));
}

RedisCache::Conn RedisCache::Acquire(Outcome* outcome, Status* status) {
  {
    MutexLock l(&pool_mu_);
    const auto deadline = std::chrono::steady_clock::now() + options_.op_timeout;
    while (idle_.empty() && open_ >= options_.pool_size) {
      if (!pool_cv_.WaitUntil(&pool_mu_, deadline) && idle_.empty() &&
          open_ >= options_.pool_size) {
        timeouts_.fetch_add(1, std::memory_order_relaxed);
        *outcome = Outcome::kNeutral;
        *status = DeadlineExceededError("redis: no free connection in the pool");
        return nullptr;
      }
    }
    if (!idle_.empty()) {
      Conn c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    ++open_;
  }
  StatusOr<Conn> c = Connect(outcome);
  if (c.ok()) return std::move(c).value();
  *status = c.status();
  {
    MutexLock l(&pool_mu_);
    --open_;
  }
  pool_cv_.Signal();
  return nullptr;
}

void RedisCache::Release(Conn conn, bool healthy) {
  std::vector<Conn> dead;  // closed outside the lock
  {
    MutexLock l(&pool_mu_);
    if (healthy) {
      idle_.push_back(std::move(conn));
    } else {
      // The idle connections most likely share the failure (server restarted
      // or gone): close them too, so the next call reconnects.
      dead.swap(idle_);
      dead.push_back(std::move(conn));
      open_ -= static_cast<int>(dead.size());
    }
  }
  pool_cv_.SignalAll();
}

RedisCache::Stats RedisCache::GetStats() {
  Stats s;
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.errors = errors_.load(std::memory_order_relaxed);
  s.timeouts = timeouts_.load(std::memory_order_relaxed);
  s.writes = writes_.load(std::memory_order_relaxed);
  s.dropped_writes = dropped_writes_.load(std::memory_order_relaxed) + queue_->GetStats().dropped;
  s.circuit_opens = circuit_.opens();
  s.skipped = skipped_.load(std::memory_order_relaxed);
  s.circuit_open = circuit_.NotClosed();
  return s;
}

// ---- reads ----

StatusOr<std::shared_ptr<const CacheEntry>> RedisCache::Get(const CacheKey& key) {
  auto miss = [&](Status s) -> StatusOr<std::shared_ptr<const CacheEntry>> {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return s;
  };
  if (!circuit_.Admit()) {
    skipped_.fetch_add(1, std::memory_order_relaxed);
    return miss(UnavailableError("redis tier skipped: circuit open"));
  }
  Outcome outcome = Outcome::kOk;
  Status status;
  Conn c = Acquire(&outcome, &status);
  if (!c) {
    circuit_.Report(outcome);
    return miss(status);
  }
  const std::string rkey = RedisKey(key);
  int saved = 0;
  Reply r = RedisCommand(c.get(), {"GET", rkey}, &saved);
  if (!r) {
    status = Failure(c.get(), saved, "GET", &outcome);
    Release(std::move(c), false);
    circuit_.Report(outcome);
    return miss(status);
  }
  Release(std::move(c), true);
  switch (r->type) {
    case REDIS_REPLY_NIL:
      circuit_.Report(Outcome::kOk);
      return miss(NotFoundError("not in redis"));
    case REDIS_REPLY_STRING:
      circuit_.Report(Outcome::kOk);
      return Decode(key, std::string_view(r->str, r->len));
    case REDIS_REPLY_ERROR: {
      std::string msg(r->str, r->len);
      errors_.fetch_add(1, std::memory_order_relaxed);
      // WRONGTYPE concerns this key only; anything else (LOADING, OOM, ...)
      // the server.
      circuit_.Report(msg.starts_with("WRONGTYPE") ? Outcome::kOk : Outcome::kError);
      return miss(UnavailableError("redis GET: " + msg));
    }
    default:
      errors_.fetch_add(1, std::memory_order_relaxed);
      circuit_.Report(Outcome::kError);
      return miss(UnavailableError("redis GET: unexpected reply type"));
  }
}

StatusOr<std::shared_ptr<const CacheEntry>> RedisCache::Decode(const CacheKey& key,
                                                               std::string_view value) {
  StatusOr<std::shared_ptr<const CacheEntry>> entry = DecodeRedisValue(value);
  if (!entry.ok()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    errors_.fetch_add(1, std::memory_order_relaxed);
    int64_t suppressed = 0;
    if (error_log_.ShouldLog(&suppressed)) {
      INFERD_LOG_WARN("redis: corrupt value at {}: {} ({} similar messages suppressed)",
                      RedisKey(key), entry.status().message(), suppressed);
    }
    return NotFoundError("corrupt value in redis: " + entry.status().message());
  }
  const CacheEntry& e = **entry;
  if (e.check != key.check || e.model != key.model) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return NotFoundError("redis entry belongs to another request");
  }
  if (e.expires_us > 0 && e.expires_us <= clock_->WallMicros()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return NotFoundError("redis entry expired");
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  return entry;
}

// ---- writes ----

void RedisCache::Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry) {
  if (!entry || entry->check != key.check) return;
  if (circuit_.IsOpen()) {
    dropped_writes_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  queue_->Push({key, std::move(entry)});  // counts its drops
}

size_t RedisCache::AppendSets(redisContext* c, const std::vector<PendingWrite>& batch) {
  const int64_t now_us = clock_->WallMicros();
  size_t sent = 0;
  for (const PendingWrite& w : batch) {
    int64_t px = options_.ttl_s_default * 1000;
    if (w.entry->expires_us > 0) {
      px = (w.entry->expires_us - now_us) / 1000;
      if (px <= 0) continue;  // already expired: nothing to share
    }
    std::string value = ZstdCompress(w.entry->Serialize(), options_.zstd_level);
    if (value.empty()) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      dropped_writes_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    std::string px_s = std::to_string(px);
    const std::string rkey = RedisKey(w.key);
    const char* argv[] = {"SET", rkey.data(), value.data(), "PX", px_s.data()};
    const size_t lens[] = {3, rkey.size(), value.size(), 2, px_s.size()};
    if (redisAppendCommandArgv(c, 5, argv, lens) != REDIS_OK) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      dropped_writes_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    ++sent;
  }
  return sent;
}

void RedisCache::WriteBatch(const std::vector<PendingWrite>& batch) {
  if (!circuit_.Admit()) {
    dropped_writes_.fetch_add(batch.size(), std::memory_order_relaxed);
    return;
  }
  Outcome outcome = Outcome::kOk;
  Status status;
  Conn c = Acquire(&outcome, &status);
  if (!c) {
    circuit_.Report(outcome);
    dropped_writes_.fetch_add(batch.size(), std::memory_order_relaxed);
    return;
  }
  const size_t sent = AppendSets(c.get(), batch);
  bool error_reply = false;
  for (size_t i = 0; i < sent; ++i) {
    void* raw = nullptr;
    errno = 0;
    int rc = redisGetReply(c.get(), &raw);
    int saved = errno;
    Reply r(static_cast<redisReply*>(raw));
    if (rc != REDIS_OK || !r) {
      static_cast<void>(Failure(c.get(), saved, "SET", &outcome));
      Release(std::move(c), false);
      circuit_.Report(outcome);
      dropped_writes_.fetch_add(sent - i, std::memory_order_relaxed);
      return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      error_reply = true;
      errors_.fetch_add(1, std::memory_order_relaxed);
      dropped_writes_.fetch_add(1, std::memory_order_relaxed);
    } else {
      writes_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  Release(std::move(c), true);
  circuit_.Report(error_reply ? Outcome::kError : Outcome::kOk);
}

void RedisCache::Flush() { queue_->Flush(); }

void RedisCache::PauseWriterForTesting(bool paused) { queue_->PauseForTesting(paused); }

// ---- invalidation ----

StatusOr<size_t> RedisCache::EraseModel(std::string_view model) {
  // Exactly 32 characters after "model:", so model "a" never matches the
  // keys of model "a:b".
  const std::string pattern =
      GlobEscape(options_.key_prefix + std::string(model) + ":") + std::string(32, '?');
  StatusOr<size_t> stored = size_t{0};
  size_t queued = queue_->DropIf([model](const PendingWrite& w) { return w.key.model == model; },
                                 [&] { stored = DeleteMatching(pattern); });
  if (!stored.ok()) return stored.status();
  return queued + *stored;
}

Status RedisCache::Clear() {
  const std::string pattern = GlobEscape(options_.key_prefix) + "*";
  Status st;
  queue_->DropIf([](const PendingWrite&) { return true; },
                 [&] { st = DeleteMatching(pattern).status(); });
  return st;
}

StatusOr<size_t> RedisCache::DeleteMatching(const std::string& pattern) {
  const std::string server = endpoint_.host + ":" + std::to_string(endpoint_.port);
  if (!circuit_.Admit()) {
    return UnavailableError("redis " + server +
                            ": circuit open after recent failures, nothing deleted");
  }
  Outcome outcome = Outcome::kOk;
  Status status;
  Conn c = Acquire(&outcome, &status);
  if (!c) {
    circuit_.Report(outcome);
    return status;
  }
  size_t deleted = 0;
  // No reply: an I/O error or a timeout (the connection is dropped).
  auto io_failure = [&](std::string_view what, int saved) -> Status {
    Status st = Failure(c.get(), saved, what, &outcome);
    Release(std::move(c), false);
    circuit_.Report(outcome);
    return st;
  };
  // A reply of the wrong type, or an error reply (NOPERM, LOADING, ...).
  auto bad_reply = [&](std::string_view what, const redisReply& r) -> Status {
    errors_.fetch_add(1, std::memory_order_relaxed);
    Release(std::move(c), true);
    circuit_.Report(Outcome::kError);
    std::string why = r.type == REDIS_REPLY_ERROR
                          ? std::string(r.str, r.len)
                          : "unexpected reply type " + std::to_string(r.type);
    return UnavailableError("redis " + server + ": " + std::string(what) + ": " + why + " (" +
                            std::to_string(deleted) + " keys deleted before)");
  };
  std::string cursor = "0";
  std::string_view del_cmd = "UNLINK";  // DEL on servers older than 4.0
  int saved = 0;
  do {
    Reply r = RedisCommand(c.get(), {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}, &saved);
    if (!r) return io_failure("SCAN", saved);
    const redisReply* keys = nullptr;
    if (!ParseScanReply(*r, &cursor, &keys)) return bad_reply("SCAN", *r);
    if (keys->elements == 0) continue;
    Reply d = RedisDeleteKeys(c.get(), *keys, &del_cmd, &saved);
    if (!d) return io_failure(del_cmd, saved);
    if (d->type != REDIS_REPLY_INTEGER) return bad_reply(del_cmd, *d);
    deleted += static_cast<size_t>(d->integer);
  } while (cursor != "0");
  Release(std::move(c), true);
  circuit_.Report(Outcome::kOk);
  return deleted;
}

}  // namespace inferd
