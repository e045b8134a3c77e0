#pragma once
// Test support for the HTTP client tests: a loopback HTTP/1.1 server (plain
// or TLS) and an awaitable counter. Everything runs as coroutines on the
// test's own io_context, on one thread, so the client and the server
// interleave deterministically: the server sends the next piece only when
// the test says so, and the test waits on counters, never sleeps.

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "http/client.h"
#include "http/client_pool.h"
#include "http/types.h"

// ASSERT_TRUE(x.ok()) for a coroutine body (ASSERT_* would `return`).
#define CO_ASSERT_OK(x)                                              \
  do {                                                               \
    if (!(x).ok()) {                                                 \
      ADD_FAILURE() << #x << " failed: " << (x).status().ToString(); \
      co_return;                                                     \
    }                                                                \
  } while (0)

namespace inferd::http::client_testing {

// co_spawn's completion for test coroutines: an exception fails the test
// instead of vanishing (as it would with asio::detached).
inline auto FailOnException(const char* what) {
  return [what](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      ADD_FAILURE() << what << " threw: " << ex.what();
    } catch (...) {
      ADD_FAILURE() << what << " threw";
    }
  };
}

// A count that coroutines can wait for.
class Counter {
 public:
  explicit Counter(boost::asio::io_context& ioc);
  void Add(int n = 1);
  int value() const { return value_; }
  // Returns once value() >= n.
  boost::asio::awaitable<void> WaitAtLeast(int n);

 private:
  int value_ = 0;
  boost::asio::steady_timer wake_;  // never expires; cancel() wakes every waiter
};

// Runs `body` on `ioc` until the io_context has no work left; rethrows an
// exception that escaped it. `done` runs when `body` finished (e.g. stops
// the servers, so that the io_context runs out of work).
void RunIo(boost::asio::io_context& ioc, const std::function<boost::asio::awaitable<void>()>& body,
           const std::function<void()>& done = nullptr);

// A loopback server on 127.0.0.1 with an ephemeral port. Targets:
//   /hello    200 "conn <n>" (n: the connection's number from 1), keep-alive
//   /close    200, "Connection: close"
//   /drop     200 keep-alive, then the server closes the connection anyway
//   /hold     counted by held(); answered 200 "held" once release() >= 1
//   /stall    read, never answered
//   /chunked  chunked body "piece1", "piece2": each piece k+1 and the end
//             are sent only once step() >= k; pieces_sent() counts them
//   /sse      text/event-stream in chunks, gated by step() the same way
//             (see kSseChunks)
// Stop() (or the destructor) closes every connection and ends every wait.
class TestServer {
 public:
  // The SSE body, chunk by chunk: CRLF, CR and LF line ends, a CRLF split
  // between chunks, comments, a field without colon, multi-line data, an
  // event without data, and an unterminated last event.
  static constexpr std::string_view kSseChunks[] = {
      ": a comment\r\nevent: greeting\r\ndata: hello\r\ndata:  world\r\nid: 7\r\n\r\n",
      "data\rdata:tail\r\n\r\n:only a comment\n\nevent: no-data\n\ndata: split\r",
      "\n\r\ndata: never dispatched\n",
  };

  // `tls`: a server context (certificate and key loaded), or null for http.
  TestServer(boost::asio::io_context& ioc,
             std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~TestServer();

  // "http://host:port" (https with TLS).
  std::string url(std::string_view host = "127.0.0.1") const;
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }
  int open() const { return open_; }
  int max_open() const { return max_open_; }
  int pieces_sent() const { return pieces_sent_; }
  // The SNI host name of the last TLS handshake ("" for none).
  const std::string& last_sni() const { return last_sni_; }
  Counter& held() { return held_; }
  Counter& release() { return release_; }
  Counter& step() { return step_; }

  void Stop();

 private:
  boost::asio::awaitable<void> Accept();
  template <typename Stream>
  boost::asio::awaitable<void> Serve(std::shared_ptr<Stream> stream, int number);
  // Answers one request; false when the connection is to be closed.
  template <typename Stream>
  boost::asio::awaitable<bool> Answer(Stream& stream, const ClientRequest& request, int number);
  template <typename Stream>
  boost::asio::awaitable<bool> SendPieces(Stream& stream, std::string_view content_type,
                                          const std::string_view* pieces, int count);

  boost::asio::io_context& ioc_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  int accepted_ = 0;
  int open_ = 0;
  int max_open_ = 0;
  int pieces_sent_ = 0;
  std::string last_sni_;
  bool stopped_ = false;
  Counter held_;
  Counter release_;
  Counter step_;
  Counter stop_;
  std::map<int, std::function<void()>> closers_;  // by connection number
};

// Sends `request` with `pool` and expects a 200 with `body`.
boost::asio::awaitable<void> ExpectBody(ClientPool& pool, const ClientRequest& request,
                                        const Url& url, std::string_view body);

// A test server and a ClientPool on one io_context.
class ClientTest : public ::testing::Test {
 protected:
  // Starts the server (TLS when `tls` is set) and the pool; url_ is the
  // server's, with host `host`, and hello_ a GET /hello on it.
  void Start(const ClientPool::Options& options = {},
             std::shared_ptr<boost::asio::ssl::context> tls = nullptr,
             std::string_view host = "127.0.0.1");
  ClientRequest Get(std::string_view target) const { return MakeRequest(url_, Verb::get, target); }
  // Runs `body`, then stops the server and destroys the pool (waiting
  // requests fail), so that the io_context runs out of work.
  void Run(const std::function<boost::asio::awaitable<void>()>& body);

  boost::asio::io_context ioc_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<ClientPool> pool_;
  Url url_;
  ClientRequest hello_;  // GET /hello on url_
};

}  // namespace inferd::http::client_testing
