#pragma once
// One client connection (TCP, or TLS over TCP) and the deadlines of one
// exchange on it: the building block of ClientConnection, ClientStream and
// ClientPool.

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "http/client.h"
#include "http/tls_context.h"
#include "http/types.h"

namespace inferd::http {

using SteadyTime = std::chrono::steady_clock::time_point;
// Parses a response whose body is read piece by piece into a caller's buffer.
using ResponseParser = beast_http::response_parser<beast_http::buffer_body>;

// The timeouts of one exchange (ClientPool::Options documents each).
struct ClientTimeouts {
  std::chrono::milliseconds connect{5000};
  std::chrono::milliseconds first_byte{60000};
  std::chrono::milliseconds read_idle{60000};
  std::chrono::milliseconds total{300000};
};

// The steps of an exchange; each has its own timeout, and the total timeout
// bounds them all.
enum class IoPhase {
  kConnect,    // resolve, TCP connect, TLS handshake: connect timeout
  kWrite,      // one write of the request: read idle timeout
  kFirstByte,  // request written → first response byte: first-byte timeout
  kRead,       // any later read of the response: read idle timeout
};

// The deadlines of one exchange, counted from its start. They are real time
// on purpose: Asio's timers cannot follow an injected Clock.
class ExchangeDeadlines {
 public:
  struct Bound {
    SteadyTime at;
    std::string_view timeout;  // "first-byte timeout", "total timeout", ...
    std::chrono::milliseconds length;
  };

  explicit ExchangeDeadlines(const ClientTimeouts& timeouts);

  // The deadline of a `phase` operation that starts now: its own timeout or
  // the end of the exchange, whichever comes first.
  Bound For(IoPhase phase) const;
  Bound total() const { return {total_, "total timeout", timeouts_.total}; }

 private:
  ClientTimeouts timeouts_;
  SteadyTime total_;
};

// kDeadlineExceeded: "timeout: <timeout> (<n> ms) expired <doing> <origin>".
::inferd::Status TimeoutError(const ExchangeDeadlines::Bound& bound, std::string_view doing,
                              std::string_view origin);

// One HTTP/1.1 connection to an origin, plain or TLS. Errors follow the
// mapping of client.h, and a timeout's message names the timeout
// ("timeout: first-byte timeout (100 ms) expired waiting for ...").
//
// Threading: not thread-safe; one operation at a time, from coroutines on
// one executor (a strand or a one-thread io_context).
class ClientSocket {
 public:
  using TcpStream = boost::beast::tcp_stream;
  using TlsStream = boost::beast::ssl_stream<TcpStream>;

  // Resolves the URL's host, connects and, for https, makes the TLS
  // handshake (SNI, certificate and host-name check per `tls`).
  // `tls_context` is required for https.
  static boost::asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientSocket>>> Connect(
      boost::asio::any_io_executor executor, Url url,
      std::shared_ptr<boost::asio::ssl::context> tls_context, TlsOptions tls,
      ExchangeDeadlines deadlines);

  ClientSocket(const ClientSocket&) = delete;
  ClientSocket& operator=(const ClientSocket&) = delete;
  ~ClientSocket();

  // Writes `request`, waits for the first response byte and reads the
  // response header into `parser`. On failure the socket is closed, and
  // *stale tells whether it failed before any response byte the way a
  // connection closed by the server does (one retry on a new one is safe).
  boost::asio::awaitable<::inferd::Status> StartExchange(const ClientRequest& request,
                                                         ResponseParser& parser,
                                                         const ExchangeDeadlines& deadlines,
                                                         bool* stale);
  // Reads more of the body into the parser's buffer. Closed on failure.
  boost::asio::awaitable<::inferd::Status> ReadSome(ResponseParser& parser,
                                                    const ExchangeDeadlines& deadlines);

  void Close();
  bool is_open() const;
  // Disarms the deadline and stamps the time it became idle (pool's Clock).
  void MakeIdle(Time now);
  Time idle_since() const { return idle_since_; }
  // "http://host:port" or "https://host:port".
  const std::string& origin() const { return origin_; }

 private:
  explicit ClientSocket(std::string origin) : origin_(std::move(origin)) {}

  TcpStream& lowest() { return tls_ ? tls_->next_layer() : *tcp_; }
  const TcpStream& lowest() const { return tls_ ? tls_->next_layer() : *tcp_; }
  // Calls `f` with the stream requests go through (TLS or TCP).
  template <typename F>
  auto WithStream(F&& f) {
    return tls_ ? f(*tls_) : f(*tcp_);
  }
  ::inferd::Status IoFailure(const boost::system::error_code& ec,
                             const ExchangeDeadlines::Bound& bound, std::string_view doing) const;

  const std::string origin_;
  std::unique_ptr<TcpStream> tcp_;  // exactly one of tcp_ and tls_ is set
  std::unique_ptr<TlsStream> tls_;
  boost::beast::flat_buffer buffer_;
  Time idle_since_{};
};

}  // namespace inferd::http
