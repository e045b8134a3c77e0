// Tests of the HTTP client, the load generator and RunBench against a small
// in-process HTTP server on loopback.

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "bench/bench.h"
#include "bench/load_generator.h"
#include "http/client.h"

namespace inferd::bench {
namespace {

// co_spawn's completion for test coroutines: an exception fails the test
// instead of vanishing (as it would with asio::detached).
auto FailOnException() {
  return [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      ADD_FAILURE() << "a test coroutine threw: " << ex.what();
    }
  };
}

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using http::beast_http::field;

// A loopback HTTP/1.1 server on its own thread. The handler returns the
// response, or nullopt to never answer. Responses with the header
// "X-Test-Drop" are sent with keep-alive and then the socket is closed, as a
// server closing an idle connection would.
class FakeServer {
 public:
  using Handler = std::function<std::optional<http::ClientResponse>(const http::ClientRequest&)>;

  explicit FakeServer(Handler handler)
      : handler_(std::move(handler)), acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, Accept(), FailOnException());
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~FakeServer() {
    ioc_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_.load(); }

 private:
  asio::awaitable<void> Accept() {
    while (true) {
      tcp::socket socket = co_await acceptor_.async_accept(asio::use_awaitable);
      ++accepted_;
      asio::co_spawn(ioc_, Session(std::move(socket)), FailOnException());
    }
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    while (true) {
      http::ClientRequest req;
      co_await http::beast_http::async_read(socket, buffer, req,
                                            asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      std::optional<http::ClientResponse> res = handler_(req);
      if (!res) {
        asio::steady_timer never(ioc_, std::chrono::hours(1));
        co_await never.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        co_return;
      }
      const bool drop = res->find("X-Test-Drop") != res->end();
      res->prepare_payload();
      co_await http::beast_http::async_write(socket, *res,
                                             asio::redirect_error(asio::use_awaitable, ec));
      if (ec || drop || !res->keep_alive()) {
        socket.shutdown(tcp::socket::shutdown_both, ec);
        socket.close(ec);
        co_return;
      }
    }
  }

  Handler handler_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

http::ClientResponse Reply(http::Status status, std::string body = "{}") {
  http::ClientResponse res{status, 11};
  res.set(field::content_type, "application/json");
  res.body() = std::move(body);
  return res;
}

std::optional<http::ClientResponse> Route(const http::ClientRequest& req) {
  const std::string target(req.target());
  if (target == "/hang") return std::nullopt;
  if (target == "/busy") return Reply(http::Status::service_unavailable);
  http::ClientResponse res = Reply(http::Status::ok, "ok");
  if (target == "/close") res.keep_alive(false);
  if (target == "/drop") res.set("X-Test-Drop", "1");
  return res;
}

http::Url UrlOf(const FakeServer& server) { return *http::ParseUrl(server.url()); }

// Runs `n` sequential requests for `target` on one connection.
std::vector<StatusOr<http::ClientResponse>> SendSequence(const http::Url& url,
                                                         const std::string& target, int n,
                                                         http::ClientConnection::Options options,
                                                         int64_t* connects) {
  asio::io_context ioc;
  http::ClientConnection conn(ioc.get_executor(), url, options);
  const http::ClientRequest req = http::MakeRequest(url, http::Verb::get, target);
  std::vector<StatusOr<http::ClientResponse>> results;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < n; ++i) results.push_back(co_await conn.Send(req));
      },
      FailOnException());
  ioc.run();
  *connects = conn.connects();
  return results;
}

TEST(ClientConnectionTest, ReusesKeepAliveConnection) {
  FakeServer server(Route);
  int64_t connects = 0;
  auto results = SendSequence(UrlOf(server), "/ok", 5, {}, &connects);
  ASSERT_EQ(results.size(), 5u);
  for (auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->result(), http::Status::ok);
    EXPECT_EQ(r->body(), "ok");
  }
  EXPECT_EQ(connects, 1);
  EXPECT_EQ(server.accepted(), 1);
}

TEST(ClientConnectionTest, ReconnectsAfterConnectionClose) {
  FakeServer server(Route);
  int64_t connects = 0;
  auto results = SendSequence(UrlOf(server), "/close", 3, {}, &connects);
  for (auto& r : results) ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(connects, 3);
}

TEST(ClientConnectionTest, RetriesOnceWhenServerDroppedIdleConnection) {
  FakeServer server(Route);
  int64_t connects = 0;
  auto results = SendSequence(UrlOf(server), "/drop", 3, {}, &connects);
  for (auto& r : results) ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(connects, 3);
}

TEST(ClientConnectionTest, TimesOut) {
  FakeServer server(Route);
  http::ClientConnection::Options options;
  options.request_timeout = std::chrono::milliseconds(100);
  int64_t connects = 0;
  auto results = SendSequence(UrlOf(server), "/hang", 1, options, &connects);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(http::TransportErrorKind(results[0].status()), "timeout");
}

TEST(ClientConnectionTest, ConnectRefused) {
  uint16_t port = 0;
  {
    asio::io_context ioc;
    tcp::acceptor probe(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    port = probe.local_endpoint().port();
  }  // closed: nothing listens there now
  auto r = http::FetchOnce("http://127.0.0.1:" + std::to_string(port), http::Verb::get, "/");
  EXPECT_EQ(http::TransportErrorKind(r.status()), "connect") << r.status().ToString();
}

TEST(ClientConnectionTest, FetchOnce) {
  FakeServer server(Route);
  auto r = http::FetchOnce(server.url(), http::Verb::post, "/ok", "{}");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->body(), "ok");
}

LoadSpec ShortSpec(const FakeServer& server, const std::string& target) {
  LoadSpec spec;
  spec.url = UrlOf(server);
  spec.request = http::MakeRequest(spec.url, http::Verb::get, target);
  spec.warmup = std::chrono::milliseconds(50);
  spec.duration = std::chrono::milliseconds(300);
  spec.timeout = std::chrono::milliseconds(2000);
  return spec;
}

TEST(LoadGeneratorTest, ClosedLoop) {
  FakeServer server(Route);
  LoadSpec spec = ShortSpec(server, "/ok");
  spec.concurrency = 4;
  spec.threads = 2;
  auto r = RunLoad(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->ok, 0);
  EXPECT_EQ(r->errors, 0);
  EXPECT_EQ(static_cast<int64_t>(r->latencies_ns.size()), r->ok);
  EXPECT_EQ(r->connections, 4);
  EXPECT_EQ(server.accepted(), 4);
}

TEST(LoadGeneratorTest, OpenLoopSendsAtTheRate) {
  FakeServer server(Route);
  LoadSpec spec = ShortSpec(server, "/ok");
  spec.rate = 200;  // 70 requests are due by the end of the 350 ms run
  spec.threads = 2;
  auto r = RunLoad(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->ok, 20);
  EXPECT_LE(r->ok, 71);
  EXPECT_EQ(r->errors, 0);
  EXPECT_GE(r->connections, 2);

  spec.poisson = true;
  r = RunLoad(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->ok, 10);
}

TEST(LoadGeneratorTest, CountsErrorsByStatus) {
  FakeServer server(Route);
  LoadSpec spec = ShortSpec(server, "/busy");
  spec.concurrency = 2;
  auto r = RunLoad(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ok, 0);
  EXPECT_GT(r->errors, 0);
  EXPECT_EQ(r->errors_by_kind["503"], r->errors);
}

// A KServe v2 endpoint for model "m" that checks the binary extension header,
// counts requests by the identity they carry, and refuses inference with the
// API key "limited" (429).
struct FakeModel {
  std::atomic<int> infer_requests{0};
  std::atomic<int> bad_requests{0};
  std::mutex mu;
  // "GET|POST auth=<Authorization> prio=<X-Inferd-Priority> foo=<X-Foo>
  // global=<X-Global>" -> requests.
  std::map<std::string, int> identities;

  std::optional<http::ClientResponse> operator()(const http::ClientRequest& req) {
    const std::string target(req.target());
    {
      std::lock_guard<std::mutex> lock(mu);
      ++identities[std::string(req.method_string()) +
                   " auth=" + std::string(req[field::authorization]) +
                   " prio=" + std::string(req["X-Inferd-Priority"]) +
                   " foo=" + std::string(req["X-Foo"]) + " global=" + std::string(req["X-Global"])];
    }
    if (target == "/v2/models/m" && req.method() == http::Verb::get) {
      return Reply(http::Status::ok,
                   R"({"name":"m","versions":["1"],"platform":"x","inputs":[{"name":"in",)"
                   R"("datatype":"FP32","shape":[-1,4]}],"outputs":[{"name":"out",)"
                   R"("datatype":"FP32","shape":[-1,2]}]})");
    }
    if (target == "/v2/models/m/infer" && req.method() == http::Verb::post) {
      ++infer_requests;
      if (req[field::authorization] == "Bearer limited") {
        return Reply(http::Status::too_many_requests, R"({"error":"rate limited"})");
      }
      auto header = req.find("Inference-Header-Content-Length");
      if (header != req.end() && std::stoul(std::string(header->value())) >= req.body().size()) {
        ++bad_requests;
        return Reply(http::Status::bad_request, R"({"error":"bad header length"})");
      }
      return Reply(http::Status::ok, R"({"outputs":[]})");
    }
    return Reply(http::Status::not_found, R"({"error":"no such model"})");
  }
};

TEST(RunBenchTest, ClosedLoopEndToEnd) {
  FakeModel model;
  FakeServer server(std::ref(model));
  BenchOptions o;
  o.url = server.url();
  o.model = "m";
  o.concurrency = {1, 2};
  o.duration_s = 0.2;
  o.warmup_s = 0;
  o.payload = "binary";
  o.batch_size = 3;
  auto report = RunBench(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->levels.size(), 2u);
  EXPECT_EQ(report->levels[1].concurrency, 2);
  EXPECT_GT(report->levels[0].completed, 0);
  EXPECT_DOUBLE_EQ(report->levels[0].throughput_items, 3 * report->levels[0].throughput_rps);
  EXPECT_EQ(model.bad_requests.load(), 0);
  EXPECT_EQ(report->infer_target, "/v2/models/m/infer");

  std::ostringstream table;
  PrintReport(*report, table);
  EXPECT_NE(table.str().find("concurrency"), std::string::npos);
  EXPECT_NE(table.str().find("p99.9 ms"), std::string::npos);

  const std::string path = testing::TempDir() + "bench_report.json";
  ASSERT_TRUE(WriteReportJson(*report, path).ok());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_FALSE(parser.load(path).get(doc));
  EXPECT_EQ(doc["levels"].get_array().size(), 2u);
  EXPECT_EQ(int64_t(doc["options"]["batch_size"]), 3);
  std::remove(path.c_str());
}

TEST(RunBenchTest, ReportsServerErrors) {
  FakeModel model;
  FakeServer server(std::ref(model));
  BenchOptions o;
  o.url = server.url();
  o.model = "missing";
  auto r = RunBench(o);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("no such model"), std::string::npos);

  o.model = "m";
  o.shapes = {"in=5"};  // model input is [-1,4]
  EXPECT_EQ(RunBench(o).status().code(), StatusCode::kInvalidArgument);
  o.shapes.clear();
  o.concurrency = {0};
  EXPECT_EQ(RunBench(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(RunBenchTest, SendsTheIdentityOnEveryRequest) {
  FakeModel model;
  FakeServer server(std::ref(model));
  BenchOptions o;
  o.url = server.url();
  o.model = "m";
  o.concurrency = {2};
  o.duration_s = 0.1;
  o.warmup_s = 0;
  o.api_key = "K1";
  o.priority = 2;
  o.headers = {"X-Foo: bar", "X-Global:g"};
  auto report = RunBench(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->levels.size(), 1u);
  EXPECT_TRUE(report->levels[0].classes.empty());
  std::lock_guard<std::mutex> lock(model.mu);
  const std::map<std::string, int> expected_keys = {
      {"GET auth=Bearer K1 prio= foo=bar global=g", 1},  // metadata: no priority
      {"POST auth=Bearer K1 prio=2 foo=bar global=g", model.infer_requests.load()}};
  EXPECT_EQ(model.identities, expected_keys);
}

TEST(RunBenchTest, MixRunsClassesWithTheirOwnIdentity) {
  FakeModel model;
  FakeServer server(std::ref(model));
  BenchOptions o;
  o.url = server.url();
  o.model = "m";
  o.duration_s = 0.2;
  o.warmup_s = 0;
  o.threads = 2;
  o.api_key = "G";
  o.priority = 3;
  o.headers = {"X-Global: g"};
  // "high" has an SLO of 1 ns that no request meets; "low" is refused (429).
  o.mix =
      "high:priority=1,rate=100,slo_ms=0.000001,header=X-Foo:bar;low:priority=2,rate=50,"
      "api_key=limited";
  auto report = RunBench(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->levels.size(), 1u);
  const LevelReport& level = report->levels[0];
  EXPECT_DOUBLE_EQ(level.rate, 150);
  ASSERT_EQ(level.classes.size(), 2u);
  const ClassReport& high = level.classes[0];
  const ClassReport& low = level.classes[1];
  EXPECT_EQ(high.name, "high");
  EXPECT_EQ(high.priority, 1);
  EXPECT_DOUBLE_EQ(high.rate, 100);
  EXPECT_EQ(low.name, "low");
  EXPECT_EQ(low.priority, 2);

  // The level is the sum of its classes.
  EXPECT_EQ(level.completed, high.completed + low.completed);
  EXPECT_EQ(level.errors, high.errors + low.errors);
  EXPECT_EQ(level.backlog, high.backlog + low.backlog);
  EXPECT_EQ(level.connections, high.connections + low.connections);
  EXPECT_EQ(level.latency.count, high.latency.count + low.latency.count);
  EXPECT_DOUBLE_EQ(level.throughput_rps, high.throughput_rps + low.throughput_rps);
  EXPECT_EQ(level.errors_by_kind, low.errors_by_kind);

  EXPECT_EQ(high.errors, 0);
  EXPECT_EQ(high.latency.count, high.completed);
  EXPECT_DOUBLE_EQ(high.goodput_rps, 0);  // nothing within 1 ns
  EXPECT_DOUBLE_EQ(high.served_fraction, high.sent > 0 ? 1.0 : 0.0);
  EXPECT_EQ(low.completed, 0);
  EXPECT_DOUBLE_EQ(low.served_fraction, 0);
  EXPECT_DOUBLE_EQ(low.goodput_rps, low.throughput_rps);  // no SLO
  EXPECT_EQ(low.errors_by_kind.size(), low.errors > 0 ? 1u : 0u);
  if (low.errors > 0) {
    EXPECT_EQ(low.errors_by_kind.at("429"), low.errors);
  }

  {
    std::lock_guard<std::mutex> lock(model.mu);
    const std::string high_key = "POST auth=Bearer G prio=1 foo=bar global=g";
    const std::string low_key = "POST auth=Bearer limited prio=2 foo= global=g";
    const std::string metadata_key = "GET auth=Bearer G prio= foo=bar global=g";  // as "high"
    EXPECT_EQ(model.identities.size(), 3u);
    EXPECT_EQ(model.identities[metadata_key], 1);
    EXPECT_GE(model.identities[high_key], 1 + high.sent);  // the probe and the run
    EXPECT_GE(model.identities[low_key], 1 + low.sent);
    EXPECT_EQ(model.identities[high_key] + model.identities[low_key], model.infer_requests.load());
  }

  std::ostringstream table;
  PrintReport(*report, table);
  EXPECT_NE(table.str().find("goodput/s"), std::string::npos) << table.str();
  EXPECT_NE(table.str().find("\nlow "), std::string::npos) << table.str();

  const std::string path = testing::TempDir() + "bench_mix_report.json";
  ASSERT_TRUE(WriteReportJson(*report, path).ok());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_FALSE(parser.load(path).get(doc));
  EXPECT_EQ(std::string_view(doc["mode"]), "open_loop");
  simdjson::dom::array classes = doc["levels"].at(0)["classes"];
  ASSERT_EQ(classes.size(), 2u);
  EXPECT_EQ(std::string_view(classes.at(1)["name"]), "low");
  EXPECT_EQ(int64_t(classes.at(1)["completed"]), 0);
  EXPECT_EQ(int64_t(classes.at(0)["sent"]), high.sent);
  const std::string mix{std::string_view(doc["options"]["mix"])};
  EXPECT_EQ(mix.find("limited"), std::string::npos) << mix;  // keys are not written
  EXPECT_TRUE(bool(doc["options"]["api_key_set"]));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace inferd::bench
