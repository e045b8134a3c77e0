#pragma once
// The internals of http::Server, shared by server.cc (one connection: read,
// dispatch, write) and server_accept.cc (accepting, limits, lifecycle).
// Private to the http component: nothing outside src/http includes it.

#include "http/server.h"

// clang-format off
#include <utility>  // before Asio (Boost 1.74 + GCC 12)
// clang-format on

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <future>
#include <list>
#include <map>
#include <optional>
#include <thread>

#include "common/clock.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "http/drained_read.h"
#include "http/request_reader.h"

namespace inferd::http {
namespace server_detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// The I/O threads' executor, by its concrete type: completions are
// dispatched without the type erasure (and the allocated function wrapper
// per completion) of Asio's default any_io_executor.
using Executor = asio::io_context::executor_type;
template <typename T>
using awaitable = asio::awaitable<T, Executor>;
inline constexpr asio::use_awaitable_t<Executor> use_awaitable{};
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
using Stream = beast::basic_stream<tcp, Executor>;

struct Session;

// Monotonic time as of the kernel's last tick (a few ms behind; 11 ns a
// read against 34 for the precise clock on this VM): for the idle
// bookkeeping, kept to the idle timeout's and the idle check's scale.
inline std::chrono::steady_clock::time_point CoarseSteadyNow() {
  return Clock::System()->CoarseNow();
}

// A connection accepted on the accept loop's thread, on its way to the I/O
// thread that will own it: its socket is made (registered with that thread's
// reactor) on that thread. Closes the descriptor unless taken.
class AcceptedFd {
 public:
  explicit AcceptedFd(int fd) : fd_(fd) {}
  AcceptedFd(AcceptedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  AcceptedFd& operator=(AcceptedFd&&) = delete;
  ~AcceptedFd();
  // `socket` takes the descriptor; false (descriptor closed) on failure.
  bool AssignTo(Socket& socket, const tcp& protocol);

 private:
  int fd_;
};

// One I/O thread with its own io_context; its sessions are touched only on
// it: a socket is made, read, written, cancelled and closed only on its
// thread (other threads post to it), so its reactor takes no lock per
// descriptor operation (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO; the
// scheduler's and the registration's locks stay, for posts and timers).
struct IoWorker {
  std::list<Session*> sessions;  // declared before ioc: outlives the coroutines
  // Requests this worker started and finished, only ever increased, by this
  // worker alone, on a line of their own (no line shared between workers
  // per request); Impl::InProgress sums them. Before ioc: the coroutines
  // that ioc's destruction ends still count their requests finished.
  struct alignas(64) Counts {
    std::atomic<int64_t> started{0};
    std::atomic<int64_t> finished{0};
  } counts;
  asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  DrainedReads reads{ioc};  // waiting for a connection's next request
  std::thread thread;
};

// Shared between a request read and its deadline timer's handler, which may
// run after the read finished (both on the connection's thread).
struct ReadDeadline {
  bool finished = false;
  bool expired = false;
};

struct Session {
  Session(Socket s, IoWorker* w)
      : stream(std::move(s)), idle_timer(stream.get_executor()), worker(w) {}
  Stream stream;
  bool idle = true;
  // Set when the server cancels the idle wait to close the connection (idle
  // timeout, reclaiming at the connection limit, drain): a request that
  // arrived at that moment is still served, with Connection: close.
  bool closing = false;
  // Idle timeout, checked lazily: the timer is not moved per request; when
  // it fires it closes the connection if it has been waiting for a request
  // since `idle_since` for the whole timeout, else re-arms for what is left.
  Timer idle_timer;
  std::chrono::steady_clock::time_point idle_since;  // on CoarseSteadyNow's clock
  // How many of the next requests are waited for without first trying a
  // read (RunSession): set after a read found nothing.
  int wait_first = 0;
  // Requests served since the session last waited for a read (RunSession):
  // a client whose next requests are always there already (pipelined, or
  // sent ahead) would otherwise keep the thread from its other connections.
  int served_without_wait = 0;
  // Set by the idle check (Impl::IdleCheckLoop) when it cancels the wait of
  // a connection whose socket has something epoll will not report again:
  // RunSession then reads again instead of closing.
  bool poked = false;
  // The session itself, for handlers that may outlive it (set by RunSession).
  std::weak_ptr<Session> self;
  IoWorker* worker;  // the thread it lives on
  std::string head;  // the header being written (WriteResponse), reused
  // The request being read (ServeOne): here rather than in ServeOne's
  // coroutine frame, which then fits Asio's per-thread frame recycling.
  std::optional<RequestReader> reader;
};

// A streamed response's buffer, between its producer (any thread) and the
// connection's coroutine that writes it (WriteStream).
class ResponseStream final : public StreamWriter {
 public:
  using Ready = std::function<void()>;
  explicit ResponseStream(size_t limit) : limit_(limit) {}

  bool Write(std::string data, std::function<void()> resume) override EXCLUDES(mu_);
  void Close() override EXCLUDES(mu_);
  bool gone() const override { return gone_.load(std::memory_order_acquire); }

  // The writer's side. Calls `ready` (once) when there is something to do:
  // pieces to write, or the end.
  void OnReady(Ready ready) EXCLUDES(mu_);
  // Moves out what is queued; *closed: the producer ended the stream.
  std::vector<std::string> Take(bool* closed) EXCLUDES(mu_);
  // `bytes` went out: wakes a waiting producer once below half the limit.
  void Drained(size_t bytes) EXCLUDES(mu_);
  // The client is gone: drops what is queued and wakes the producer.
  void MarkGone() EXCLUDES(mu_);

 private:
  const size_t limit_;
  std::atomic<bool> gone_{false};
  Mutex mu_;
  std::vector<std::string> queued_ GUARDED_BY(mu_);
  size_t buffered_ GUARDED_BY(mu_) = 0;  // queued or being written
  bool closed_ GUARDED_BY(mu_) = false;
  std::vector<std::function<void()>> resumes_ GUARDED_BY(mu_);
  Ready ready_ GUARDED_BY(mu_);
};

// Suspends the calling coroutine until `stream` has something to write or
// ends; it resumes on its own executor.
template <typename Token>
auto AsyncStreamReady(std::shared_ptr<ResponseStream> stream, Token&& token) {
  return asio::async_initiate<Token, void()>(
      [](auto completion, std::shared_ptr<ResponseStream> stream) {
        using Completion = decltype(completion);
        auto work = asio::prefer(asio::get_associated_executor(completion),
                                 asio::execution::outstanding_work.tracked);
        auto holder = std::make_shared<std::optional<Completion>>(std::move(completion));
        stream->OnReady([holder, work] {
          asio::post(work, [holder]() mutable {
            Completion c = std::move(**holder);
            holder->reset();
            std::move(c)();
          });
        });
      },
      token, std::move(stream));
}

// A handler's answer on its way back to its connection. Handlers that
// answer before returning (cache hits, early errors) hand it over inline and
// the coroutine goes on without suspending; the others deliver it later,
// from any thread, and the coroutine waits for it. No lock: the answer is
// handed over once (the Responder sends once), and one atomic state tells
// the two sides apart.
class PendingResponse final : public Responder::Target {
 public:
  explicit PendingResponse(size_t stream_buffer_limit) : stream_buffer_limit(stream_buffer_limit) {}
  // The bound of a stream started for this request (max_stream_buffer_bytes).
  const size_t stream_buffer_limit;
  // The request's cancellation, raised when the client leaves while the
  // answer is pending or streams.
  static std::weak_ptr<Cancellation> CancelOf(const std::shared_ptr<PendingResponse>& p) {
    return std::shared_ptr<Cancellation>(p, &p->cancel());
  }

  using Resume = std::function<void(Response)>;

  // Once the answer was delivered (Delivered or OnDelivered): its stream, if the
  // answer is the head of one.
  const std::shared_ptr<ResponseStream>& stream() const { return stream_; }
  // The answer if it was delivered already (then nothing else touches it:
  // the caller reads and changes it where it lies), else null.
  Response* Delivered() {
    return state_.load(std::memory_order_acquire) == kDelivered ? &response_ : nullptr;
  }
  // Calls `resume` with the answer: now if it is there, else on delivery
  // (on the delivering thread). At most once, after Delivered returned null.
  void OnDelivered(Resume resume) {
    resume_ = std::move(resume);
    int expected = kEmpty;
    if (state_.compare_exchange_strong(expected, kWaiting, std::memory_order_acq_rel)) return;
    Resume now = std::move(resume_);  // delivered meanwhile
    now(std::move(response_));
  }

 private:
  void Deliver(Response&& res) override { Hand(std::move(res), nullptr); }
  std::shared_ptr<StreamWriter> DeliverStream(Response head) override {
    auto stream = std::make_shared<ResponseStream>(stream_buffer_limit);
    Hand(std::move(head), stream);
    return stream;
  }
  // Called once (the Responder's rule). `stream`: set when `res` is the
  // head of a streamed response.
  void Hand(Response&& res, std::shared_ptr<ResponseStream> stream) {
    response_ = std::move(res);
    stream_ = std::move(stream);
    if (state_.exchange(kDelivered, std::memory_order_acq_rel) == kWaiting) {
      Resume resume = std::move(resume_);
      resume(std::move(response_));
    }
  }

  enum : int { kEmpty, kWaiting, kDelivered };
  std::atomic<int> state_{kEmpty};
  // Written by the delivering side before kDelivered, read after it.
  Response response_;
  std::shared_ptr<ResponseStream> stream_;
  // Written by the waiting side before kWaiting, read after it.
  Resume resume_;
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

}  // namespace server_detail

using namespace server_detail;  // NOLINT: this header is private to server*.cc

// Body reads take up to this much at a time.
inline constexpr size_t kReadChunk = 64u << 10;
// A response body up to this size is sent from a copy behind its header.
inline constexpr size_t kBodyCopiedToHead = 8u << 10;
// The Server field of every answer a handler did not name otherwise.
inline constexpr std::string_view kServerName = "inferd";

struct Server::Impl {
  Options options;
  RequestReader::Options reader_options;
  const Router* router = nullptr;
  std::vector<std::unique_ptr<IoWorker>> workers;
  std::optional<tcp::acceptor> acceptor;  // non-blocking; on workers[0]
  tcp protocol = tcp::v4();               // the listener's
  uint16_t port = 0;
  std::atomic<bool> draining{false};
  std::atomic<size_t> next_worker{0};
  std::atomic<size_t> next_post{0};  // Post's round robin, apart from the accept loop's
  // Requests being served: IoWorker::counts, without a lock. While a
  // WaitIdle waits (idle_waiters > 0), a request that leaves its worker
  // idle takes `mu` to signal; both sides use sequentially consistent
  // atomics, so either the waiter sees the finish or the finisher sees the
  // waiter, and the wake-up cannot be missed.
  std::atomic<int> idle_waiters{0};
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
  // malloc_trim runs on its own thread, never an I/O thread: it locks each
  // malloc arena in turn and may take a while on a large heap.
  std::thread trimmer;
  Mutex trim_mu;
  CondVar trim_cv;
  bool trim_requested GUARDED_BY(trim_mu) = false;
  bool trim_stop GUARDED_BY(trim_mu) = false;
  void TrimThread() EXCLUDES(trim_mu);
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
        s->closing = true;
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
  awaitable<void> IdleCheckLoop(IoWorker* worker);
  awaitable<void> RunSession(AcceptedFd fd, IoWorker* worker);
  awaitable<bool> ServeOne(Session& s, beast::flat_buffer& buf);
  Response* Dispatch(Request req, Response* res, std::shared_ptr<PendingResponse>* pending);
  // While an answer is pending: when the connection becomes readable and
  // the client has closed it (a peek reads end of file or an error), raises
  // `cancel`. Data from a pipelining client ends the watch unconsumed.
  static void WatchForDisconnect(Session& s, std::weak_ptr<Cancellation> cancel);
  // Writes a streamed response: `head`, then the pieces as the producer
  // queues them (chunked on HTTP/1.1), until it closes the stream. Returns
  // false when the connection cannot go on (a write failed, HTTP/1.0).
  // `head_only` (a HEAD request): the head alone, as GET's would be; the
  // producer is cancelled and its stream dropped.
  awaitable<bool> WriteStream(Session& s, Response& head, std::shared_ptr<ResponseStream> stream,
                              const std::weak_ptr<Cancellation>& cancel, bool head_only);
  Response InternalError(std::string_view what);
  awaitable<error_code> ReadRequest(Session& s, beast::flat_buffer& buf, RequestReader& reader,
                                    bool* expired);
  awaitable<error_code> WriteResponse(Session& s, Response& res);
  // WriteResponse's parts: the direct write (true when done: all of it
  // written, or an error), then the rest from `sent` on.
  bool TryWrite(Session& s, Response& res, size_t* sent, error_code* ec);
  awaitable<error_code> WriteRest(Session& s, Response& res, size_t sent);
  awaitable<void> WriteError(Session& s, Status status, std::string_view message,
                             const HttpError* error = nullptr);
  // Accepts one connection without waiting: its descriptor, or -1 with
  // errno set (EAGAIN when none is waiting).
  int AcceptNow();
  void StartSession(AcceptedFd fd, IoWorker* w);
  awaitable<void> Refuse(AcceptedFd fd, IoWorker* w);
  void RefuseNow(int fd);
  void CloseIdleSessions();
  void RequestStarted(Session& s) { s.worker->counts.started.fetch_add(1); }
  void RequestFinished(Session& s) {
    IoWorker::Counts& c = s.worker->counts;
    const int64_t finished = c.finished.fetch_add(1) + 1;
    if (idle_waiters.load() > 0 && finished == c.started.load()) {
      MutexLock l(&mu);
      idle_cv.SignalAll();
    }
  }
  // Every worker's finished counts first, then the started ones: a request
  // is never missed (started >= finished on each worker, both only grow),
  // so 0 means no request was in progress once the finished counts were
  // read; never negative.
  int64_t InProgress() const {
    int64_t finished = 0, started = 0;
    for (const auto& w : workers) finished += w->counts.finished.load();
    for (const auto& w : workers) started += w->counts.started.load();
    return started - finished;
  }
};

}  // namespace inferd::http
