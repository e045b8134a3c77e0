// http::Server against a real client socket on loopback: a client that
// closes its connection while its answer is pending raises the request's
// cancellation; a client that waits gets its answer and no cancellation.

#include "http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>

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
    Server::Options o;
    o.port = 0;
    o.threads = 1;
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

  Router router_;
  std::unique_ptr<Server> server_;
  std::promise<Responder> waiting_;
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

}  // namespace
}  // namespace inferd::http
