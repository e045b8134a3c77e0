#include "http/client_socket.h"

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

namespace inferd::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using IStatus = ::inferd::Status;

constexpr size_t kFirstReadBytes = 16 * 1024;

// now + d, saturating instead of overflowing for huge timeouts.
SteadyTime After(SteadyTime now, std::chrono::milliseconds d) {
  if (d >= std::chrono::duration_cast<std::chrono::milliseconds>(SteadyTime::max() - now)) {
    return SteadyTime::max();
  }
  return now + d;
}

// Errors that mean "the server closed this keep-alive connection before it
// saw our request": safe to retry once on a fresh connection.
bool IsStaleConnectionError(const beast::error_code& ec) {
  return ec == beast_http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == asio::ssl::error::stream_truncated;
}

// The timeout of each IoPhase, in the enum's order.
struct PhaseTimeout {
  std::string_view name;
  std::chrono::milliseconds ClientTimeouts::*length;
};
constexpr PhaseTimeout kPhaseTimeouts[] = {
    {"connect timeout", &ClientTimeouts::connect},
    {"write idle timeout", &ClientTimeouts::read_idle},
    {"first-byte timeout", &ClientTimeouts::first_byte},
    {"read idle timeout", &ClientTimeouts::read_idle},
};

auto Await(beast::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

}  // namespace

ExchangeDeadlines::ExchangeDeadlines(const ClientTimeouts& timeouts)
    : timeouts_(timeouts), total_(After(std::chrono::steady_clock::now(), timeouts.total)) {}

ExchangeDeadlines::Bound ExchangeDeadlines::For(IoPhase phase) const {
  const PhaseTimeout& own = kPhaseTimeouts[static_cast<int>(phase)];
  const std::chrono::milliseconds length = timeouts_.*own.length;
  const SteadyTime at = After(std::chrono::steady_clock::now(), length);
  return at < total_ ? Bound{at, own.name, length} : total();
}

IStatus TimeoutError(const ExchangeDeadlines::Bound& bound, std::string_view doing,
                     std::string_view origin) {
  return DeadlineExceededError("timeout: " + std::string(bound.timeout) + " (" +
                               std::to_string(bound.length.count()) + " ms) expired " +
                               std::string(doing) + " " + std::string(origin));
}

ClientSocket::~ClientSocket() = default;

asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientSocket>>> ClientSocket::Connect(
    asio::any_io_executor executor, Url url, std::shared_ptr<asio::ssl::context> tls_context,
    TlsOptions tls, ExchangeDeadlines deadlines) {
  std::unique_ptr<ClientSocket> socket(new ClientSocket(url.Origin()));
  const std::string& origin = socket->origin();
  const ExchangeDeadlines::Bound bound = deadlines.For(IoPhase::kConnect);
  beast::error_code ec;

  // The resolver has no deadline of its own: a timer cancels it.
  auto resolver = std::make_shared<tcp::resolver>(executor);
  asio::steady_timer resolve_timer(executor, bound.at);
  resolve_timer.async_wait([resolver](const beast::error_code& e) {
    if (!e) resolver->cancel();
  });
  auto endpoints = co_await resolver->async_resolve(url.host, std::to_string(url.port), Await(ec));
  resolve_timer.cancel();
  if (ec) {
    if (std::chrono::steady_clock::now() >= bound.at) {
      co_return TimeoutError(bound, "resolving", origin);
    }
    co_return UnavailableError("connect: cannot resolve " + url.host + ": " + ec.message());
  }

  auto tcp_stream = std::make_unique<TcpStream>(executor);
  tcp_stream->expires_at(bound.at);
  co_await tcp_stream->async_connect(endpoints, Await(ec));
  if (ec) {
    if (ec == beast::error::timeout) co_return TimeoutError(bound, "connecting to", origin);
    co_return UnavailableError("connect: " + origin + ": " + ec.message());
  }
  tcp_stream->socket().set_option(tcp::no_delay(true), ec);
  if (!url.tls) {
    tcp_stream->expires_never();
    socket->tcp_ = std::move(tcp_stream);
    co_return socket;
  }

  if (tls_context == nullptr) co_return InternalError("TLS: no context for " + origin);
  socket->tls_ = std::make_unique<TlsStream>(std::move(*tcp_stream), *tls_context);
  IStatus prepared = PrepareTlsConnection(socket->tls_->native_handle(), tls, url.host);
  if (!prepared.ok()) co_return prepared;
  co_await socket->tls_->async_handshake(asio::ssl::stream_base::client, Await(ec));
  if (ec) {
    if (ec == beast::error::timeout || std::chrono::steady_clock::now() >= bound.at) {
      co_return TimeoutError(bound, "in the TLS handshake with", origin);
    }
    co_return TlsHandshakeError(ec, socket->tls_->native_handle(), origin);
  }
  socket->lowest().expires_never();
  co_return socket;
}

IStatus ClientSocket::IoFailure(const beast::error_code& ec, const ExchangeDeadlines::Bound& bound,
                                std::string_view doing) const {
  if (ec == beast_http::error::body_limit) {
    return InternalError("io: the response from " + origin_ + " is larger than max_response_bytes");
  }
  // Through TLS a timeout may surface as another error of the closed socket.
  if (ec == beast::error::timeout || std::chrono::steady_clock::now() >= bound.at) {
    return TimeoutError(bound, doing, origin_);
  }
  return InternalError("io: " + std::string(doing) + " " + origin_ + ": " + ec.message());
}

asio::awaitable<IStatus> ClientSocket::StartExchange(const ClientRequest& request,
                                                     ResponseParser& parser,
                                                     const ExchangeDeadlines& deadlines,
                                                     bool* stale) {
  *stale = false;
  beast::error_code ec;
  ExchangeDeadlines::Bound bound = deadlines.For(IoPhase::kWrite);
  lowest().expires_at(bound.at);
  co_await WithStream([&](auto& s) { return beast_http::async_write(s, request, Await(ec)); });
  if (ec) {
    *stale = IsStaleConnectionError(ec);
    Close();
    co_return IoFailure(ec, bound, "writing the request to");
  }
  if (buffer_.size() == 0) {
    bound = deadlines.For(IoPhase::kFirstByte);
    lowest().expires_at(bound.at);
    const size_t n = co_await WithStream(
        [&](auto& s) { return s.async_read_some(buffer_.prepare(kFirstReadBytes), Await(ec)); });
    if (ec) {
      *stale = IsStaleConnectionError(ec);
      Close();
      co_return IoFailure(ec, bound, "waiting for the response from");
    }
    buffer_.commit(n);
  }
  bound = deadlines.For(IoPhase::kRead);
  lowest().expires_at(bound.at);
  co_await WithStream(
      [&](auto& s) { return beast_http::async_read_header(s, buffer_, parser, Await(ec)); });
  if (ec) {
    Close();
    co_return IoFailure(ec, bound, "reading the response header from");
  }
  co_return IStatus::OK();
}

asio::awaitable<IStatus> ClientSocket::ReadSome(ResponseParser& parser,
                                                const ExchangeDeadlines& deadlines) {
  beast::error_code ec;
  const ExchangeDeadlines::Bound bound = deadlines.For(IoPhase::kRead);
  lowest().expires_at(bound.at);
  co_await WithStream(
      [&](auto& s) { return beast_http::async_read_some(s, buffer_, parser, Await(ec)); });
  if (ec == beast_http::error::need_buffer) ec = {};
  if (ec) {
    Close();
    co_return IoFailure(ec, bound, "reading the response from");
  }
  co_return IStatus::OK();
}

void ClientSocket::Close() {
  beast::error_code ignored;
  lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
  lowest().close();
}

bool ClientSocket::is_open() const { return lowest().socket().is_open(); }

void ClientSocket::MakeIdle(Time now) {
  lowest().expires_never();
  idle_since_ = now;
}

}  // namespace inferd::http
