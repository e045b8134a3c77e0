#pragma once
// Server: an HTTP/1.1 server on Boost.Beast with C++20 coroutines.
//
// One io_context per I/O thread; accepted connections are spread over them
// round-robin, and a connection lives on one thread, so per-connection state
// needs no lock. Handlers never block an I/O thread: they answer through a
// Responder, from any thread, whenever the work is done.
//
// Limits and errors (each answered with {"error": ...}): a request whose
// header or body is not complete `read_timeout` after its first byte: 408;
// a body over max_body_bytes: 413; a header over max_header_bytes: 431;
// malformed HTTP: 400; the checks of RequestReader (Transfer-Encoding,
// Content-Encoding). After such an error the connection is closed.
// Keep-alive connections idle for `idle_timeout` are closed. A handler that
// throws is answered 500 (logged, counted); the connection goes on.
// HEAD is answered with GET's header and no body.
//
// Streams: a handler may answer with Responder::StartStream; the body then
// goes out chunked as the producer writes it, with backpressure (see
// StreamWriter and max_stream_buffer_bytes). While a request waits for its
// answer or streams it, a client that closes its connection is detected and
// the request's cancellation (Responder::cancellation()) fires.
//
// Shutdown: StopAccepting() closes the listener; BeginDrain() makes every
// further response carry Connection: close and closes idle connections;
// WaitIdle() waits for requests in progress to be answered; Stop() ends the
// I/O threads.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "http/request_reader.h"
#include "http/router.h"
#include "metrics/metrics.h"

namespace inferd::http {

class Server {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 8000;  // 0: pick a free port (see port())
    int threads = 2;       // I/O threads
    size_t max_body_bytes = 64u << 20;
    size_t max_header_bytes = 16u << 10;
    std::chrono::milliseconds read_timeout{30000};
    std::chrono::milliseconds idle_timeout{60000};
    std::chrono::milliseconds write_timeout{30000};
    // How often each I/O thread asks the kernel (one poll(2) for all of
    // them) about the connections that began waiting for their next request
    // since it last asked: the wait after a short read reads nothing until
    // epoll reports new data, and a client that half-closed right behind its
    // last request raises no new event (DrainedReads); such a connection is
    // woken to read its end of stream. Bounds how long the server keeps a
    // half-closed keep-alive connection open after answering it. 0: no
    // check (such a connection then waits for idle_timeout).
    std::chrono::milliseconds idle_check_interval{1000};
    // Open connections beyond which a new one gets 503 + Retry-After and is
    // closed (idle keep-alive connections are closed first to make room).
    // 0: the file-descriptor limit less max(256, limit / 8) for the disk
    // tier, Redis and upstreams.
    int64_t max_connections = 0;
    // Bytes of a streamed response (chunked, text/event-stream) the server
    // holds for a client that has not read them yet; beyond it the producer
    // waits (StreamWriter). A client that reads nothing for write_timeout
    // is dropped and its request cancelled.
    size_t max_stream_buffer_bytes = 64u << 10;
    // JSON responses of at least this many bytes are gzip-compressed (level
    // 1) for clients whose Accept-Encoding takes gzip; 0: never.
    size_t gzip_min_bytes = 16384;
    // Optional: counts every response as inferd_http_responses_total{code}.
    Registry* registry = nullptr;
    // Optional: refuses a request from its header alone, before its body is
    // read (RequestReader::Options::check_header); the answer closes the
    // connection.
    std::function<std::optional<HttpError>(const Request& header)> check_header;
  };

  // Binds and listens; the router must outlive the server.
  static StatusOr<std::unique_ptr<Server>> Create(const Options& options, const Router* router);
  ~Server();

  uint16_t port() const;
  void Start();          // starts the I/O threads
  void StopAccepting();  // no new connections
  void BeginDrain();     // close idle connections; answer the rest with Connection: close
  // Waits until no request is in progress or `deadline` (real time) passes.
  // Returns true when idle.
  bool WaitIdle(std::chrono::steady_clock::time_point deadline);
  void Stop();  // stops and joins the I/O threads

  int64_t requests_in_progress() const;
  int64_t max_connections() const;

  // Runs `fn` on one of the I/O threads (round robin), soon: for work that
  // finished elsewhere and must continue off that thread (the pipeline
  // after a Redis rate-limit decision). `fn` must not block. After Stop()
  // it never runs (it is destroyed with the server).
  void Post(std::function<void()> fn);

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace inferd::http
