// ClientPool against a loopback server on the same io_context: keep-alive
// reuse, the per-origin connection limit and its waiter queue, idle expiry
// (fake Clock), stale connections, and the timeouts with their Status.

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <vector>

#include "common/clock.h"
#include "http/client_pool.h"
#include "http/client_test_server.h"

namespace inferd::http {
namespace {

namespace asio = boost::asio;
using client_testing::ClientTest;
using client_testing::Counter;
using client_testing::ExpectBody;
using client_testing::FailOnException;
using std::chrono::milliseconds;

bool Contains(const ::inferd::Status& s, std::string_view text) {
  return s.message().find(text) != std::string::npos;
}

using ClientPoolTest = ClientTest;

TEST_F(ClientPoolTest, ReusesKeepAliveConnection) {
  Start();
  Run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 3; ++i) co_await ExpectBody(*pool_, hello_, url_, "conn 1");
    const ClientPool::Stats stats = pool_->GetStats();
    EXPECT_EQ(stats.connects, 1);
    EXPECT_EQ(stats.reuses, 2);
    EXPECT_EQ(stats.open, 1);
    EXPECT_EQ(stats.idle, 1);
  });
  EXPECT_EQ(server_->accepted(), 1);
}

TEST_F(ClientPoolTest, ConnectionLimitQueuesRequests) {
  ClientPool::Options options;
  options.max_connections = 2;
  Start(options);
  const ClientRequest hold = Get("/hold");
  std::vector<::inferd::StatusOr<ClientResponse>> results;
  Counter done(ioc_);
  Run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 5; ++i) {
      asio::co_spawn(
          ioc_,
          [&]() -> asio::awaitable<void> {
            results.push_back(co_await pool_->Send(hold, url_));
            done.Add();
          },
          FailOnException("a test coroutine"));
    }
    // Two requests reached the server; the other three wait for them.
    co_await server_->held().WaitAtLeast(2);
    ClientPool::Stats stats = pool_->GetStats();
    EXPECT_EQ(stats.open, 2);
    EXPECT_EQ(stats.waiting, 3);
    server_->release().Add();
    co_await done.WaitAtLeast(5);
    stats = pool_->GetStats();
    EXPECT_EQ(stats.connects, 2);
    EXPECT_EQ(stats.waiting, 0);
    EXPECT_EQ(stats.idle, 2);
  });
  ASSERT_EQ(results.size(), 5u);
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->body(), "held");
  }
  EXPECT_EQ(server_->accepted(), 2);
  EXPECT_EQ(server_->max_open(), 2);
  EXPECT_EQ(server_->held().value(), 5);
}

TEST_F(ClientPoolTest, WaiterTimesOutWhenNoConnectionFrees) {
  ClientPool::Options options;
  options.max_connections = 1;
  Start(options);
  const ClientRequest chunked = Get("/chunked");
  Run([&]() -> asio::awaitable<void> {
    // The only connection stays busy while this stream is unfinished.
    auto stream = co_await pool_->Open(chunked, url_);
    EXPECT_TRUE(stream.ok()) << stream.status().ToString();
    ::inferd::StatusOr<ClientResponse> r =
        co_await pool_->Send(hello_, url_, {.total_timeout = milliseconds(50)});
    EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_TRUE(Contains(r.status(), "total timeout (50 ms) expired waiting for a free connection"))
        << r.status().ToString();
    EXPECT_EQ(pool_->GetStats().waiting, 0);
  });
  EXPECT_EQ(server_->accepted(), 1);
}

TEST_F(ClientPoolTest, DestroyingThePoolCancelsWaiters) {
  ClientPool::Options options;
  options.max_connections = 1;
  Start(options);
  const ClientRequest stall = Get("/stall");
  std::optional<::inferd::StatusOr<ClientResponse>> stalled;
  std::optional<::inferd::StatusOr<ClientResponse>> waited;
  Run([&]() -> asio::awaitable<void> {
    asio::co_spawn(
        ioc_, [&]() -> asio::awaitable<void> { stalled = co_await pool_->Send(stall, url_); },
        FailOnException("a test coroutine"));
    asio::co_spawn(
        ioc_, [&]() -> asio::awaitable<void> { waited = co_await pool_->Send(hello_, url_); },
        FailOnException("a test coroutine"));
    // Both spawned coroutines ran up to their first wait (FIFO queue).
    co_await asio::post(ioc_, asio::use_awaitable);
    EXPECT_EQ(pool_->GetStats().waiting, 1);
    // Run then destroys the pool and stops the server.
  });
  ASSERT_TRUE(stalled.has_value() && waited.has_value());
  EXPECT_EQ(waited->status().code(), StatusCode::kCancelled) << waited->status().ToString();
  EXPECT_FALSE(stalled->ok());  // its connection failed or was closed by the server
}

TEST_F(ClientPoolTest, IdleConnectionsExpireByTheClock) {
  FakeClock clock;
  ClientPool::Options options;
  options.clock = &clock;
  options.idle_timeout = milliseconds(1000);
  Start(options);
  Run([&]() -> asio::awaitable<void> {
    co_await ExpectBody(*pool_, hello_, url_, "conn 1");
    clock.Advance(milliseconds(999));
    co_await ExpectBody(*pool_, hello_, url_, "conn 1");
    clock.Advance(milliseconds(1000));
    co_await ExpectBody(*pool_, hello_, url_, "conn 2");
    EXPECT_EQ(pool_->GetStats().open, 1);
  });
  EXPECT_EQ(server_->accepted(), 2);
}

TEST_F(ClientPoolTest, ConnectionCloseAndMaxIdleAreNotPooled) {
  ClientPool::Options options;
  options.max_idle = 0;
  Start(options);
  const ClientRequest close = Get("/close");
  Run([&]() -> asio::awaitable<void> {
    co_await ExpectBody(*pool_, close, url_, "conn 1");
    EXPECT_EQ(pool_->GetStats().open, 0);
    co_await ExpectBody(*pool_, hello_, url_, "conn 2");
    EXPECT_EQ(pool_->GetStats().open, 0);  // max_idle 0: closed after use
    co_await ExpectBody(*pool_, hello_, url_, "conn 3");
  });
  EXPECT_EQ(server_->accepted(), 3);
}

TEST_F(ClientPoolTest, RetriesOnceWhenTheServerClosedAnIdleConnection) {
  Start();
  const ClientRequest drop = Get("/drop");
  Run([&]() -> asio::awaitable<void> {
    co_await ExpectBody(*pool_, drop, url_, "conn 1");
    co_await ExpectBody(*pool_, hello_, url_, "conn 2");
  });
  EXPECT_EQ(server_->accepted(), 2);
}

TEST_F(ClientPoolTest, FirstByteTimeout) {
  ClientPool::Options options;
  options.first_byte_timeout = milliseconds(50);
  Start(options);
  const ClientRequest stall = Get("/stall");
  Run([&]() -> asio::awaitable<void> {
    ::inferd::StatusOr<ClientResponse> r = co_await pool_->Send(stall, url_);
    EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_TRUE(Contains(r.status(), "first-byte timeout (50 ms) expired"))
        << r.status().ToString();
    EXPECT_EQ(TransportErrorKind(r.status()), "timeout");
    EXPECT_EQ(pool_->GetStats().open, 0);
  });
}

TEST_F(ClientPoolTest, TotalTimeout) {
  Start();
  const ClientRequest stall = Get("/stall");
  Run([&]() -> asio::awaitable<void> {
    ::inferd::StatusOr<ClientResponse> r =
        co_await pool_->Send(stall, url_, {.total_timeout = milliseconds(50)});
    EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_TRUE(Contains(r.status(), "total timeout (50 ms) expired")) << r.status().ToString();
  });
}

TEST_F(ClientPoolTest, ResponseLargerThanTheLimit) {
  ClientPool::Options options;
  options.max_response_bytes = 3;
  Start(options);
  Run([&]() -> asio::awaitable<void> {
    ::inferd::StatusOr<ClientResponse> r = co_await pool_->Send(hello_, url_);
    EXPECT_EQ(r.status().code(), StatusCode::kInternal);
    EXPECT_TRUE(Contains(r.status(), "max_response_bytes")) << r.status().ToString();
  });
}

TEST_F(ClientPoolTest, ConnectionRefused) {
  uint16_t port = 0;
  {
    asio::ip::tcp::acceptor probe(ioc_, {asio::ip::make_address("127.0.0.1"), 0});
    port = probe.local_endpoint().port();
  }
  Start();
  const Url closed = *ParseUrl("http://127.0.0.1:" + std::to_string(port));
  const ClientRequest to_closed = MakeRequest(closed, Verb::get, "/hello");
  Run([&]() -> asio::awaitable<void> {
    ::inferd::StatusOr<ClientResponse> r = co_await pool_->Send(to_closed, closed);
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
    EXPECT_EQ(TransportErrorKind(r.status()), "connect");
    EXPECT_EQ(pool_->GetStats().open, 0);
  });
}

TEST_F(ClientPoolTest, ConnectTimeout) {
  // A listener whose accept queue is full: the kernel drops further SYNs,
  // so a connect to it never completes.
  asio::ip::tcp::acceptor full(ioc_, asio::ip::tcp::v4());
  full.bind({asio::ip::make_address("127.0.0.1"), 0});
  full.listen(0);
  std::vector<asio::ip::tcp::socket> fillers;
  for (int i = 0; i < 4; ++i) {
    fillers.emplace_back(ioc_).async_connect(full.local_endpoint(), [](auto) {});
  }
  ClientPool::Options options;
  options.connect_timeout = milliseconds(100);
  Start(options);
  const Url url = *ParseUrl("http://" + full.local_endpoint().address().to_string() + ":" +
                            std::to_string(full.local_endpoint().port()));
  const ClientRequest request = MakeRequest(url, Verb::get, "/hello");
  Run([&]() -> asio::awaitable<void> {
    ::inferd::StatusOr<ClientResponse> r = co_await pool_->Send(request, url);
    EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().ToString();
    EXPECT_TRUE(Contains(r.status(), "connect timeout (100 ms) expired connecting to"))
        << r.status().ToString();
    EXPECT_EQ(pool_->GetStats().open, 0);
    for (asio::ip::tcp::socket& s : fillers) s.close();
  });
}

TEST(ClientPoolOptionsTest, RejectsBadOptions) {
  asio::io_context ioc;
  ClientPool::Options options;
  options.max_connections = 0;
  EXPECT_EQ(ClientPool::Create(ioc.get_executor(), options).status().code(),
            StatusCode::kInvalidArgument);
  options = {};
  options.first_byte_timeout = milliseconds(0);
  EXPECT_EQ(ClientPool::Create(ioc.get_executor(), options).status().code(),
            StatusCode::kInvalidArgument);
  options = {};
  options.tls.ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(ClientPool::Create(ioc.get_executor(), options).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace inferd::http
