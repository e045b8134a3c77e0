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

#include "common/logging.h"
#include "common/mutex.h"

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

struct Server::Impl {
  Options options;
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
  awaitable<void> RunSession(tcp::socket socket, IoWorker* worker);
  using RequestParser = beast_http::request_parser<beast_http::string_body>;
  awaitable<bool> ServeOne(Session& s, beast::flat_buffer& buf);
  awaitable<error_code> ReadRequest(Session& s, beast::flat_buffer& buf, RequestParser& parser,
                                    bool* expired);
  awaitable<error_code> WriteResponse(Session& s, Response& res);
  awaitable<void> WriteError(Session& s, Status status, std::string_view message);
  void RequestStarted() { in_progress.fetch_add(1); }
  void RequestFinished() {
    if (in_progress.fetch_sub(1) == 1) {
      MutexLock l(&mu);
      idle_cv.SignalAll();
    }
  }
};

awaitable<void> Server::Impl::AcceptLoop() {
  for (;;) {
    IoWorker* w = workers[next_worker++ % workers.size()].get();
    error_code ec;
    tcp::socket socket =
        co_await acceptor->async_accept(w->ioc, asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
    if (ec) {
      // E.g. out of file descriptors: back off briefly rather than spin.
      INFERD_LOG_WARN("accept failed: {}", ec.message());
      asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    asio::co_spawn(w->ioc, RunSession(std::move(socket), w), asio::detached);
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

// Reads one request into `parser`. What is already buffered is parsed
// synchronously (a small request that arrived whole costs no further I/O
// and no timer); otherwise the rest is read under the read deadline, which
// cancels the reads instead of closing the socket (as tcp_stream's own
// expiry would), so that the client still gets its 408.
awaitable<error_code> Server::Impl::ReadRequest(Session& s, beast::flat_buffer& buf,
                                                RequestParser& parser, bool* expired) {
  error_code ec;
  parser.eager(true);
  while (buf.size() > 0 && !parser.is_done()) {
    size_t n = parser.put(buf.data(), ec);
    buf.consume(n);
    if (ec == beast_http::error::need_more) {
      ec = {};
      break;
    }
    if (ec || n == 0) break;
  }
  if (ec || parser.is_done()) co_return ec;

  s.stream.expires_never();
  auto deadline = std::make_shared<ReadDeadline>();
  asio::steady_timer timer(s.stream.get_executor(), options.read_timeout);
  timer.async_wait([deadline, &s](error_code tec) {
    if (tec || deadline->finished) return;  // `s` is alive while the read is unfinished
    deadline->expired = true;
    error_code ignored;
    s.stream.socket().cancel(ignored);
  });
  if (!parser.is_header_done()) {
    co_await beast_http::async_read_header(s.stream, buf, parser,
                                           asio::redirect_error(use_awaitable, ec));
  }
  if (!ec && !parser.is_done() && parser.get()[beast_http::field::expect] == "100-continue" &&
      parser.content_length().value_or(0) <= options.max_body_bytes) {
    beast_http::response<beast_http::empty_body> cont{Status::continue_, 11};
    co_await beast_http::async_write(s.stream, cont, asio::redirect_error(use_awaitable, ec));
  }
  if (!ec && !parser.is_done()) {
    co_await beast_http::async_read(s.stream, buf, parser, asio::redirect_error(use_awaitable, ec));
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
  error_code ec;
  beast_http::request_parser<beast_http::string_body> parser;
  parser.header_limit(static_cast<uint32_t>(options.max_header_bytes));
  parser.body_limit(options.max_body_bytes);
  bool expired = false;
  ec = co_await ReadRequest(s, buf, parser, &expired);
  if (ec) {
    if (expired) {
      co_await WriteError(s, Status::request_timeout,
                          "request not received completely within " +
                              std::to_string(options.read_timeout.count()) + " ms");
    } else if (ec == beast_http::error::body_limit) {
      co_await WriteError(s, Status::payload_too_large,
                          "request body exceeds the limit of " +
                              std::to_string(options.max_body_bytes) + " bytes (max_body_bytes)");
    } else if (ec == beast_http::error::header_limit) {
      co_await WriteError(
          s, Status::request_header_fields_too_large,
          "request header exceeds " + std::to_string(options.max_header_bytes) + " bytes");
    } else if (ec != beast_http::error::end_of_stream && ec != beast_http::error::partial_message &&
               ec != asio::error::eof && ec != asio::error::connection_reset &&
               ec != asio::error::operation_aborted) {
      co_await WriteError(s, Status::bad_request, "malformed HTTP request: " + ec.message());
    }
    co_return false;
  }

  Request req = parser.release();
  bool keep_alive = req.keep_alive();
  unsigned version = req.version();
  RequestStarted();
  Response res;
  std::string_view target(req.target().data(), req.target().size());
  Router::Match m = router->Find(req.method(), target);
  if (!m.handler) {
    if (m.status == Status::method_not_allowed) {
      res = MakeErrorResponse(m.status, "method " + std::string(req.method_string()) +
                                            " is not allowed on " + std::string(target));
      res.set(beast_http::field::allow, m.allow);
    } else {
      res = MakeErrorResponse(Status::not_found, "no such path: " + std::string(target));
    }
  } else {
    auto pending = std::make_shared<PendingResponse>();
    (*m.handler)(std::move(req), m.params,
                 Responder([pending](Response r) { pending->Deliver(std::move(r)); }));
    if (auto ready = pending->Take()) {
      res = std::move(*ready);
    } else {
      res = co_await AsyncAwait(std::move(pending), use_awaitable);
    }
  }
  keep_alive = keep_alive && !draining.load();
  res.version(version == 10 ? 10 : 11);
  res.keep_alive(keep_alive);
  res.set(beast_http::field::server, "inferd");
  res.prepare_payload();
  CountResponse(res.result_int());
  ec = co_await WriteResponse(s, res);
  RequestFinished();
  co_return !ec && keep_alive;
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
    IoWorker* w;
    std::list<Session*>::iterator it;
    ~Unlink() { w->sessions.erase(it); }
  } unlink{worker, it};

  beast::flat_buffer buf;
  s.idle_since = std::chrono::steady_clock::now();
  ArmIdleTimer(session, s.idle_since + options.idle_timeout);
  // A connection's first request is served even during a drain: the client
  // connected before the listener closed and has likely sent it already.
  for (bool first = true; first || !draining.load(); first = false) {
    if (buf.size() == 0) {
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

Server::~Server() { Stop(); }

StatusOr<std::unique_ptr<Server>> Server::Create(const Options& options, const Router* router) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->router = router;
  if (options.registry) {
    impl->responses = options.registry->AddCounter("inferd_http_responses_total",
                                                   "HTTP responses sent, by status code", {"code"});
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
  asio::co_spawn(impl_->workers[0]->ioc, impl_->AcceptLoop(), asio::detached);
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
        if (!ec) asio::co_spawn(w->ioc, impl_->RunSession(std::move(socket), w), asio::detached);
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

void Server::Stop() {
  for (auto& w : impl_->workers) w->ioc.stop();
  for (auto& w : impl_->workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

}  // namespace inferd::http
