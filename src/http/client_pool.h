#pragma once
// ClientPool: keep-alive HTTP/1.1 (and https) connections per origin, for
// clients that talk to a few upstream servers many times (`inferd bench`,
// remote backends).

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "common/clock.h"
#include "common/status.h"
#include "http/client.h"
#include "http/client_stream.h"
#include "http/tls_context.h"
#include "http/types.h"

namespace inferd::http {

// Connections per origin (scheme, host, port), each carrying one exchange
// at a time and reused while both sides keep it alive.
//
// Invariants, per origin: at most max_connections connections exist (busy,
// idle or being opened); a request that finds none free waits in a FIFO
// queue, until a connection or a free slot is handed to it or its total
// timeout expires; a connection goes back to the pool only after its
// response was read to its end and it is keep-alive, and it is reused only
// while it has been idle for less than idle_timeout (by the Clock). A
// request that fails on a reused connection before any response byte (the
// server closed it while idle) is retried once on a new connection.
//
// Errors follow client.h: kUnavailable (resolve, connect, TLS, certificate
// verify failed: ...), kDeadlineExceeded naming the timeout (connect,
// first-byte, read idle, total, also when waiting for a free connection),
// kInternal (I/O, protocol, max_response_bytes), kCancelled (the pool was
// destroyed while a request waited). HTTP error statuses are responses.
//
// Threading: bound to the executor given to Create, which must not run two
// handlers at once (a strand, or an io_context run by one thread). Call
// every method, and use every ClientStream, from coroutines on that
// executor; other threads co_spawn onto executor(). Destroy the pool there
// too. Streams and calls in flight keep the shared state alive, so the pool
// object may go first; the waiting requests then fail with kCancelled.
class ClientPool {
 public:
  struct Options {
    // Open connections per origin (busy + idle + being opened). Default 16.
    int max_connections = 16;
    // Idle keep-alive connections kept per origin; more are closed. Default 16.
    int max_idle = 16;
    // Resolve + TCP connect + TLS handshake of a new connection. Default 5 s.
    std::chrono::milliseconds connect_timeout{5000};
    // From the request written to the first response byte. Default 60 s.
    std::chrono::milliseconds first_byte_timeout{60000};
    // Longest silence while reading the response after its first byte (one
    // read), and longest stall of one write of the request. Default 60 s.
    std::chrono::milliseconds read_idle_timeout{60000};
    // A connection idle in the pool for this long is closed, not reused.
    // Default 30 s (below the usual server keep-alive timeouts).
    std::chrono::milliseconds idle_timeout{30000};
    // The whole exchange: waiting for a connection, connecting, writing,
    // reading to the last byte (for a stream: to its last Next). Default 300 s.
    std::chrono::milliseconds total_timeout{300000};
    // Larger response bodies fail with kInternal. Default 256 MiB.
    uint64_t max_response_bytes = 256ull << 20;
    // https: CA, peer and host-name verification (on by default), SNI.
    TlsOptions tls;
    // Idle ages are read from it; nullptr (default): Clock::System().
    Clock* clock = nullptr;
  };

  // Settings of one call.
  struct CallOptions {
    // Replaces Options::total_timeout for this exchange (e.g. the time left
    // to a request's deadline). Default: unset.
    std::optional<std::chrono::milliseconds> total_timeout;
  };

  // Counters over all origins.
  struct Stats {
    int64_t connects = 0;  // connections opened so far
    int64_t reuses = 0;    // exchanges that got an already open connection
    int open = 0;          // connections now (busy + idle + being opened)
    int idle = 0;          // of which idle in the pool
    int waiting = 0;       // requests waiting for a free connection
  };

  // kInvalidArgument for a limit below 1 (max_idle below 0), a timeout that
  // is not positive or a CA file that cannot be loaded.
  static ::inferd::StatusOr<std::unique_ptr<ClientPool>> Create(
      boost::asio::any_io_executor executor, const Options& options);
  ClientPool(const ClientPool&) = delete;
  ClientPool& operator=(const ClientPool&) = delete;
  // Closes the idle connections; waiting requests fail with kCancelled.
  ~ClientPool();

  // Sends `request` (see MakeRequest) to the origin of `url` and reads the
  // whole response. `request` and `url` are only read; keep them alive
  // until this completes.
  boost::asio::awaitable<::inferd::StatusOr<ClientResponse>> Send(const ClientRequest& request,
                                                                  const Url& url,
                                                                  CallOptions call = {});
  // Sends `request` and returns once the response header arrived; the body
  // is then read with ClientStream::Next (or SseReader). `request` and
  // `url` must stay alive until this completes (not for the stream's life).
  boost::asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientStream>>> Open(
      const ClientRequest& request, const Url& url, CallOptions call = {});

  Stats GetStats() const;
  const boost::asio::any_io_executor& executor() const;

 private:
  class Impl;
  explicit ClientPool(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace inferd::http
