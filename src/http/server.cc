#include "http/server.h"

// clang-format off
#include <utility>  // before Asio (Boost 1.74 + GCC 12)
// clang-format on

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <future>
#include <list>
#include <map>
#include <optional>
#include <thread>

#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/logging.h"
#include "common/mutex.h"
#include "http/request_reader.h"

namespace inferd::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;

struct Session;

// One I/O thread with its own io_context; its sessions are touched only on it.
struct IoWorker {
  std::list<Session*> sessions;  // declared before ioc: outlives the coroutines
  asio::io_context ioc{1};
  std::thread thread;
};

// Shared between a request read and its deadline timer's handler, which may
// run after the read finished (both on the connection's thread).
struct ReadDeadline {
  bool finished = false;
  bool expired = false;
};

struct Session {
  explicit Session(tcp::socket s) : stream(std::move(s)), idle_timer(stream.get_executor()) {}
  beast::tcp_stream stream;
  bool idle = true;
  // Idle timeout, checked lazily: the timer is not moved per request; when
  // it fires it closes the connection if it has been waiting for a request
  // since `idle_since` for the whole timeout, else re-arms for what is left.
  asio::steady_timer idle_timer;
  std::chrono::steady_clock::time_point idle_since;
};

// A handler's answer on its way back to its connection. Handlers that
// answer before returning (cache hits, early errors) hand it over inline and
// the coroutine goes on without suspending; the others deliver it later,
// from any thread, and the coroutine waits for it.
class PendingResponse {
 public:
  using Resume = std::function<void(Response)>;

  void Deliver(Response res) EXCLUDES(mu_) {
    Resume resume;
    {
      MutexLock l(&mu_);
      if (!resume_) {
        response_ = std::move(res);
        return;
      }
      resume = std::move(resume_);
    }
    resume(std::move(res));
  }

  // The response if it was delivered already.
  std::optional<Response> Take() EXCLUDES(mu_) {
    MutexLock l(&mu_);
    return std::exchange(response_, std::nullopt);
  }

  // Calls `resume` with the response: now if it is there, else on delivery.
  void OnDelivered(Resume resume) EXCLUDES(mu_) {
    std::optional<Response> ready;
    {
      MutexLock l(&mu_);
      if (!response_) {
        resume_ = std::move(resume);
        return;
      }
      ready = std::exchange(response_, std::nullopt);
    }
    resume(std::move(*ready));
  }

 private:
  Mutex mu_;
  std::optional<Response> response_ GUARDED_BY(mu_);
  Resume resume_ GUARDED_BY(mu_);
};

// Suspends the calling coroutine until `pending` is delivered; it resumes on
// its own executor.
template <typename Token>
auto AsyncAwait(std::shared_ptr<PendingResponse> pending, Token&& token) {
  return asio::async_initiate<Token, void(Response)>(
      [](auto completion, std::shared_ptr<PendingResponse> pending) {
        using Completion = decltype(completion);
        auto work = asio::prefer(asio::get_associated_executor(completion),
                                 asio::execution::outstanding_work.tracked);
        auto holder = std::make_shared<std::optional<Completion>>(std::move(completion));
        pending->OnDelivered([holder, work](Response res) {
          asio::post(work, [holder, res = std::move(res)]() mutable {
            Completion c = std::move(**holder);
            holder->reset();
            std::move(c)(std::move(res));
          });
        });
      },
      token, std::move(pending));
}

}  // namespace

// Body reads take up to this much at a time.
constexpr size_t kReadChunk = 64u << 10;

struct Server::Impl {
  Options options;
  RequestReader::Options reader_options;
  const Router* router = nullptr;
  std::vector<std::unique_ptr<IoWorker>> workers;
  std::optional<tcp::acceptor> acceptor;
  uint16_t port = 0;
  std::atomic<bool> draining{false};
  std::atomic<size_t> next_worker{0};
  // Requests being served. Counted without a lock; the last one out takes
  // `mu` to signal, so a WaitIdle that saw a count above zero under `mu`
  // cannot miss the wake-up.
  std::atomic<int64_t> in_progress{0};
  Mutex mu;
  CondVar idle_cv;
  Family<Counter>* responses = nullptr;  // by status code; null without a registry
  // Optional metrics (null without a registry).
  Counter* internal_errors = nullptr;  // exceptions turned into 500s
  Counter* rejected_connections = nullptr;
  RateLimitedLog internal_error_log;
  RateLimitedLog accept_error_log;
  // Open connections, and the limit beyond which new ones get a 503.
  std::atomic<int64_t> connections{0};
  int64_t max_connections = 0;
  // A spare descriptor, given up to take (and refuse) one connection when
  // the process has run out of descriptors; -1 while given up. Accept loop
  // only.
  int reserve_fd = -1;
  // The most connections open since memory was last given back (accept
  // loop's thread only); see TrimLoop.
  int64_t trim_peak = 0;
  // When CloseIdleSessions last ran (accept loop's thread only).
  std::chrono::steady_clock::time_point last_reclaim{};

  // The counters by status code, resolved once each: no lock per response.
  std::array<std::atomic<Counter*>, 600> response_counters{};
  void CountResponse(unsigned code) {
    if (!responses) return;
    if (code >= response_counters.size()) {
      responses->WithLabels({std::to_string(code)})->Increment();
      return;
    }
    Counter* c = response_counters[code].load(std::memory_order_acquire);
    if (!c) {  // racing threads store the same pointer
      c = responses->WithLabels({std::to_string(code)});
      response_counters[code].store(c, std::memory_order_release);
    }
    c->Increment();
  }

  // Arms the session's idle timer for `at` (see Session::idle_timer). The
  // handler holds the session weakly: a timer that already fired may still
  // run after the session ended (cancel() cannot recall it).
  void ArmIdleTimer(const std::shared_ptr<Session>& session,
                    std::chrono::steady_clock::time_point at) {
    session->idle_timer.expires_at(at);
    session->idle_timer.async_wait([this, weak = std::weak_ptr<Session>(session)](error_code ec) {
      auto s = weak.lock();
      if (ec || !s) return;  // cancelled, or the session is gone
      auto now = std::chrono::steady_clock::now();
      if (!s->idle) {  // serving a request: look again one timeout later
        ArmIdleTimer(s, now + options.idle_timeout);
      } else if (now >= s->idle_since + options.idle_timeout) {
        error_code ignored;
        s->stream.socket().cancel(ignored);  // ends the wait for a request
        // Armed again in case the read had completed already and the
        // session goes on; cancelled when the session ends.
        ArmIdleTimer(s, now + options.idle_timeout);
      } else {
        ArmIdleTimer(s, s->idle_since + options.idle_timeout);
      }
    });
  }

  awaitable<void> AcceptLoop();
  awaitable<void> TrimLoop();
  awaitable<void> RunSession(tcp::socket socket, IoWorker* worker);
  awaitable<bool> ServeOne(Session& s, beast::flat_buffer& buf);
  std::optional<Response> Dispatch(Request req, std::shared_ptr<PendingResponse>* pending);
  Response InternalError(std::string_view what);
  awaitable<error_code> ReadRequest(Session& s, beast::flat_buffer& buf, RequestReader& reader,
                                    bool* expired);
  awaitable<error_code> WriteResponse(Session& s, Response& res);
  awaitable<void> WriteError(Session& s, Status status, std::string_view message);
  void StartSession(tcp::socket socket, IoWorker* w);
  awaitable<void> Refuse(tcp::socket socket);
  void RefuseNow(tcp::socket& socket);
  void CloseIdleSessions();
  void RequestStarted() { in_progress.fetch_add(1); }
  void RequestFinished() {
    if (in_progress.fetch_sub(1) == 1) {
      MutexLock l(&mu);
      idle_cv.SignalAll();
    }
  }
};

static void LogSessionEnd(std::exception_ptr e) {
  if (!e) return;
  static RateLimitedLog log;
  int64_t suppressed = 0;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    if (log.ShouldLog(&suppressed)) {
      INFERD_LOG_ERROR("connection ended by an exception: {} ({} similar suppressed)", ex.what(),
                       suppressed);
    }
  } catch (...) {
    if (log.ShouldLog(&suppressed)) INFERD_LOG_ERROR("connection ended by an unknown exception");
  }
}

awaitable<void> Server::Impl::AcceptLoop() {
  for (;;) {
    IoWorker* w = workers[next_worker++ % workers.size()].get();
    error_code ec;
    tcp::socket socket =
        co_await acceptor->async_accept(w->ioc, asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
    if (ec) {
      int64_t suppressed = 0;
      if (accept_error_log.ShouldLog(&suppressed)) {
        INFERD_LOG_WARN("accept failed: {} ({} similar suppressed)", ec.message(), suppressed);
      }
      if (ec == asio::error::no_descriptors && reserve_fd >= 0) {
        // Out of descriptors: the client would wait unanswered in the
        // kernel's queue. Free the spare one, take the client, refuse it.
        ::close(reserve_fd);
        tcp::socket refused(w->ioc);
        error_code aec;
        acceptor->accept(refused, aec);
        if (!aec) RefuseNow(refused);
        reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        continue;
      }
      // Back off briefly rather than spin.
      asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    if (connections.load() >= max_connections) {
      // Make room for the next ones, at most 10 times a second: a flood of
      // new connections must not keep closing other clients' connections.
      auto now = std::chrono::steady_clock::now();
      if (now - last_reclaim >= std::chrono::milliseconds(100)) {
        last_reclaim = now;
        CloseIdleSessions();
      }
      asio::co_spawn(w->ioc, Refuse(std::move(socket)), LogSessionEnd);
      continue;
    }
    StartSession(std::move(socket), w);
    trim_peak = std::max(trim_peak, connections.load());
  }
}

// Gives the memory of closed connections back to the OS. Each connection
// costs a few KiB (coroutine frame, session, buffers) from the I/O threads'
// malloc arenas, which glibc keeps after they are freed: 20,000 connections
// that came and went left over 100 MiB behind. Every 5 s, if at least 256
// connections closed since the peak, malloc_trim returns the free pages
// (a few milliseconds on this thread, only after such a drop).
awaitable<void> Server::Impl::TrimLoop() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_after(std::chrono::seconds(5));
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    int64_t now = connections.load();
    if (trim_peak - now >= 256) {
      malloc_trim(0);
      trim_peak = now;
    }
  }
}

void Server::Impl::StartSession(tcp::socket socket, IoWorker* w) {
  connections.fetch_add(1);
  asio::co_spawn(w->ioc, RunSession(std::move(socket), w), LogSessionEnd);
}

// The answer to a connection over http_max_connections.
static std::string RefusalBytes() {
  std::string body = "{\"error\":\"too many connections (http_max_connections); retry later\"}";
  return "HTTP/1.1 503 Service Unavailable\r\nServer: inferd\r\nContent-Type: "
         "application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Sends the 503 without waiting (it fits any socket buffer) and closes.
void Server::Impl::RefuseNow(tcp::socket& socket) {
  if (rejected_connections) rejected_connections->Increment();
  CountResponse(503);
  static const std::string kBytes = RefusalBytes();
  error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(asio::buffer(kBytes), ec);
  socket.shutdown(tcp::socket::shutdown_send, ec);
  // Drop what already arrived, so that closing does not reset the answer.
  std::array<char, 4096> sink;
  for (int i = 0; i < 16; ++i) {
    socket.read_some(asio::buffer(sink), ec);
    if (ec) break;
  }
  socket.close(ec);
}

// Refuses a connection: the 503, then a short lingering close so that the
// client reads it, bounded to 200 ms.
awaitable<void> Server::Impl::Refuse(tcp::socket socket) {
  if (rejected_connections) rejected_connections->Increment();
  CountResponse(503);
  static const std::string kBytes = RefusalBytes();
  beast::tcp_stream stream(std::move(socket));
  error_code ec;
  stream.expires_after(std::chrono::milliseconds(200));
  co_await asio::async_write(stream, asio::buffer(kBytes), asio::redirect_error(use_awaitable, ec));
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  std::array<char, 4096> sink;
  for (int i = 0; i < 16 && !ec; ++i) {
    co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(use_awaitable, ec));
  }
  stream.socket().close(ec);
}

// At the connection limit: closes the longest-idle keep-alive connections
// (up to 8 per I/O thread), as nginx reuses its idle connections.
void Server::Impl::CloseIdleSessions() {
  for (auto& w : workers) {
    IoWorker* raw = w.get();
    asio::post(raw->ioc, [raw] {
      std::vector<Session*> idle;
      for (Session* s : raw->sessions) {
        if (s->idle) idle.push_back(s);
      }
      std::sort(idle.begin(), idle.end(),
                [](Session* a, Session* b) { return a->idle_since < b->idle_since; });
      if (idle.size() > 8) idle.resize(8);
      for (Session* s : idle) {
        error_code ignored;
        s->stream.socket().cancel(ignored);
      }
    });
  }
}

awaitable<void> Server::Impl::WriteError(Session& s, Status status, std::string_view message) {
  Response res = MakeErrorResponse(status, message);
  CountResponse(static_cast<unsigned>(status));
  res.set(beast_http::field::server, "inferd");
  res.keep_alive(false);
  res.prepare_payload();
  error_code ec;
  s.stream.expires_after(options.write_timeout);
  co_await beast_http::async_write(s.stream, res, asio::redirect_error(use_awaitable, ec));
  // Lingering close: stop sending, then discard what the client still sends
  // for a moment, so that it reads our answer instead of a reset.
  s.stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  std::array<char, 4096> sink;
  s.stream.expires_after(std::chrono::milliseconds(500));
  for (size_t total = 0; total < (4u << 20);) {
    size_t n = co_await s.stream.async_read_some(asio::buffer(sink),
                                                 asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    total += n;
  }
}

// Reads one request into `reader`. What is already buffered is parsed
// synchronously (a small request that arrived whole costs no further I/O
// and no timer); otherwise the rest is read under the read deadline, which
// cancels the reads instead of closing the socket, so that the client still
// gets its 408. Returns the I/O error that ended the read, if any; the
// reader holds a protocol error.
awaitable<error_code> Server::Impl::ReadRequest(Session& s, beast::flat_buffer& buf,
                                                RequestReader& reader, bool* expired) {
  auto feed = [&] {
    auto data = buf.data();
    buf.consume(reader.Feed({static_cast<const char*>(data.data()), data.size()}));
  };
  feed();
  if (reader.done() || reader.error()) co_return error_code{};

  auto deadline = std::make_shared<ReadDeadline>();
  asio::steady_timer timer(s.stream.get_executor(), options.read_timeout);
  timer.async_wait([deadline, &s](error_code tec) {
    if (tec || deadline->finished) return;  // `s` is alive while the read is unfinished
    deadline->expired = true;
    error_code ignored;
    s.stream.socket().cancel(ignored);
  });
  error_code ec;
  bool continue_sent = false;
  while (!reader.done() && !reader.error()) {
    if (!continue_sent && reader.wants_continue()) {
      continue_sent = true;
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      co_await asio::async_write(s.stream.socket(), asio::buffer(kContinue),
                                 asio::redirect_error(use_awaitable, ec));
      if (ec) break;
    }
    // Header bytes stay buffered until the header is complete (bounded by
    // max_header_bytes); body bytes are consumed as they arrive.
    size_t n = co_await s.stream.socket().async_read_some(buf.prepare(kReadChunk),
                                                          asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    buf.commit(n);
    feed();
  }
  deadline->finished = true;
  timer.cancel();
  *expired = deadline->expired;
  co_return ec;
}

// Writes `res` as one buffer sequence: first a direct non-blocking write,
// which sends a small response at once on an idle socket, then, only for
// what is left, an asynchronous write under the write timeout.
awaitable<error_code> Server::Impl::WriteResponse(Session& s, Response& res) {
  std::string head;
  head.reserve(256);
  head += res.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  head += std::to_string(res.result_int());
  head += ' ';
  head.append(res.reason().data(), res.reason().size());
  head += "\r\n";
  for (const auto& field : res.base()) {
    head.append(field.name_string().data(), field.name_string().size());
    head += ": ";
    head.append(field.value().data(), field.value().size());
    head += "\r\n";
  }
  head += "\r\n";
  std::array<asio::const_buffer, 2> wire = {asio::buffer(head), asio::buffer(res.body())};
  size_t total = head.size() + res.body().size();
  error_code ec;
  size_t sent = s.stream.socket().write_some(wire, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec = {};
    sent = 0;
  }
  if (ec || sent == total) co_return ec;
  asio::const_buffer rest_head = asio::buffer(head) + std::min(sent, head.size());
  asio::const_buffer rest_body =
      asio::buffer(res.body()) + (sent > head.size() ? sent - head.size() : 0);
  std::array<asio::const_buffer, 2> rest = {rest_head, rest_body};
  s.stream.expires_after(options.write_timeout);
  co_await asio::async_write(s.stream, rest, asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

// Reads and answers one request. Returns false when the connection must close.
awaitable<bool> Server::Impl::ServeOne(Session& s, beast::flat_buffer& buf) {
  RequestReader reader(reader_options);
  bool expired = false;
  error_code ec = co_await ReadRequest(s, buf, reader, &expired);
  if (expired) {
    co_await WriteError(s, Status::request_timeout,
                        "request not received completely within " +
                            std::to_string(options.read_timeout.count()) + " ms");
    co_return false;
  }
  if (reader.error()) {
    co_await WriteError(s, reader.error()->status, reader.error()->message);
    co_return false;
  }
  if (ec || !reader.done()) co_return false;  // the client went away

  Request req = reader.Release();
  bool keep_alive = req.keep_alive();
  unsigned version = req.version();
  bool head = req.method() == Verb::head;
  RequestStarted();
  struct Finished {
    Impl* impl;
    ~Finished() { impl->RequestFinished(); }
  } finished{this};
  Response res;
  std::string failure;
  std::shared_ptr<PendingResponse> pending;
  try {
    // Most answers are there when the handler returns (errors, cache hits):
    // no suspension and no coroutine frame for those.
    if (auto ready = Dispatch(std::move(req), &pending)) {
      res = std::move(*ready);
    } else {
      res = co_await AsyncAwait(std::move(pending), use_awaitable);
    }
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown exception";
  }
  if (!failure.empty()) res = InternalError(failure);
  keep_alive = keep_alive && !draining.load();
  res.version(version == 10 ? 10 : 11);
  res.keep_alive(keep_alive);
  res.set(beast_http::field::server, "inferd");
  res.prepare_payload();
  if (head) res.body().clear();  // HEAD: GET's header, Content-Length included
  CountResponse(res.result_int());
  ec = co_await WriteResponse(s, res);
  co_return !ec && keep_alive;
}

// Routes `req` and calls its handler. Returns the response if it is there
// already; otherwise *pending receives what to wait for. An exception thrown
// by the handler becomes a 500; one thrown later, on another thread, is the
// handler's to catch (the Responder answers 500 if it is dropped unsent).
std::optional<Response> Server::Impl::Dispatch(Request req,
                                               std::shared_ptr<PendingResponse>* pending) {
  std::string_view target(req.target().data(), req.target().size());
  Router::Match m = router->Find(req.method(), target);
  if (!m.handler) {
    if (m.status == Status::method_not_allowed) {
      Response res = MakeErrorResponse(m.status, "method " + std::string(req.method_string()) +
                                                     " is not allowed on " + std::string(target));
      res.set(beast_http::field::allow, m.allow);
      return res;
    }
    if (m.status == Status::bad_request) return MakeErrorResponse(m.status, m.error);
    return MakeErrorResponse(Status::not_found, "no such path: " + std::string(target));
  }
  auto waiting = std::make_shared<PendingResponse>();
  {
    // Held only around the call: if the handler drops its copy unsent, the
    // Responder's last copy goes and answers 500 instead of hanging.
    Responder responder([waiting](Response r) { waiting->Deliver(std::move(r)); });
    try {
      (*m.handler)(std::move(req), m.params, responder);
    } catch (const std::exception& e) {
      responder.Send(InternalError(e.what()));
    } catch (...) {
      responder.Send(InternalError("unknown exception"));
    }
  }
  if (auto ready = waiting->Take()) return ready;
  *pending = std::move(waiting);
  return std::nullopt;
}

Response Server::Impl::InternalError(std::string_view what) {
  if (internal_errors) internal_errors->Increment();
  int64_t suppressed = 0;
  if (internal_error_log.ShouldLog(&suppressed)) {
    INFERD_LOG_ERROR("request failed with an exception: {} ({} similar suppressed)", what,
                     suppressed);
  }
  return MakeErrorResponse(Status::internal_server_error, "internal error: " + std::string(what));
}

awaitable<void> Server::Impl::RunSession(tcp::socket socket, IoWorker* worker) {
  error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  socket.non_blocking(true, ec);  // WriteResponse writes directly first
  // Shared only with the idle timer's handler, which holds it weakly.
  auto session = std::make_shared<Session>(std::move(socket));
  Session& s = *session;
  auto it = worker->sessions.insert(worker->sessions.end(), &s);
  struct Unlink {
    Impl* impl;
    IoWorker* w;
    std::list<Session*>::iterator it;
    ~Unlink() {
      w->sessions.erase(it);
      impl->connections.fetch_sub(1);
    }
  } unlink{this, worker, it};

  beast::flat_buffer buf;
  s.idle_since = std::chrono::steady_clock::now();
  ArmIdleTimer(session, s.idle_since + options.idle_timeout);
  // A connection's first request is served even during a drain: the client
  // connected before the listener closed and has likely sent it already.
  for (bool first = true; first || !draining.load(); first = false) {
    if (buf.size() == 0) {
      // An idle connection keeps no large buffer from its last request.
      if (buf.capacity() > 16384) buf.shrink_to_fit();
      s.idle = true;
      s.idle_since = std::chrono::steady_clock::now();
      // On the socket itself: the idle timer, not the stream's (which is
      // only set around the stream's own reads and writes), bounds this wait.
      size_t n = co_await s.stream.socket().async_read_some(
          buf.prepare(8192), asio::redirect_error(use_awaitable, ec));
      s.idle = false;
      if (ec == asio::error::operation_aborted && draining.load()) {
        // A drain cancelled the wait; if a request had already arrived,
        // serve it (with Connection: close) rather than drop it.
        error_code aec;
        if (s.stream.socket().available(aec) > 0 && !aec) {
          co_await ServeOne(s, buf);
        }
        break;
      }
      if (ec) break;  // closed or idle timeout
      buf.commit(n);
    }
    s.idle = false;
    if (!co_await ServeOne(s, buf)) break;
  }
  s.idle_timer.cancel();
  s.stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  s.stream.socket().close(ec);
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  Stop();
  if (impl_->reserve_fd >= 0) ::close(impl_->reserve_fd);
}

static int64_t DefaultMaxConnections() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 65536;
  int64_t fds = static_cast<int64_t>(rl.rlim_cur);
  // Headroom for the disk tier's files, Redis, upstreams, logs and models.
  int64_t headroom = std::max<int64_t>(256, fds / 8);
  return std::max<int64_t>(16, fds - headroom);
}

StatusOr<std::unique_ptr<Server>> Server::Create(const Options& options, const Router* router) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->reader_options.max_body_bytes = options.max_body_bytes;
  impl->reader_options.max_header_bytes = options.max_header_bytes;
  impl->router = router;
  impl->max_connections =
      options.max_connections > 0 ? options.max_connections : DefaultMaxConnections();
  impl->reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (Registry* r = options.registry) {
    impl->responses = r->AddCounter("inferd_http_responses_total",
                                    "HTTP responses sent, by status code", {"code"});
    impl->internal_errors =
        r->AddCounter("inferd_http_internal_errors_total",
                      "Requests answered 500 because of an unexpected exception", {})
            ->WithLabels({});
    impl->rejected_connections =
        r->AddCounter("inferd_http_rejected_connections_total",
                      "Connections refused with 503 over http_max_connections", {})
            ->WithLabels({});
    // Sampled when /metrics is read, so the request path writes no shared
    // gauge (only the counts it keeps anyway).
    Gauge* in_progress_gauge = r->AddGauge("inferd_http_requests_in_progress",
                                           "HTTP requests read and not yet answered", {})
                                   ->WithLabels({});
    Gauge* connections_gauge =
        r->AddGauge("inferd_http_connections", "Open HTTP connections", {})->WithLabels({});
    Impl* raw = impl.get();
    r->AddCollectHook([raw, in_progress_gauge, connections_gauge] {
      in_progress_gauge->Set(static_cast<double>(raw->in_progress.load()));
      connections_gauge->Set(static_cast<double>(raw->connections.load()));
    });
  }
  int threads = std::max(1, options.threads);
  for (int i = 0; i < threads; ++i) impl->workers.push_back(std::make_unique<IoWorker>());
  error_code ec;
  auto addr = asio::ip::make_address(options.host, ec);
  if (ec) return InvalidArgumentError("invalid host '" + options.host + "': " + ec.message());
  tcp::endpoint ep(addr, options.port);
  impl->acceptor.emplace(impl->workers[0]->ioc);
  impl->acceptor->open(ep.protocol(), ec);
  if (!ec) impl->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor->bind(ep, ec);
  if (!ec) impl->acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return UnavailableError("cannot listen on " + options.host + ":" +
                            std::to_string(options.port) + ": " + ec.message());
  }
  impl->port = impl->acceptor->local_endpoint().port();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const { return impl_->port; }

void Server::Start() {
  asio::co_spawn(impl_->workers[0]->ioc, impl_->AcceptLoop(), LogSessionEnd);
  asio::co_spawn(impl_->workers[0]->ioc, impl_->TrimLoop(), LogSessionEnd);
  for (auto& w : impl_->workers) {
    IoWorker* raw = w.get();
    raw->thread = std::thread([raw] {
      auto guard = asio::make_work_guard(raw->ioc);
      raw->ioc.run();
    });
  }
}

void Server::StopAccepting() {
  std::promise<void> done;
  auto fut = done.get_future();
  asio::post(impl_->workers[0]->ioc, [this, &done] {
    error_code ec;
    if (impl_->acceptor) {
      // Take the connections the kernel already completed (the clients
      // think they are connected and may have sent a request), then close.
      impl_->acceptor->non_blocking(true, ec);
      for (int i = 0; i < 4096 && !ec; ++i) {
        IoWorker* w = impl_->workers[impl_->next_worker++ % impl_->workers.size()].get();
        tcp::socket socket(w->ioc);
        impl_->acceptor->accept(socket, ec);
        if (!ec) impl_->StartSession(std::move(socket), w);
      }
      impl_->acceptor->close(ec);
    }
    done.set_value();
  });
  fut.wait();
}

void Server::BeginDrain() {
  impl_->draining = true;
  for (auto& w : impl_->workers) {
    IoWorker* raw = w.get();
    asio::post(raw->ioc, [raw] {
      for (Session* s : raw->sessions) {
        if (s->idle) s->stream.cancel();
      }
    });
  }
}

bool Server::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  MutexLock l(&impl_->mu);
  while (impl_->in_progress.load() > 0) {
    if (!impl_->idle_cv.WaitUntil(&impl_->mu, deadline) && impl_->in_progress.load() > 0) {
      return false;
    }
  }
  return true;
}

int64_t Server::requests_in_progress() const { return impl_->in_progress.load(); }

int64_t Server::max_connections() const { return impl_->max_connections; }

void Server::Stop() {
  for (auto& w : impl_->workers) w->ioc.stop();
  for (auto& w : impl_->workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

}  // namespace inferd::http
