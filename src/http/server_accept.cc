#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/memory_trim.h"
#include "http/server_impl.h"
#include "http/socket_calls.h"

namespace inferd::http {

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

AcceptedFd::~AcceptedFd() {
  if (fd_ >= 0) ::close(fd_);
}

bool AcceptedFd::AssignTo(Socket& socket, const tcp& protocol) {
  error_code ec;
  socket.assign(protocol, fd_, ec);
  if (ec) return false;  // still ours: closed by the destructor
  fd_ = -1;
  return true;
}

int Server::Impl::AcceptNow() {
  for (;;) {
    const int fd = ::accept4(acceptor->native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    // A connection that ended while queued, or a signal: try the next one
    // (as Asio's accept does).
    if (fd < 0 && (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)) continue;
    return fd;
  }
}

// Accepts on workers[0] and hands each connection's descriptor to the next
// I/O thread, which makes its socket (see IoWorker).
awaitable<void> Server::Impl::AcceptLoop() {
  // After this many connections accepted in a row, the loop lets the
  // thread's other handlers run (its sessions, timers) before going on.
  constexpr int kAcceptedBeforeYield = 32;
  int in_a_row = 0;
  for (;;) {
    if (++in_a_row > kAcceptedBeforeYield) {
      in_a_row = 0;
      co_await asio::post(co_await asio::this_coro::executor, use_awaitable);
      if (!acceptor->is_open()) co_return;
    }
    const int fd = AcceptNow();
    if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      error_code ec;
      co_await acceptor->async_wait(tcp::acceptor::wait_read,
                                    asio::redirect_error(use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      in_a_row = 0;
      if (!ec) continue;
      errno = ec.value();
    }
    if (fd < 0) {
      const int err = errno;
      int64_t suppressed = 0;
      if (accept_error_log.ShouldLog(&suppressed)) {
        INFERD_LOG_WARN("accept failed: {} ({} similar suppressed)", std::strerror(err),
                        suppressed);
      }
      if ((err == EMFILE || err == ENFILE) && reserve_fd >= 0) {
        // Out of descriptors: the client would wait unanswered in the
        // kernel's queue. Free the spare one, take the client, refuse it.
        ::close(reserve_fd);
        const int refused = AcceptNow();
        if (refused >= 0) RefuseNow(refused);
        reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        continue;
      }
      // Back off briefly rather than spin.
      error_code ec;
      Timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      if (!acceptor->is_open()) co_return;  // StopAccepting closed it meanwhile
      continue;
    }
    AcceptedFd accepted(fd);
    IoWorker* w = workers[next_worker++ % workers.size()].get();
    if (connections.load() >= max_connections) {
      // Make room for the next ones, at most 10 times a second: a flood of
      // new connections must not keep closing other clients' connections.
      auto now = std::chrono::steady_clock::now();
      if (now - last_reclaim >= std::chrono::milliseconds(100)) {
        last_reclaim = now;
        CloseIdleSessions();
      }
      asio::co_spawn(w->ioc, Refuse(std::move(accepted), w), LogSessionEnd);
      continue;
    }
    StartSession(std::move(accepted), w);
    trim_peak = std::max(trim_peak, connections.load());
  }
}

// Gives the memory of closed connections back to the OS. Each connection
// costs a few KiB (coroutine frame, session, buffers) from the I/O threads'
// malloc arenas, which glibc keeps after they are freed: 20,000 connections
// that came and went left over 100 MiB behind. Every 5 s, if at least 256
// connections closed since the peak, the trimmer thread runs malloc_trim,
// which returns the free pages.
awaitable<void> Server::Impl::TrimLoop() {
  Timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_after(std::chrono::seconds(5));
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    int64_t now = connections.load();
    if (trim_peak - now >= 256) {
      trim_peak = now;
      {
        MutexLock l(&trim_mu);
        trim_requested = true;
      }
      trim_cv.Signal();
    }
  }
}

// Wakes the connections waiting on a socket that holds what epoll will not
// report again: DrainedReads takes a short read for an empty socket (as
// nginx does), so a client whose end of stream (or a reset) came under the
// same event as its last request waits with its end of stream unread.
// nginx learns it from EPOLLRDHUP, which Asio's reactor does not pass on.
// Each check asks poll(2) once about the waits that began since the last
// check (a later arrival raises a new event), and cancels those that have
// anything, so that they read again (Session::poked).
awaitable<void> Server::Impl::IdleCheckLoop(IoWorker* w) {
  Timer timer(co_await asio::this_coro::executor);
  auto last = std::chrono::steady_clock::time_point::min();
  std::vector<pollfd> fds;
  std::vector<Session*> polled;
  bool warned = false;
  for (;;) {
    timer.expires_after(options.idle_check_interval);
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    // On the clock of idle_since: a wait that begins after this read has
    // an idle_since of at least `now`, and is asked about next time.
    const auto now = CoarseSteadyNow();
    fds.clear();
    polled.clear();
    for (Session* s : w->sessions) {
      if (!s->idle || s->idle_since < last) continue;
      fds.push_back({s->stream.socket().native_handle(), POLLIN | POLLRDHUP, 0});
      polled.push_back(s);
    }
    const int ready = fds.empty() ? 0 : ::poll(fds.data(), fds.size(), 0);
    if (ready < 0 && errno == EINTR) continue;  // these waits are asked about next time
    if (ready < 0 && !warned) {                 // the idle timeout still bounds these waits
      warned = true;
      INFERD_LOG_WARN("idle connection check: poll failed: {}", std::strerror(errno));
    }
    last = now;
    if (ready <= 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      polled[i]->poked = true;
      polled[i]->stream.socket().cancel(ec);
    }
  }
}

void Server::Impl::TrimThread() {
  for (;;) {
    {
      MutexLock l(&trim_mu);
      while (!trim_requested && !trim_stop) trim_cv.Wait(&trim_mu);
      if (trim_stop) return;
      trim_requested = false;
    }
    ReleaseFreeMemory();
  }
}

void Server::Impl::StartSession(AcceptedFd fd, IoWorker* w) {
  connections.fetch_add(1);
  asio::co_spawn(w->ioc, RunSession(std::move(fd), w), LogSessionEnd);
}

// The answer to a connection over http_max_connections.
static std::string RefusalBytes() {
  std::string body = "{\"error\":\"too many connections (http_max_connections); retry later\"}";
  return "HTTP/1.1 503 Service Unavailable\r\nServer: inferd\r\nContent-Type: "
         "application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Sends the 503 without waiting (it fits any socket buffer) and closes.
// On the accept loop's thread: the descriptor gets no socket (see IoWorker).
void Server::Impl::RefuseNow(int fd) {
  if (rejected_connections) rejected_connections->Increment();
  CountResponse(503);
  static const std::string kBytes = RefusalBytes();
  error_code ec;
  SendNow(fd, asio::buffer(kBytes), ec);
  ::shutdown(fd, SHUT_WR);
  // Drop what already arrived, so that closing does not reset the answer.
  std::array<char, 4096> sink;
  for (int i = 0; i < 16 && !ec; ++i) RecvNow(fd, asio::buffer(sink), ec);
  ::close(fd);
}

// Refuses a connection: the 503, then a short lingering close so that the
// client reads it, bounded to 200 ms.
awaitable<void> Server::Impl::Refuse(AcceptedFd fd, IoWorker* w) {
  if (rejected_connections) rejected_connections->Increment();
  CountResponse(503);
  static const std::string kBytes = RefusalBytes();
  Socket socket(w->ioc);
  if (!fd.AssignTo(socket, protocol)) co_return;
  Stream stream(std::move(socket));
  error_code ec;
  stream.expires_after(std::chrono::milliseconds(200));
  co_await asio::async_write(stream, asio::buffer(kBytes), asio::redirect_error(use_awaitable, ec));
  stream.socket().shutdown(Socket::shutdown_send, ec);
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
        s->closing = true;
        error_code ignored;
        s->stream.socket().cancel(ignored);
      }
    });
  }
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  Stop();
  // The acceptor belongs to the first io_context: it goes before it (an
  // open acceptor's destructor reaches its io_context's reactor).
  impl_->acceptor.reset();
  // The io_contexts go next: destroying them destroys the suspended
  // coroutines, whose guards still touch the counters and `mu`.
  impl_->workers.clear();
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
  impl->reader_options.check_header = options.check_header;
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
      in_progress_gauge->Set(static_cast<double>(raw->InProgress()));
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
  if (!ec) impl->acceptor->non_blocking(true, ec);  // AcceptNow
  if (ec) {
    return UnavailableError("cannot listen on " + options.host + ":" +
                            std::to_string(options.port) + ": " + ec.message());
  }
  impl->port = impl->acceptor->local_endpoint().port();
  impl->protocol = ep.protocol();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const { return impl_->port; }

void Server::Start() {
  asio::co_spawn(impl_->workers[0]->ioc, impl_->AcceptLoop(), LogSessionEnd);
  asio::co_spawn(impl_->workers[0]->ioc, impl_->TrimLoop(), LogSessionEnd);
  impl_->trimmer = std::thread([impl = impl_.get()] { impl->TrimThread(); });
  for (auto& w : impl_->workers) {
    IoWorker* raw = w.get();
#if INFERD_DRAINED_READ  // only its short reads need the check
    if (impl_->options.idle_check_interval.count() > 0) {
      asio::co_spawn(raw->ioc, impl_->IdleCheckLoop(raw), LogSessionEnd);
    }
#endif
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
      for (int i = 0; i < 4096; ++i) {
        const int fd = impl_->AcceptNow();
        if (fd < 0) break;
        IoWorker* w = impl_->workers[impl_->next_worker++ % impl_->workers.size()].get();
        impl_->StartSession(AcceptedFd(fd), w);
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
        if (s->idle) {
          s->closing = true;
          s->stream.cancel();
        }
      }
    });
  }
}

bool Server::WaitIdle(std::chrono::steady_clock::time_point deadline) {
  MutexLock l(&impl_->mu);
  impl_->idle_waiters.fetch_add(1);
  bool idle = true;
  while (impl_->InProgress() > 0) {
    if (!impl_->idle_cv.WaitUntil(&impl_->mu, deadline) && impl_->InProgress() > 0) {
      idle = false;
      break;
    }
  }
  impl_->idle_waiters.fetch_sub(1);
  return idle;
}

int64_t Server::requests_in_progress() const { return impl_->InProgress(); }

int64_t Server::max_connections() const { return impl_->max_connections; }

void Server::Post(std::function<void()> fn) {
  const size_t i = impl_->next_post.fetch_add(1, std::memory_order_relaxed);
  asio::post(impl_->workers[i % impl_->workers.size()]->ioc, std::move(fn));
}

void Server::Stop() {
  {
    MutexLock l(&impl_->trim_mu);
    impl_->trim_stop = true;
  }
  impl_->trim_cv.Signal();
  if (impl_->trimmer.joinable()) impl_->trimmer.join();
  for (auto& w : impl_->workers) w->ioc.stop();
  for (auto& w : impl_->workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

}  // namespace inferd::http
