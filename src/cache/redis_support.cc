#include "cache/redis_support.h"

#include <hiredis/hiredis.h>

#include <signal.h>
#include <zstd.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <cerrno>
#include <charconv>
#include <mutex>
#include <utility>
#include <vector>

#include "common/logging.h"

namespace inferd {
namespace {

constexpr size_t kMaxValueBytes = size_t{1} << 28;  // refuse to inflate beyond 256 MiB
constexpr std::string_view kScheme = "redis://";

bool ParseInt(std::string_view s, int lo, int hi, int* out) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
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

}  // namespace

// ---- URL ----

StatusOr<RedisEndpoint> ParseRedisUrl(std::string_view url, std::string_view setting) {
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError(std::string(setting) + ": " + std::string(why) +
                                " (expected redis://[[user]:password@]host[:port][/db])");
  };
  if (!url.starts_with(kScheme)) return bad("scheme is not redis://");
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == rest.npos ? std::string_view() : rest.substr(slash + 1);
  RedisEndpoint ep;
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

// ---- hiredis ----

void RedisReplyDeleter::operator()(redisReply* r) const { freeReplyObject(r); }

RedisReply RedisCommand(redisContext* c, std::initializer_list<std::string_view> args,
                        int* saved_errno) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  errno = 0;
  void* r = redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
  *saved_errno = errno;
  return RedisReply(static_cast<redisReply*>(r));
}

RedisReply RedisDeleteKeys(redisContext* c, const redisReply& keys, std::string_view* del_cmd,
                           int* saved_errno) {
  std::vector<const char*> argv{del_cmd->data()};
  std::vector<size_t> lens{del_cmd->size()};
  for (size_t i = 0; i < keys.elements; ++i) {
    argv.push_back(keys.element[i]->str);
    lens.push_back(keys.element[i]->len);
  }
  for (;;) {
    errno = 0;
    RedisReply d(static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
    *saved_errno = errno;
    if (!d || d->type != REDIS_REPLY_ERROR || *del_cmd != "UNLINK") return d;
    *del_cmd = "DEL";
    argv[0] = "DEL";
    lens[0] = 3;
  }
}

namespace {

// hiredis 0.14's default reply builders (hiredis.c), with a bound on arrays.
// Memory comes from malloc/calloc, as freeReplyObject expects.
redisReply* NewReply(int type) {
  auto* r = static_cast<redisReply*>(calloc(1, sizeof(redisReply)));
  if (r) r->type = type;
  return r;
}

void* Attach(const redisReadTask* task, redisReply* r) {
  if (task->parent) {
    auto* parent = static_cast<redisReply*>(task->parent->obj);
    parent->element[task->idx] = r;
  }
  return r;
}

void* CreateString(const redisReadTask* task, char* str, size_t len) {
  redisReply* r = NewReply(task->type);
  if (!r) return nullptr;
  r->str = static_cast<char*>(malloc(len + 1));
  if (!r->str) {
    freeReplyObject(r);
    return nullptr;
  }
  std::memcpy(r->str, str, len);
  r->str[len] = '\0';
  r->len = len;
  return Attach(task, r);
}

void* CreateArray(const redisReadTask* task, int elements) {
  if (elements > kRedisMaxReplyElements) return nullptr;  // the reader reports an error
  redisReply* r = NewReply(REDIS_REPLY_ARRAY);
  if (!r) return nullptr;
  if (elements > 0) {
    r->element =
        static_cast<redisReply**>(calloc(static_cast<size_t>(elements), sizeof(redisReply*)));
    if (!r->element) {
      freeReplyObject(r);
      return nullptr;
    }
  }
  r->elements = static_cast<size_t>(std::max(elements, 0));
  return Attach(task, r);
}

void* CreateInteger(const redisReadTask* task, long long value) {
  redisReply* r = NewReply(REDIS_REPLY_INTEGER);
  if (!r) return nullptr;
  r->integer = value;
  return Attach(task, r);
}

void* CreateNil(const redisReadTask* task) {
  redisReply* r = NewReply(REDIS_REPLY_NIL);
  return r ? Attach(task, r) : nullptr;
}

const redisReplyObjectFunctions kBoundedReplies = {CreateString, CreateArray, CreateInteger,
                                                   CreateNil, freeReplyObject};

}  // namespace

void BoundRedisReplies(redisReader* reader) {
  reader->fn = const_cast<redisReplyObjectFunctions*>(&kBoundedReplies);
}

StatusOr<std::shared_ptr<const CacheEntry>> DecodeRedisValue(std::string_view value) {
  StatusOr<std::string> raw = ZstdDecompress(value);
  if (!raw.ok()) return raw.status();
  return CacheEntry::Deserialize(*raw);
}

bool ParseScanReply(const redisReply& reply, std::string* cursor, const redisReply** keys) {
  if (reply.type != REDIS_REPLY_ARRAY || reply.elements != 2) return false;
  const redisReply* c = reply.element[0];
  const redisReply* k = reply.element[1];
  if (!c || !k || c->type != REDIS_REPLY_STRING || k->type != REDIS_REPLY_ARRAY) return false;
  for (size_t i = 0; i < k->elements; ++i) {
    if (!k->element[i] || k->element[i]->type != REDIS_REPLY_STRING) return false;
  }
  cursor->assign(c->str, c->len);
  *keys = k;
  return true;
}

bool IsRedisTimeout(const redisContext* c, int saved_errno) {
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

// ---- zstd ----

std::string ZstdCompress(std::string_view raw, int level) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  size_t n =
      ZSTD_compressCCtx(Zstd::ForThread().c, out.data(), out.size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(n)) return {};
  out.resize(n);
  return out;
}

StatusOr<std::string> ZstdDecompress(std::string_view value) {
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

// ---- misc ----

std::string GlobEscape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out.push_back('\\');
    out.push_back(ch);
  }
  return out;
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

// ---- circuit breaker ----

CircuitBreaker::CircuitBreaker(Clock* clock, std::chrono::milliseconds open_for,
                               int failures_to_open, std::string name)
    : clock_(clock),
      open_for_(open_for),
      failures_to_open_(failures_to_open),
      name_(std::move(name)) {}

bool CircuitBreaker::Admit() {
  MutexLock l(&mu_);
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (clock_->Now() < open_until_) return false;
      state_ = State::kHalfOpen;
      probe_in_flight_ = true;
      return true;
    case State::kHalfOpen:
      if (probe_in_flight_) return false;
      probe_in_flight_ = true;
      return true;
  }
  return false;
}

void CircuitBreaker::Report(Outcome outcome) {
  MutexLock l(&mu_);
  switch (outcome) {
    case Outcome::kOk:
      consecutive_failures_ = 0;
      if (state_ != State::kClosed) {
        state_ = State::kClosed;
        probe_in_flight_ = false;
        INFERD_LOG_INFO("redis {}: reachable again, circuit closed", name_);
      }
      return;
    case Outcome::kNeutral:
      if (state_ == State::kHalfOpen) probe_in_flight_ = false;
      return;
    case Outcome::kError:
    case Outcome::kTimeout:
      if (state_ == State::kOpen) return;  // a call admitted before it opened
      if (state_ == State::kClosed && ++consecutive_failures_ < failures_to_open_) {
        return;
      }
      state_ = State::kOpen;
      open_until_ = clock_->Now() + open_for_;
      probe_in_flight_ = false;
      consecutive_failures_ = 0;
      opens_.fetch_add(1, std::memory_order_relaxed);
      INFERD_LOG_WARN("redis {}: circuit open, tier skipped for {} ms", name_, open_for_.count());
      return;
  }
}

bool CircuitBreaker::IsOpen() {
  MutexLock l(&mu_);
  return state_ == State::kOpen && clock_->Now() < open_until_;
}

bool CircuitBreaker::NotClosed() {
  MutexLock l(&mu_);
  return state_ != State::kClosed;
}

}  // namespace inferd
