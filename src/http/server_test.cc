// http::Server against a real client socket on loopback: a client that
// closes its connection while its answer is pending raises the request's
// cancellation; a client that waits gets its answer and no cancellation; a
// client that half-closes behind its last request is answered and closed
// long before the idle timeout; a client whose pipelined requests are all
// there does not hold back the other connections on its I/O thread.

#include "http/server.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "http/server_impl.h"

namespace inferd::http {
namespace {

constexpr auto kGuard = std::chrono::seconds(30);  // turns a hang into a failure

int Connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

void SendAll(int fd, const std::string& s) {
  ASSERT_EQ(send(fd, s.data(), s.size(), 0), static_cast<ssize_t>(s.size()));
}

// Reads until the peer closes or `marker` has arrived.
std::string ReadUntil(int fd, const std::string& marker) {
  std::string got;
  char buf[4096];
  while (got.find(marker) == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Add(Verb::get, "/now", [](Request&&, const PathParams&, Responder r) {
      r.Send(MakeJsonResponse(Status::ok, "{\"now\":true}"));
    });
    // Answers later: hands its Responder to the test.
    router_.Add(Verb::get, "/wait",
                [this](Request&&, const PathParams&, Responder r) { waiting_.set_value(r); });
    // Answers with a stream and hands its writer to the test.
    router_.Add(Verb::get, "/stream", [this](Request&&, const PathParams&, Responder r) {
      Response head{Status::ok, 11};
      head.set(beast_http::field::content_type, "text/event-stream");
      cancel_ = r.cancellation();
      streams_.set_value(r.StartStream(std::move(head)));
    });
    // Names itself: the server's own name is not forced over it.
    router_.Add(Verb::get, "/named", [](Request&&, const PathParams&, Responder r) {
      Response res = MakeJsonResponse(Status::ok, "{}");
      res.set(beast_http::field::server, "custom");
      r.Send(std::move(res));
    });
    Server::Options o;
    o.port = 0;
    o.threads = 1;
    o.max_stream_buffer_bytes = 4096;
    o.idle_check_interval = std::chrono::milliseconds(20);  // idle_timeout stays 60 s
    auto server = Server::Create(o, &router_);
    ASSERT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    server_->Start();
  }
  void TearDown() override {
    if (!server_) return;
    server_->StopAccepting();
    server_->BeginDrain();
    server_->WaitIdle(std::chrono::steady_clock::now() + kGuard);
    server_->Stop();
  }
  Responder AwaitHandler() {
    auto f = waiting_.get_future();
    EXPECT_EQ(f.wait_for(kGuard), std::future_status::ready);
    return f.get();
  }

  std::shared_ptr<StreamWriter> AwaitStream() {
    auto f = streams_.get_future();
    EXPECT_EQ(f.wait_for(kGuard), std::future_status::ready);
    return f.get();
  }

  Router router_;
  std::unique_ptr<Server> server_;
  std::promise<Responder> waiting_;
  std::promise<std::shared_ptr<StreamWriter>> streams_;
  std::shared_ptr<Cancellation> cancel_;
};

TEST_F(ServerTest, AClientThatClosesWhileItsAnswerIsPendingCancelsTheRequest) {
  int fd = Connect(server_->port());
  SendAll(fd, "GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
  Responder r = AwaitHandler();
  auto cancel = r.cancellation();
  std::promise<inferd::Status> cancelled;
  cancel->OnCancel([&](const inferd::Status& why) { cancelled.set_value(why); });
  close(fd);
  auto f = cancelled.get_future();
  ASSERT_EQ(f.wait_for(kGuard), std::future_status::ready);
  EXPECT_EQ(f.get().code(), StatusCode::kCancelled);
  r.Send(MakeJsonResponse(Status::ok, "{}"));  // dropped: nobody to send it to
  // The server goes on serving.
  int fd2 = Connect(server_->port());
  SendAll(fd2, "GET /now HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_NE(ReadUntil(fd2, "{\"now\":true}").find("200 OK"), std::string::npos);
  close(fd2);
}

TEST_F(ServerTest, AClientThatWaitsGetsItsAnswerAndNoCancellation) {
  int fd = Connect(server_->port());
  SendAll(fd, "GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
  Responder r = AwaitHandler();
  auto cancel = r.cancellation();
  std::thread answer([r] { r.Send(MakeJsonResponse(Status::ok, "{\"late\":true}")); });
  std::string got = ReadUntil(fd, "{\"late\":true}");
  answer.join();
  EXPECT_NE(got.find("200 OK"), std::string::npos) << got;
  // The connection stays usable, and the finished request was not cancelled.
  SendAll(fd, "GET /now HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_NE(ReadUntil(fd, "{\"now\":true}").find("{\"now\":true}"), std::string::npos);
  close(fd);
  EXPECT_FALSE(cancel->cancelled());
}

// The serializer names the server on every answer (immediate, late, the
// router's own errors, a stream's head) unless the handler named one.
TEST_F(ServerTest, EveryAnswerNamesTheServerUnlessTheHandlerDid) {
  int fd = Connect(server_->port());
  SendAll(fd, "GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_NE(ReadUntil(fd, "{\"now\":true}").find("\r\nServer: inferd\r\n"), std::string::npos);
  SendAll(fd, "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string got = ReadUntil(fd, "\"}");
  EXPECT_NE(got.find("404"), std::string::npos) << got;
  EXPECT_NE(got.find("\r\nServer: inferd\r\n"), std::string::npos) << got;
  SendAll(fd, "GET /named HTTP/1.1\r\nHost: t\r\n\r\n");
  got = ReadUntil(fd, "{}");
  EXPECT_NE(got.find("\r\nServer: custom\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("inferd"), std::string::npos) << got;
  SendAll(fd, "GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
  Responder r = AwaitHandler();
  std::thread answer([r] { r.Send(MakeJsonResponse(Status::ok, "{\"late\":true}")); });
  got = ReadUntil(fd, "{\"late\":true}");
  answer.join();
  EXPECT_NE(got.find("\r\nServer: inferd\r\n"), std::string::npos) << got;
  SendAll(fd, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  std::shared_ptr<StreamWriter> w = AwaitStream();
  ASSERT_NE(w, nullptr);
  w->Close();
  got = ReadUntil(fd, "0\r\n\r\n");
  EXPECT_NE(got.find("\r\nServer: inferd\r\n"), std::string::npos) << got;
  close(fd);
}

TEST_F(ServerTest, AClientThatHalfClosesBehindItsLastRequestIsAnsweredAndClosedSoon) {
  // The last request and the client's end of stream travel in one segment
  // (held back with MSG_MORE, then sent with the FIN by shutdown), so they
  // raise one epoll event: the read that takes the request sees a short
  // read and waits for another event that never comes. The server's idle
  // check finds the end of stream; without it the connection would stay
  // open until the idle timeout (60 s), beyond this test's guard. (The
  // requests before it make sure the server waits for its requests rather
  // than tries a read first: once a try has found nothing, the next 16 are
  // waited for; were the last one found by a try, the end of stream would
  // be too, and the test would pass without the check.)
  int fd = Connect(server_->port());
  timeval guard{20, 0};
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof(guard)), 0);
  const std::string request = "GET /now HTTP/1.1\r\nHost: t\r\n\r\n";
  for (int i = 0; i < 4; ++i) {
    SendAll(fd, request);
    EXPECT_NE(ReadUntil(fd, "{\"now\":true}").find("200 OK"), std::string::npos);
  }
  ASSERT_EQ(send(fd, request.data(), request.size(), MSG_MORE),
            static_cast<ssize_t>(request.size()));
  ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
  std::string got;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) got.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(n, 0) << "no end of stream from the server: " << strerror(errno);
  EXPECT_NE(got.find("{\"now\":true}"), std::string::npos) << got;
  close(fd);
}

TEST(ResponseStreamTest, AFullBufferHoldsTheProducerUntilItDrainsBelowHalf) {
  ResponseStream stream(100);
  int resumed = 0;
  EXPECT_TRUE(stream.Write(std::string(60, 'a'), [&] { ++resumed; }));
  EXPECT_FALSE(stream.Write(std::string(60, 'b'), [&] { ++resumed; }));  // 120 >= 100
  EXPECT_EQ(resumed, 0);
  bool closed = true;
  EXPECT_EQ(stream.Take(&closed).size(), 2u);
  EXPECT_FALSE(closed);
  stream.Drained(60);  // 60 still out: not below half
  EXPECT_EQ(resumed, 0);
  stream.Drained(60);
  EXPECT_EQ(resumed, 1);
  // Gone: queued data is dropped and a waiting producer is released; later
  // writes are refused and released at once.
  EXPECT_FALSE(stream.Write(std::string(200, 'c'), [&] { ++resumed; }));
  stream.MarkGone();
  EXPECT_EQ(resumed, 2);
  EXPECT_FALSE(stream.Write("d", [&] { ++resumed; }));
  EXPECT_EQ(resumed, 3);
  EXPECT_TRUE(stream.gone());
}

TEST_F(ServerTest, StreamsPiecesChunkedAsTheyAreWritten) {
  int fd = Connect(server_->port());
  SendAll(fd, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  auto writer = AwaitStream();
  ASSERT_NE(writer, nullptr);
  EXPECT_TRUE(writer->Write("data: 1\n\n", [] {}));
  // The first piece arrives before the second is written.
  std::string got = ReadUntil(fd, "data: 1\n\n\r\n");
  EXPECT_NE(got.find("Transfer-Encoding: chunked"), std::string::npos) << got;
  EXPECT_NE(got.find("Content-Type: text/event-stream"), std::string::npos) << got;
  EXPECT_NE(got.find("9\r\ndata: 1\n\n\r\n"), std::string::npos) << got;
  EXPECT_TRUE(writer->Write("data: 2\n\n", [] {}));
  writer->Close();
  got = ReadUntil(fd, "0\r\n\r\n");
  EXPECT_NE(got.find("9\r\ndata: 2\n\n\r\n0\r\n\r\n"), std::string::npos) << got;
  // The connection goes on (keep-alive) after the stream.
  SendAll(fd, "GET /now HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_NE(ReadUntil(fd, "{\"now\":true}").find("{\"now\":true}"), std::string::npos);
  close(fd);
  EXPECT_FALSE(cancel_->cancelled());
}

TEST_F(ServerTest, HeadOnAStreamingRouteGetsTheHeadAloneAndStopsTheProducer) {
  int fd = Connect(server_->port());
  SendAll(fd, "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  auto writer = AwaitStream();
  ASSERT_NE(writer, nullptr);
  std::string got = ReadUntil(fd, "\r\n\r\n");
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("Transfer-Encoding: chunked"), std::string::npos) << got;  // as GET's
  // The producer was stopped before the head went out.
  EXPECT_TRUE(cancel_->cancelled());
  EXPECT_TRUE(writer->gone());
  EXPECT_FALSE(writer->Write("data: 1\n\n", [] {}));
  writer->Close();
  // No body: the next bytes on the connection are the next answer's.
  SendAll(fd, "GET /now HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  got = ReadUntil(fd, "{\"now\":true}");
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_EQ(got.find("data:"), std::string::npos) << got;
  close(fd);
}

TEST_F(ServerTest, ASlowReaderHoldsTheProducerBack) {
  int fd = Connect(server_->port());
  SendAll(fd, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  auto writer = AwaitStream();
  ASSERT_NE(writer, nullptr);
  // The producer writes 64 MiB, waiting whenever told to; the client reads
  // nothing at first. Without backpressure it would be done at once.
  constexpr size_t kPiece = 16 << 10, kTotal = size_t{64} << 20;
  std::mutex mu;
  std::condition_variable cv;
  size_t written = 0;
  bool may_go = true;
  std::thread producer([&] {
    const std::string piece(kPiece, 'x');
    while (true) {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return may_go; });
      if (written >= kTotal) break;
      written += kPiece;
      may_go = false;  // until Write says go on, or its resume runs
      l.unlock();
      bool more = writer->Write(piece, [&] {
        std::lock_guard<std::mutex> g(mu);
        may_go = true;
        cv.notify_all();
      });
      l.lock();
      if (more) may_go = true;
    }
    writer->Close();
  });
  // Read a first MiB: by then a producer without backpressure has queued
  // everything; ours is at most the socket buffers plus 4 KiB ahead.
  std::string first;
  char buf[65536];
  while (first.size() < (1u << 20)) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    first.append(buf, static_cast<size_t>(n));
  }
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_LT(written, size_t{24} << 20) << "the producer ran ahead of the reader";
  }
  size_t total = first.size();
  while (true) {  // the rest, to the end of the stream
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    total += static_cast<size_t>(n);
    if (std::string_view(buf, static_cast<size_t>(n)).ends_with("0\r\n\r\n")) break;
  }
  producer.join();
  EXPECT_GT(total, kTotal);  // every byte (plus framing) arrived
  close(fd);
}

TEST_F(ServerTest, AClientThatLeavesMidStreamCancelsTheProducer) {
  int fd = Connect(server_->port());
  SendAll(fd, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  auto writer = AwaitStream();
  ASSERT_NE(writer, nullptr);
  std::promise<inferd::Status> cancelled;
  cancel_->OnCancel([&](const inferd::Status& why) { cancelled.set_value(why); });
  EXPECT_TRUE(writer->Write("data: 1\n\n", [] {}));
  ReadUntil(fd, "data: 1\n\n\r\n");
  close(fd);
  auto f = cancelled.get_future();
  ASSERT_EQ(f.wait_for(kGuard), std::future_status::ready);
  EXPECT_EQ(f.get().code(), StatusCode::kCancelled);
  writer->Close();  // the producer's end is harmless after the client left
}

// Post runs its work on the I/O threads, spread over them.
TEST(ServerFairnessTest, AClientWhoseRequestsAreAllThereDoesNotHoldBackTheOthersOnItsThread) {
  // One I/O thread. While a handler holds it, client A pipelines many
  // requests and then client B sends one: when the thread is free, A's
  // session finds request after request already there and never has to
  // wait for a read. It yields every few requests, so B is answered long
  // before A's last request (without the yield: after all of them).
  constexpr int kPipelined = 1000;
  std::atomic<int> served_a{0};
  std::atomic<int> a_when_b{-1};
  std::promise<void> blocked, release;
  std::shared_future<void> released = release.get_future().share();
  Router router;
  router.Add(Verb::get, "/block", [&](Request&&, const PathParams&, Responder r) {
    blocked.set_value();
    released.wait();  // holds the I/O thread: a latch, not a sleep
    r.Send(MakeJsonResponse(Status::ok, "{}"));
  });
  router.Add(Verb::get, "/a", [&](Request&&, const PathParams&, Responder r) {
    served_a.fetch_add(1);
    r.Send(MakeJsonResponse(Status::ok, "{\"a\":1}"));
  });
  router.Add(Verb::get, "/b", [&](Request&&, const PathParams&, Responder r) {
    a_when_b.store(served_a.load());
    r.Send(MakeJsonResponse(Status::ok, "{\"b\":1}"));
  });
  Server::Options o;
  o.port = 0;
  o.threads = 1;
  auto server = Server::Create(o, &router);
  ASSERT_TRUE(server.ok()) << server.status().message();
  (*server)->Start();
  const int a = Connect((*server)->port()), b = Connect((*server)->port());
  const int c = Connect((*server)->port());
  // A and B each served once: both sessions now wait for their next request.
  SendAll(a, "GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_NE(ReadUntil(a, "{\"a\":1}").find("200 OK"), std::string::npos);
  SendAll(b, "GET /b HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_NE(ReadUntil(b, "{\"b\":1}").find("200 OK"), std::string::npos);
  served_a.store(0);
  SendAll(c, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_EQ(blocked.get_future().wait_for(kGuard), std::future_status::ready);
  std::string pipelined;
  for (int i = 0; i < kPipelined; ++i) pipelined += "GET /a HTTP/1.1\r\nHost: t\r\n\r\n";
  SendAll(a, pipelined);  // about 30 KB: the socket buffer takes it at once
  SendAll(b, "GET /b HTTP/1.1\r\nHost: t\r\n\r\n");
  release.set_value();
  EXPECT_NE(ReadUntil(b, "{\"b\":1}").find("200 OK"), std::string::npos);
  EXPECT_GE(a_when_b.load(), 0);
  EXPECT_LT(a_when_b.load(), kPipelined / 10) << "B waited behind A's pipelined requests";
  std::string got;
  size_t answers = 0;
  char buf[65536];
  while (answers < kPipelined) {  // all of A's answers still arrive
    ssize_t n = recv(a, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
    for (size_t at; (at = got.find("{\"a\":1}")) != std::string::npos; got.erase(0, at + 7)) {
      ++answers;
    }
  }
  close(a);
  close(b);
  close(c);
  (*server)->StopAccepting();
  (*server)->BeginDrain();
  (*server)->WaitIdle(std::chrono::steady_clock::now() + kGuard);
  (*server)->Stop();
}

TEST(ServerPostTest, RunsWorkOnTheIoThreadsRoundRobin) {
  Router router;
  Server::Options o;
  o.port = 0;
  o.threads = 2;
  auto server = Server::Create(o, &router);
  ASSERT_TRUE(server.ok()) << server.status().message();
  (*server)->Start();
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::thread::id> ran;
  for (int i = 0; i < 4; ++i) {
    (*server)->Post([&] {
      std::lock_guard<std::mutex> l(mu);
      ran.push_back(std::this_thread::get_id());
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, kGuard, [&] { return ran.size() == 4; }));
  }
  (*server)->Stop();
  std::set<std::thread::id> threads(ran.begin(), ran.end());
  EXPECT_EQ(threads.size(), 2u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

}  // namespace
}  // namespace inferd::http
