#pragma once
// HTTP/1.1 client on Boost.Beast with C++20 coroutines: URL parsing, one
// keep-alive connection (ClientConnection), and a blocking one-shot fetch
// for small control requests (model metadata, health checks). Pooled
// connections per origin are ClientPool (client_pool.h), streamed and SSE
// responses ClientStream and SseReader; https is OpenSSL (tls_context.h).
//
// Transport failures come back as a Status, never as an exception:
//   kUnavailable       could not resolve or connect, or the TLS handshake
//                      failed ("certificate verify failed: <reason>")
//   kDeadlineExceeded  a timeout expired; the message names it (connect,
//                      first-byte, read idle, total timeout)
//   kInternal          I/O or protocol error on an established connection,
//                      or a body larger than max_response_bytes
//   kInvalidArgument   a malformed URL
// Any HTTP status (including 4xx/5xx) is a successful exchange: the caller
// inspects ClientResponse::result().

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "http/tls_context.h"
#include "http/types.h"

namespace inferd::http {

class ClientSocket;
class ExchangeDeadlines;

// The parts of "http[s]://host:port/base" that a client needs.
struct Url {
  bool tls = false;       // https
  std::string host;       // "127.0.0.1", "localhost", "::1" (no brackets)
  uint16_t port = 80;     // when the URL has none: 80, or 443 for https
  std::string base_path;  // "" or "/prefix" (never a trailing '/')

  // "host:port" as sent in the Host header (IPv6 in brackets).
  std::string HostHeader() const;
  // "http://host:port" or "https://host:port": what connections are pooled by.
  std::string Origin() const;
};

// Parses "http://host[:port][/path]" or "https://..."; the scheme may be
// omitted (http). Anything malformed is kInvalidArgument.
::inferd::StatusOr<Url> ParseUrl(std::string_view url);

// A request for `target` on `url` (its base path is prepended) with the Host,
// User-Agent, keep-alive and Content-Length headers set; Content-Type only
// when `content_type` is non-empty.
ClientRequest MakeRequest(const Url& url, Verb method, std::string_view target,
                          std::string body = {}, std::string_view content_type = {});

// Short name for a transport failure: "connect", "timeout" or "io"
// (see the code mapping above). For an OK status: "ok".
std::string_view TransportErrorKind(const ::inferd::Status& status);

// One HTTP/1.1 connection (http or https) to host:port, reused across
// requests (keep-alive).
// It connects lazily on the first Send and again after any failure or after
// the server answered with "Connection: close". A request that fails on a
// reused connection before any response byte arrived (the server closed an
// idle keep-alive connection) is retried once on a fresh connection.
//
// Threading: not thread-safe. Use it from coroutines on one strand/thread and
// with at most one Send in flight at a time.
class ClientConnection {
 public:
  struct Options {
    // Resolve + TCP connect (+ TLS handshake).
    std::chrono::milliseconds connect_timeout{5000};
    // Bounds writing the request, the wait for its first response byte and
    // each read after; the whole exchange takes at most connect_timeout +
    // request_timeout.
    std::chrono::milliseconds request_timeout{30000};
    uint64_t max_response_bytes = 256ull << 20;  // larger bodies fail with kInternal
    TlsOptions tls;  // https only: CA, verification (on by default), SNI
  };

  ClientConnection(boost::asio::any_io_executor executor, Url url, Options options);
  ClientConnection(boost::asio::any_io_executor executor, Url url)
      : ClientConnection(std::move(executor), std::move(url), Options{}) {}
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;
  ~ClientConnection();

  // Sends `request` and reads the response. `request` is only read, so one
  // prepared request can be sent many times without copying its body; it
  // must stay alive until the returned awaitable completes.
  boost::asio::awaitable<::inferd::StatusOr<ClientResponse>> Send(const ClientRequest& request);

  // Closes the idle socket; the next Send reconnects. (A Send in flight
  // owns its socket until it completes.)
  void Close();

  bool connected() const;
  // TCP connections opened so far (1 for a connection that was always reused).
  int64_t connects() const { return connects_; }
  const Url& url() const { return url_; }

 private:
  boost::asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientSocket>>> Connect(
      ExchangeDeadlines deadlines);

  Url url_;
  Options options_;
  boost::asio::any_io_executor executor_;
  std::unique_ptr<ClientSocket> socket_;  // the idle keep-alive connection, if any
  std::shared_ptr<boost::asio::ssl::context> tls_context_;  // made on the first https Send
  int64_t connects_ = 0;
};

// Blocking convenience for small control requests: connects to `url`, sends
// `method target` with `body` (Content-Type application/json when non-empty)
// and returns the response. Runs its own io_context on the calling thread;
// never call it from an I/O thread.
::inferd::StatusOr<ClientResponse> FetchOnce(
    std::string_view url, Verb method, std::string_view target, std::string body = {},
    std::chrono::milliseconds timeout = std::chrono::seconds(10));
// Same, for a prepared request (see MakeRequest) to `url`.
::inferd::StatusOr<ClientResponse> FetchOnce(
    const Url& url, const ClientRequest& request,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace inferd::http
