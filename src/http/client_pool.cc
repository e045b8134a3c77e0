#include "http/client_pool.h"

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace inferd::http {
namespace {

namespace asio = boost::asio;

// A request queued for a connection of a full origin. Lives in the frame of
// the waiting coroutine; the pool wakes it by cancelling its timer.
struct Waiter {
  Waiter(const asio::any_io_executor& executor, SteadyTime deadline) : timer(executor, deadline) {}
  asio::steady_timer timer;
  bool granted = false;
  std::unique_ptr<ClientSocket> socket;  // handed over; null: a free slot
};

struct OriginState {
  int open = 0;  // busy + idle + being opened, at most max_connections
  std::vector<std::unique_ptr<ClientSocket>> idle;  // most recently used last
  std::deque<Waiter*> waiters;                      // first come, first served
};

}  // namespace

// The pool's state, shared with the streams and calls in flight. Runs on
// the pool's executor only (see the class comment of ClientPool), hence no
// lock.
class ClientPool::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::any_io_executor executor, const Options& options,
       std::shared_ptr<asio::ssl::context> tls_context)
      : executor_(std::move(executor)),
        options_(options),
        clock_(options.clock != nullptr ? options.clock : Clock::System()),
        tls_context_(std::move(tls_context)),
        timeouts_{options.connect_timeout, options.first_byte_timeout, options.read_idle_timeout,
                  options.total_timeout} {}

  asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientStream>>> Open(
      const ClientRequest& request, Url url, CallOptions call);
  Stats GetStats() const;
  // Closes the idle connections and fails the waiting requests.
  void Shutdown();
  const asio::any_io_executor& executor() const { return executor_; }

 private:
  // A connection of `origin`: an idle one, or null when the caller got a
  // free slot to open one in (it then must Release it).
  asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientSocket>>> Acquire(
      OriginState& origin, std::string name, ExchangeDeadlines deadlines);
  void Release(OriginState* origin, std::unique_ptr<ClientSocket> socket, bool reusable);
  void HandOver(OriginState& origin, std::unique_ptr<ClientSocket> socket);
  void PruneIdle(OriginState& origin);
  asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientSocket>>> Connect(
      Url url, ExchangeDeadlines deadlines);

  const asio::any_io_executor executor_;
  const Options options_;
  Clock* const clock_;
  const std::shared_ptr<asio::ssl::context> tls_context_;
  const ClientTimeouts timeouts_;
  std::map<std::string, OriginState> origins_;  // nodes never move: pointers stay valid
  int64_t connects_ = 0;
  int64_t reuses_ = 0;
  bool closed_ = false;
};

asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientStream>>> ClientPool::Impl::Open(
    const ClientRequest& request, Url url, CallOptions call) {
  if (closed_) co_return CancelledError("the client pool was destroyed");
  ClientTimeouts timeouts = timeouts_;
  if (call.total_timeout.has_value()) timeouts.total = *call.total_timeout;
  const ExchangeDeadlines deadlines(timeouts);
  const std::string name = url.Origin();
  OriginState* origin = &origins_[name];
  ::inferd::StatusOr<std::unique_ptr<ClientSocket>> lease =
      co_await Acquire(*origin, name, deadlines);
  if (!lease.ok()) co_return lease.status();
  std::shared_ptr<Impl> self = shared_from_this();
  ClientStream::Connector connect = [self, url, deadlines] {
    return self->Connect(url, deadlines);
  };
  ClientStream::Release release = [self, origin](std::unique_ptr<ClientSocket> s, bool reusable) {
    self->Release(origin, std::move(s), reusable);
  };
  co_return co_await ClientStream::Start(std::move(lease).value(), std::move(connect), request,
                                         deadlines, options_.max_response_bytes,
                                         std::move(release));
}

asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientSocket>>> ClientPool::Impl::Acquire(
    OriginState& origin, std::string name, ExchangeDeadlines deadlines) {
  PruneIdle(origin);
  if (!origin.idle.empty()) {
    std::unique_ptr<ClientSocket> socket = std::move(origin.idle.back());
    origin.idle.pop_back();
    ++reuses_;
    co_return socket;
  }
  if (origin.open < options_.max_connections) {
    ++origin.open;
    co_return std::unique_ptr<ClientSocket>();
  }
  const ExchangeDeadlines::Bound bound = deadlines.total();
  Waiter waiter(executor_, bound.at);
  origin.waiters.push_back(&waiter);
  boost::system::error_code ec;  // cancelled: woken by HandOver or Shutdown
  co_await waiter.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (!waiter.granted) {
    std::erase(origin.waiters, &waiter);
    if (closed_) co_return CancelledError("the client pool was destroyed");
    co_return TimeoutError(
        bound, "waiting for a free connection to",
        name + " (max_connections " + std::to_string(options_.max_connections) + ")");
  }
  if (waiter.socket != nullptr) ++reuses_;
  co_return std::move(waiter.socket);
}

void ClientPool::Impl::Release(OriginState* origin, std::unique_ptr<ClientSocket> socket,
                               bool reusable) {
  if (socket != nullptr && reusable && !closed_ && socket->is_open()) {
    socket->MakeIdle(clock_->Now());
    if (!origin->waiters.empty()) return HandOver(*origin, std::move(socket));
    if (static_cast<int>(origin->idle.size()) < options_.max_idle) {
      origin->idle.push_back(std::move(socket));
      return;
    }
  }
  if (socket != nullptr) socket->Close();
  socket.reset();
  // The slot is free: the first waiter opens a connection in it.
  if (!origin->waiters.empty() && !closed_) return HandOver(*origin, nullptr);
  --origin->open;
}

void ClientPool::Impl::HandOver(OriginState& origin, std::unique_ptr<ClientSocket> socket) {
  Waiter* waiter = origin.waiters.front();
  origin.waiters.pop_front();
  waiter->granted = true;
  waiter->socket = std::move(socket);
  waiter->timer.cancel();
}

void ClientPool::Impl::PruneIdle(OriginState& origin) {
  const Time now = clock_->Now();
  std::erase_if(origin.idle, [&](const std::unique_ptr<ClientSocket>& socket) {
    if (socket->is_open() && now - socket->idle_since() < options_.idle_timeout) return false;
    socket->Close();
    --origin.open;
    return true;
  });
}

asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientSocket>>> ClientPool::Impl::Connect(
    Url url, ExchangeDeadlines deadlines) {
  ::inferd::StatusOr<std::unique_ptr<ClientSocket>> socket = co_await ClientSocket::Connect(
      executor_, std::move(url), tls_context_, options_.tls, deadlines);
  if (socket.ok()) ++connects_;
  co_return socket;
}

ClientPool::Stats ClientPool::Impl::GetStats() const {
  Stats stats;
  stats.connects = connects_;
  stats.reuses = reuses_;
  for (const auto& [name, origin] : origins_) {
    stats.open += origin.open;
    stats.idle += static_cast<int>(origin.idle.size());
    stats.waiting += static_cast<int>(origin.waiters.size());
  }
  return stats;
}

void ClientPool::Impl::Shutdown() {
  closed_ = true;
  for (auto& [name, origin] : origins_) {
    for (std::unique_ptr<ClientSocket>& socket : origin.idle) socket->Close();
    origin.open -= static_cast<int>(origin.idle.size());
    origin.idle.clear();
    for (Waiter* waiter : origin.waiters) waiter->timer.cancel();  // not granted: kCancelled
    origin.waiters.clear();
  }
}

::inferd::StatusOr<std::unique_ptr<ClientPool>> ClientPool::Create(asio::any_io_executor executor,
                                                                   const Options& options) {
  if (options.max_connections < 1) return InvalidArgumentError("max_connections must be >= 1");
  if (options.max_idle < 0) return InvalidArgumentError("max_idle must be >= 0");
  for (auto t : {options.connect_timeout, options.first_byte_timeout, options.read_idle_timeout,
                 options.idle_timeout, options.total_timeout}) {
    if (t.count() <= 0) return InvalidArgumentError("client timeouts must be positive");
  }
  INFERD_ASSIGN_OR_RETURN(std::shared_ptr<asio::ssl::context> tls,
                          MakeClientTlsContext(options.tls));
  auto impl = std::make_shared<Impl>(std::move(executor), options, std::move(tls));
  return std::unique_ptr<ClientPool>(new ClientPool(std::move(impl)));
}

ClientPool::~ClientPool() { impl_->Shutdown(); }

asio::awaitable<::inferd::StatusOr<ClientResponse>> ClientPool::Send(const ClientRequest& request,
                                                                     const Url& url,
                                                                     CallOptions call) {
  std::shared_ptr<Impl> impl = impl_;  // outlives the pool object if need be
  ::inferd::StatusOr<std::unique_ptr<ClientStream>> stream =
      co_await impl->Open(request, url, call);
  if (!stream.ok()) co_return stream.status();
  co_return co_await (*stream)->ReadAll();
}

asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientStream>>> ClientPool::Open(
    const ClientRequest& request, const Url& url, CallOptions call) {
  std::shared_ptr<Impl> impl = impl_;
  co_return co_await impl->Open(request, url, call);
}

ClientPool::Stats ClientPool::GetStats() const { return impl_->GetStats(); }

const asio::any_io_executor& ClientPool::executor() const { return impl_->executor(); }

}  // namespace inferd::http
