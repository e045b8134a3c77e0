#include "cache/redis_cache.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/time.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

namespace inferd {
namespace {

constexpr size_t kMaxBatch = 64;                    // SETs pipelined per round trip
constexpr size_t kMaxValueBytes = size_t{1} << 28;  // refuse to inflate beyond 256 MiB
constexpr std::string_view kScheme = "redis://";

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// Runs one command; *saved_errno receives errno right after it (hiredis
// reports a socket timeout as REDIS_ERR_IO with errno EAGAIN).
Reply Command(redisContext* c, std::initializer_list<std::string_view> args, int* saved_errno) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  errno = 0;
  void* r = redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
  *saved_errno = errno;
  return Reply(static_cast<redisReply*>(r));
}

// Deletes `keys` with *del_cmd (UNLINK; switched to DEL for the rest of the
// scan when UNLINK fails); returns the reply, null on an I/O error.
Reply DeleteKeys(redisContext* c, const redisReply& keys, std::string_view* del_cmd,
                 int* saved_errno) {
  std::vector<const char*> argv{del_cmd->data()};
  std::vector<size_t> lens{del_cmd->size()};
  for (size_t i = 0; i < keys.elements; ++i) {
    argv.push_back(keys.element[i]->str);
    lens.push_back(keys.element[i]->len);
  }
  for (;;) {
    errno = 0;
    Reply d(static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
    *saved_errno = errno;
    if (!d || d->type != REDIS_REPLY_ERROR || *del_cmd != "UNLINK") return d;
    *del_cmd = "DEL";
    argv[0] = "DEL";
    lens[0] = 3;
  }
}

bool IsTimeout(const redisContext* c, int saved_errno) {
  if (c->err != REDIS_ERR_IO) return false;
  if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT ||
      saved_errno == EINPROGRESS) {
    return true;
  }
  std::string_view msg(c->errstr);
  return msg.find("timed out") != msg.npos || msg.find("temporarily unavailable") != msg.npos;
}

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

bool ParseInt(std::string_view s, int lo, int hi, int* out) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
}

// Escapes the glob characters of SCAN MATCH.
std::string GlobEscape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out.push_back('\\');
    out.push_back(ch);
  }
  return out;
}

// zstd contexts reused by each thread.
struct Zstd {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~Zstd() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
  static Zstd& ForThread() {
    thread_local Zstd z;
    return z;
  }
};

// Empty on failure (a serialized entry is never empty).
std::string Compress(std::string_view raw, int level) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  size_t n =
      ZSTD_compressCCtx(Zstd::ForThread().c, out.data(), out.size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(n)) return {};
  out.resize(n);
  return out;
}

StatusOr<std::string> Decompress(std::string_view value) {
  unsigned long long n = ZSTD_getFrameContentSize(value.data(), value.size());
  if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN || n > kMaxValueBytes) {
    return InvalidArgumentError("not a zstd frame of a known, sane size");
  }
  std::string raw(static_cast<size_t>(n), '\0');
  size_t got =
      ZSTD_decompressDCtx(Zstd::ForThread().d, raw.data(), raw.size(), value.data(), value.size());
  if (ZSTD_isError(got) || got != raw.size()) {
    return InvalidArgumentError(std::string("zstd: ") +
                                (ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame"));
  }
  return raw;
}

void IgnoreSigpipeIfDefault() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (sigaction(SIGPIPE, nullptr, &old) != 0) return;
    if ((old.sa_flags & SA_SIGINFO) != 0 || old.sa_handler != SIG_DFL) return;
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, nullptr);
  });
}

}  // namespace

void RedisCache::ContextDeleter::operator()(redisContext* c) const { redisFree(c); }

StatusOr<RedisCache::Endpoint> RedisCache::ParseUrl(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError("cache.redis.url: " + std::string(why) +
                                " (expected redis://[[user]:password@]host[:port][/db])");
  };
  if (!url.starts_with(kScheme)) return bad("scheme is not redis://");
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == rest.npos ? std::string_view() : rest.substr(slash + 1);
  Endpoint ep;
  if (size_t at = authority.rfind('@'); at != authority.npos) {
    std::string_view userinfo = authority.substr(0, at);
    size_t colon = userinfo.find(':');
    if (colon == userinfo.npos) return bad("credentials must be user:password or :password");
    ep.user = std::string(userinfo.substr(0, colon));
    ep.password = std::string(userinfo.substr(colon + 1));
    authority = authority.substr(at + 1);
  }
  std::string_view port;
  if (authority.starts_with('[')) {  // [IPv6]:port
    size_t close = authority.find(']');
    if (close == authority.npos) return bad("unterminated [");
    ep.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') return bad("junk after ]");
    if (!after.empty()) port = after.substr(1);
    if (after == ":") return bad("empty port");
  } else {
    size_t colon = authority.find(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != authority.npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return bad("empty port");
    }
  }
  if (ep.host.empty()) return bad("no host");
  if (!port.empty() && !ParseInt(port, 1, 65535, &ep.port)) return bad("bad port");
  if (!path.empty() && !ParseInt(path, 0, 1 << 20, &ep.db)) return bad("bad db number");
  return ep;
}

StatusOr<std::unique_ptr<RedisCache>> RedisCache::Create(const Options& options) {
  INFERD_ASSIGN_OR_RETURN(Endpoint ep, ParseUrl(options.url));
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
  return std::unique_ptr<RedisCache>(new RedisCache(options, std::move(ep), clock));
}

RedisCache::RedisCache(const Options& options, Endpoint endpoint, Clock* clock)
    : options_(options), endpoint_(std::move(endpoint)), clock_(clock) {
  writer_ = std::thread(&RedisCache::WriterLoop, this);
}

RedisCache::~RedisCache() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
  }
  queue_cv_.SignalAll();
  if (writer_.joinable()) writer_.join();
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
  if (redisSetTimeout(c.get(), ToTimeval(options_.op_timeout)) != REDIS_OK) {
    return Failure(c.get(), errno, "set timeout", outcome);
  }
  auto setup = [&](std::initializer_list<std::string_view> cmd, std::string_view what) -> Status {
    Reply r = Command(c.get(), cmd, &saved);
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
  bool timeout = IsTimeout(c, saved_errno);
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

// ---- circuit breaker ----

bool RedisCache::Admit() {
  MutexLock l(&circuit_mu_);
  switch (state_) {
    case CircuitState::kClosed:
      return true;
    case CircuitState::kOpen:
      if (clock_->Now() < open_until_) return false;
      state_ = CircuitState::kHalfOpen;
      probe_in_flight_ = true;
      return true;
    case CircuitState::kHalfOpen:
      if (probe_in_flight_) return false;
      probe_in_flight_ = true;
      return true;
  }
  return false;
}

void RedisCache::Report(Outcome outcome) {
  MutexLock l(&circuit_mu_);
  switch (outcome) {
    case Outcome::kOk:
      consecutive_failures_ = 0;
      if (state_ != CircuitState::kClosed) {
        state_ = CircuitState::kClosed;
        probe_in_flight_ = false;
        INFERD_LOG_INFO("redis {}:{}: reachable again, circuit closed", endpoint_.host,
                        endpoint_.port);
      }
      return;
    case Outcome::kNeutral:
      if (state_ == CircuitState::kHalfOpen) probe_in_flight_ = false;
      return;
    case Outcome::kError:
    case Outcome::kTimeout:
      if (state_ == CircuitState::kOpen) return;  // a call admitted before it opened
      if (state_ == CircuitState::kClosed && ++consecutive_failures_ < options_.failures_to_open) {
        return;
      }
      state_ = CircuitState::kOpen;
      open_until_ = clock_->Now() + options_.circuit_open;
      probe_in_flight_ = false;
      consecutive_failures_ = 0;
      circuit_opens_.fetch_add(1, std::memory_order_relaxed);
      INFERD_LOG_WARN("redis {}:{}: circuit open, tier skipped for {} ms", endpoint_.host,
                      endpoint_.port, options_.circuit_open.count());
      return;
  }
}

bool RedisCache::CircuitOpen() {
  MutexLock l(&circuit_mu_);
  return state_ == CircuitState::kOpen && clock_->Now() < open_until_;
}

RedisCache::Stats RedisCache::GetStats() {
  Stats s;
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.errors = errors_.load(std::memory_order_relaxed);
  s.timeouts = timeouts_.load(std::memory_order_relaxed);
  s.writes = writes_.load(std::memory_order_relaxed);
  s.dropped_writes = dropped_writes_.load(std::memory_order_relaxed);
  s.circuit_opens = circuit_opens_.load(std::memory_order_relaxed);
  s.skipped = skipped_.load(std::memory_order_relaxed);
  MutexLock l(&circuit_mu_);
  s.circuit_open = state_ != CircuitState::kClosed;
  return s;
}

// ---- reads ----

StatusOr<std::shared_ptr<const CacheEntry>> RedisCache::Get(const CacheKey& key) {
  auto miss = [&](Status s) -> StatusOr<std::shared_ptr<const CacheEntry>> {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return s;
  };
  if (!Admit()) {
    skipped_.fetch_add(1, std::memory_order_relaxed);
    return miss(UnavailableError("redis tier skipped: circuit open"));
  }
  Outcome outcome = Outcome::kOk;
  Status status;
  Conn c = Acquire(&outcome, &status);
  if (!c) {
    Report(outcome);
    return miss(status);
  }
  const std::string rkey = RedisKey(key);
  int saved = 0;
  Reply r = Command(c.get(), {"GET", rkey}, &saved);
  if (!r) {
    status = Failure(c.get(), saved, "GET", &outcome);
    Release(std::move(c), false);
    Report(outcome);
    return miss(status);
  }
  Release(std::move(c), true);
  switch (r->type) {
    case REDIS_REPLY_NIL:
      Report(Outcome::kOk);
      return miss(NotFoundError("not in redis"));
    case REDIS_REPLY_STRING:
      Report(Outcome::kOk);
      return Decode(key, std::string_view(r->str, r->len));
    case REDIS_REPLY_ERROR: {
      std::string msg(r->str, r->len);
      errors_.fetch_add(1, std::memory_order_relaxed);
      // WRONGTYPE concerns this key only; anything else (LOADING, OOM, ...)
      // the server.
      Report(msg.starts_with("WRONGTYPE") ? Outcome::kOk : Outcome::kError);
      return miss(UnavailableError("redis GET: " + msg));
    }
    default:
      errors_.fetch_add(1, std::memory_order_relaxed);
      Report(Outcome::kError);
      return miss(UnavailableError("redis GET: unexpected reply type"));
  }
}

StatusOr<std::shared_ptr<const CacheEntry>> RedisCache::Decode(const CacheKey& key,
                                                               std::string_view value) {
  StatusOr<std::string> raw = Decompress(value);
  StatusOr<std::shared_ptr<const CacheEntry>> entry =
      raw.ok() ? CacheEntry::Deserialize(*raw) : raw.status();
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
  if (CircuitOpen()) {
    dropped_writes_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  PendingWrite w{RedisKey(key), key.model, std::move(entry)};
  {
    MutexLock l(&mu_);
    if (stopping_ || queue_.size() >= options_.write_queue_size) {
      dropped_writes_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(w));
    ++enqueued_;
  }
  queue_cv_.Signal();
}

void RedisCache::WriterLoop() {
  for (;;) {
    {
      MutexLock l(&mu_);
      while (!stopping_ && (paused_ || queue_.empty())) queue_cv_.Wait(&mu_);
      if (stopping_ && queue_.empty()) return;
    }
    // Taking the batch under write_mu_ orders it against EraseModel/Clear.
    MutexLock w(&write_mu_);
    std::deque<PendingWrite> batch;
    {
      MutexLock l(&mu_);
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (batch.empty()) continue;
    WriteBatch(batch);
    CountDone(batch.size());
  }
}

size_t RedisCache::AppendSets(redisContext* c, const std::deque<PendingWrite>& batch) {
  const int64_t now_us = clock_->WallMicros();
  size_t sent = 0;
  for (const PendingWrite& w : batch) {
    int64_t px = options_.ttl_s_default * 1000;
    if (w.entry->expires_us > 0) {
      px = (w.entry->expires_us - now_us) / 1000;
      if (px <= 0) continue;  // already expired: nothing to share
    }
    std::string value = Compress(w.entry->Serialize(), options_.zstd_level);
    if (value.empty()) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      dropped_writes_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    std::string px_s = std::to_string(px);
    const char* argv[] = {"SET", w.key.data(), value.data(), "PX", px_s.data()};
    const size_t lens[] = {3, w.key.size(), value.size(), 2, px_s.size()};
    if (redisAppendCommandArgv(c, 5, argv, lens) != REDIS_OK) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      dropped_writes_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    ++sent;
  }
  return sent;
}

void RedisCache::WriteBatch(std::deque<PendingWrite>& batch) {
  if (!Admit()) {
    dropped_writes_.fetch_add(batch.size(), std::memory_order_relaxed);
    return;
  }
  Outcome outcome = Outcome::kOk;
  Status status;
  Conn c = Acquire(&outcome, &status);
  if (!c) {
    Report(outcome);
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
      Report(outcome);
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
  Report(error_reply ? Outcome::kError : Outcome::kOk);
}

void RedisCache::CountDone(uint64_t n) {
  {
    MutexLock l(&mu_);
    done_ += n;
  }
  done_cv_.SignalAll();
}

size_t RedisCache::DropQueued(const std::string* model) {
  size_t dropped = 0;
  {
    MutexLock l(&mu_);
    auto matches = [&](const PendingWrite& w) { return model == nullptr || w.model == *model; };
    auto it = std::remove_if(queue_.begin(), queue_.end(), matches);
    dropped = static_cast<size_t>(queue_.end() - it);
    queue_.erase(it, queue_.end());
    done_ += dropped;
  }
  if (dropped > 0) done_cv_.SignalAll();
  return dropped;
}

void RedisCache::Flush() {
  MutexLock l(&mu_);
  const uint64_t target = enqueued_;
  while (done_ < target) done_cv_.Wait(&mu_);
}

void RedisCache::PauseWriterForTesting(bool paused) {
  {
    MutexLock l(&mu_);
    paused_ = paused;
  }
  queue_cv_.SignalAll();
}

// ---- invalidation ----

size_t RedisCache::EraseModel(std::string_view model) {
  const std::string m(model);
  MutexLock w(&write_mu_);
  size_t erased = DropQueued(&m);
  // Exactly 32 characters after "model:", so model "a" never matches the
  // keys of model "a:b".
  return erased + DeleteMatching(GlobEscape(options_.key_prefix + m + ":") + std::string(32, '?'));
}

void RedisCache::Clear() {
  MutexLock w(&write_mu_);
  DropQueued(nullptr);
  DeleteMatching(GlobEscape(options_.key_prefix) + "*");
}

size_t RedisCache::DeleteMatching(const std::string& pattern) {
  if (!Admit()) return 0;
  Outcome outcome = Outcome::kOk;
  Status status;
  Conn c = Acquire(&outcome, &status);
  if (!c) {
    Report(outcome);
    return 0;
  }
  size_t deleted = 0;
  std::string cursor = "0";
  std::string_view del_cmd = "UNLINK";  // DEL on servers older than 4.0
  int saved = 0;
  do {
    Reply r = Command(c.get(), {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}, &saved);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY) {
      cursor.assign(r->element[0]->str, r->element[0]->len);
      if (r->element[1]->elements == 0) continue;
      r = DeleteKeys(c.get(), *r->element[1], &del_cmd, &saved);
    }
    if (!r) {
      static_cast<void>(Failure(c.get(), saved, "SCAN/UNLINK", &outcome));
      Release(std::move(c), false);
      Report(outcome);
      return deleted;
    }
    if (r->type != REDIS_REPLY_INTEGER) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      Release(std::move(c), true);
      Report(Outcome::kError);
      return deleted;
    }
    deleted += static_cast<size_t>(r->integer);
  } while (cursor != "0");
  Release(std::move(c), true);
  Report(Outcome::kOk);
  return deleted;
}

}  // namespace inferd
