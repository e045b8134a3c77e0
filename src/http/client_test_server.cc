#include "http/client_test_server.h"

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cstdio>
#include <exception>

namespace inferd::http::client_testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;

constexpr std::string_view kChunkedPieces[] = {"piece1", "piece2"};
constexpr int kNeverEnough = 1 << 30;

auto Await(beast::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

std::string Chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return std::string(size) + std::string(data) + "\r\n";
}

}  // namespace

Counter::Counter(asio::io_context& ioc) : wake_(ioc, asio::steady_timer::time_point::max()) {}

void Counter::Add(int n) {
  value_ += n;
  wake_.cancel();
}

asio::awaitable<void> Counter::WaitAtLeast(int n) {
  while (value_ < n) {
    beast::error_code ec;
    co_await wake_.async_wait(Await(ec));
  }
}

void RunIo(asio::io_context& ioc, const std::function<asio::awaitable<void>()>& body,
           const std::function<void()>& done) {
  std::exception_ptr failure;
  asio::co_spawn(ioc, body(), [&](std::exception_ptr e) {
    failure = e;
    if (done) done();
  });
  ioc.run();
  ioc.restart();
  if (failure) std::rethrow_exception(failure);
}

TestServer::TestServer(asio::io_context& ioc, std::shared_ptr<asio::ssl::context> tls)
    : ioc_(ioc),
      tls_(std::move(tls)),
      acceptor_(ioc, {asio::ip::make_address("127.0.0.1"), 0}),
      held_(ioc),
      release_(ioc),
      step_(ioc),
      stop_(ioc) {
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(ioc_, Accept(), FailOnException("a test coroutine"));
}

TestServer::~TestServer() { Stop(); }

std::string TestServer::url(std::string_view host) const {
  return std::string(tls_ ? "https://" : "http://") + std::string(host) + ":" +
         std::to_string(port_);
}

void TestServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  beast::error_code ignored;
  acceptor_.close(ignored);
  for (auto& [number, close] : closers_) close();
  stop_.Add(kNeverEnough);
  release_.Add(kNeverEnough);
  step_.Add(kNeverEnough);
}

asio::awaitable<void> TestServer::Accept() {
  while (!stopped_) {
    beast::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(Await(ec));
    if (ec) co_return;
    const int number = ++accepted_;
    if (tls_) {
      auto stream = std::make_shared<beast::ssl_stream<beast::tcp_stream>>(
          beast::tcp_stream(std::move(socket)), *tls_);
      asio::co_spawn(ioc_, Serve(std::move(stream), number), FailOnException("a test coroutine"));
    } else {
      auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
      asio::co_spawn(ioc_, Serve(std::move(stream), number), FailOnException("a test coroutine"));
    }
  }
}

template <typename Stream>
asio::awaitable<void> TestServer::Serve(std::shared_ptr<Stream> stream, int number) {
  ++open_;
  max_open_ = std::max(max_open_, open_);
  closers_[number] = [s = stream.get()] { beast::get_lowest_layer(*s).close(); };
  beast::error_code ec;
  bool alive = true;
  if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
    co_await stream->async_handshake(asio::ssl::stream_base::server, Await(ec));
    const char* sni = SSL_get_servername(stream->native_handle(), TLSEXT_NAMETYPE_host_name);
    last_sni_ = sni != nullptr ? sni : "";
    alive = !ec;
  }
  beast::flat_buffer buffer;
  while (alive && !stopped_) {
    ClientRequest request;
    co_await beast_http::async_read(*stream, buffer, request, Await(ec));
    if (ec) break;
    alive = co_await Answer(*stream, request, number);
  }
  closers_.erase(number);
  beast::get_lowest_layer(*stream).close();
  --open_;
}

template <typename Stream>
asio::awaitable<bool> TestServer::Answer(Stream& stream, const ClientRequest& request, int number) {
  const std::string target(request.target());
  if (target == "/stall") {
    co_await stop_.WaitAtLeast(1);
    co_return false;
  }
  if (target == "/chunked") co_return co_await SendPieces(stream, "text/plain", kChunkedPieces, 2);
  if (target == "/sse") co_return co_await SendPieces(stream, "text/event-stream", kSseChunks, 3);
  ClientResponse response{Status::ok, 11};
  response.keep_alive(target != "/close");
  response.body() = "conn " + std::to_string(number);
  if (target == "/hold") {
    held_.Add();
    co_await release_.WaitAtLeast(1);
    if (stopped_) co_return false;
    response.body() = "held";
  }
  response.prepare_payload();
  beast::error_code ec;
  co_await beast_http::async_write(stream, response, Await(ec));
  co_return !ec && target != "/drop" && response.keep_alive();
}

template <typename Stream>
asio::awaitable<bool> TestServer::SendPieces(Stream& stream, std::string_view content_type,
                                             const std::string_view* pieces, int count) {
  pieces_sent_ = 0;
  std::string out = "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(content_type) +
                    "\r\nTransfer-Encoding: chunked\r\n\r\n";
  beast::error_code ec;
  for (int i = 0; i <= count; ++i) {
    if (i > 0) {
      co_await step_.WaitAtLeast(i);
      if (stopped_) co_return false;
    }
    out += i < count ? Chunk(pieces[i]) : "0\r\n\r\n";
    co_await asio::async_write(stream, asio::buffer(out), Await(ec));
    if (ec) co_return false;
    out.clear();
    ++pieces_sent_;
  }
  co_return true;
}

asio::awaitable<void> ExpectBody(ClientPool& pool, const ClientRequest& request, const Url& url,
                                 std::string_view body) {
  ::inferd::StatusOr<ClientResponse> r = co_await pool.Send(request, url);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (r.ok()) {
    EXPECT_EQ(r->result(), Status::ok);
    EXPECT_EQ(r->body(), body);
  }
}

void ClientTest::Start(const ClientPool::Options& options, std::shared_ptr<asio::ssl::context> tls,
                       std::string_view host) {
  server_ = std::make_unique<TestServer>(ioc_, std::move(tls));
  ::inferd::StatusOr<std::unique_ptr<ClientPool>> pool =
      ClientPool::Create(ioc_.get_executor(), options);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  pool_ = std::move(pool).value();
  ::inferd::StatusOr<Url> url = ParseUrl(server_->url(host));
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  url_ = *url;
  hello_ = Get("/hello");
}

void ClientTest::Run(const std::function<asio::awaitable<void>()>& body) {
  RunIo(ioc_, body, [this] {
    if (server_) server_->Stop();
    pool_.reset();
  });
}

}  // namespace inferd::http::client_testing
