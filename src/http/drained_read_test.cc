// DrainedReads on real loopback TCP sockets and a real io_context: it
// waits for data, reads what arrives after a wait, keeps reading at once
// after a full read, skips its first try when told the socket is empty
// (then the next edge wakes it), waits past an end of stream that came with
// the last data (what the server's idle check is for), and completes with
// end of stream and with cancellation; ReadDry calls a short read dry. Arrival is awaited with
// poll(2) on the descriptor, never with a sleep; a run is bounded by a guard that turns a hang into
// a failure.

#include "http/drained_read.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <optional>
#include <string>

namespace inferd::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Socket = asio::basic_stream_socket<tcp, asio::io_context::executor_type>;

constexpr auto kGuard = std::chrono::seconds(30);

struct Result {
  error_code ec;
  size_t n = 0;
};

class DrainedReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    asio::basic_socket_acceptor<tcp, asio::io_context::executor_type> acceptor(
        ioc_.get_executor(), tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    peer_.connect(acceptor.local_endpoint());
    acceptor.accept(server_);
    server_.non_blocking(true);
  }

  // Starts a read into buf_ (at most `size` bytes); its result lands in result_.
  void StartRead(size_t size, bool known_empty) {
    result_.reset();
    reads_.Read(server_, asio::buffer(buf_, size), known_empty, [this](error_code ec, size_t n) {
      result_ = Result{ec, n};
    });
  }

  // Runs the io_context until the read completed (or the guard ran out).
  Result Finish() {
    ioc_.restart();
    const auto end = std::chrono::steady_clock::now() + kGuard;
    while (!result_ && std::chrono::steady_clock::now() < end) ioc_.run_one_for(kGuard);
    EXPECT_TRUE(result_.has_value()) << "the read never completed";
    return result_.value_or(Result{asio::error::timed_out, 0});
  }

  void PeerSends(const std::string& s) { ASSERT_EQ(asio::write(peer_, asio::buffer(s)), s.size()); }

  // Waits until the server's socket has data (and, with POLLRDHUP, the
  // peer's end of stream), then lets the reactor take its edge while no read
  // is queued.
  void ArrivedAndEdgeTaken(short events = POLLIN) {
    for (;;) {
      pollfd p{server_.native_handle(), events, 0};
      ASSERT_EQ(::poll(&p, 1, -1), 1);
      if ((p.revents & events) == events) break;
    }
    auto work = asio::make_work_guard(ioc_);  // without work, poll() returns at once
    ioc_.restart();
    ioc_.poll();
  }

  std::string Got(const Result& r) const { return std::string(buf_, r.n); }

  asio::io_context ioc_{1};
  DrainedReads reads_{ioc_};
  Socket server_{ioc_.get_executor()};
  tcp::socket peer_{ioc_};
  char buf_[64];
  std::optional<Result> result_;
};

TEST_F(DrainedReadTest, WaitsForDataAndReadsIt) {
  StartRead(sizeof(buf_), /*known_empty=*/false);
  ioc_.poll();
  EXPECT_FALSE(result_) << "completed before anything was sent";
  PeerSends("hello");
  Result r = Finish();
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(Got(r), "hello");
}

TEST_F(DrainedReadTest, AfterAShortReadTheNextReadWaitsForTheNextEdge) {
  PeerSends("first");
  ArrivedAndEdgeTaken();
  StartRead(sizeof(buf_), false);  // tried at once: 5 of 64 bytes, the socket ran dry
  Result r = Finish();
  EXPECT_EQ(Got(r), "first");
  StartRead(sizeof(buf_), false);  // queued without a try
  ioc_.restart();
  ioc_.poll();
  EXPECT_FALSE(result_);
  PeerSends("second");
  r = Finish();
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(Got(r), "second");
}

TEST_F(DrainedReadTest, AfterAFullReadTheNextReadTriesAtOnce) {
  // 100 bytes whose only edge is taken before the reads: after the first
  // read fills its 64 bytes, the rest is read without a new edge (a full
  // read does not mark the socket dry; if it did, this read would wait for
  // an edge that never comes).
  PeerSends(std::string(64, 'a') + std::string(36, 'b'));
  ArrivedAndEdgeTaken();
  StartRead(sizeof(buf_), false);
  Result r = Finish();
  EXPECT_EQ(Got(r), std::string(64, 'a'));
  StartRead(sizeof(buf_), false);
  r = Finish();
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(Got(r), std::string(36, 'b'));
}

TEST_F(DrainedReadTest, KnownEmptySkipsTheFirstTryAndTheNextEdgeWakesIt) {
  // The caller's claim is taken at its word: data whose edge was already
  // taken is not read at start (proof that no read was tried) ...
  PeerSends("early");
  ArrivedAndEdgeTaken();
  StartRead(sizeof(buf_), /*known_empty=*/true);
  ioc_.restart();
  ioc_.poll();
  EXPECT_FALSE(result_) << "the read was tried although the caller said the socket was empty";
  // ... and the next arrival's edge reads everything there is.
  PeerSends("late");
  Result r = Finish();
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(Got(r), "earlylate");
}

TEST_F(DrainedReadTest, TheEndOfStreamBehindTheLastDataWaitsUntilTheReadIsCancelled) {
  // A client that sends its request and then shuts down its side: data and
  // end of stream arrive under one edge. The short read that returns the
  // data takes the socket for empty, and the next read waits for an edge
  // that never comes, although poll(2) reports the end of stream: what the
  // server's idle check (Server::Options::idle_check_interval) looks for,
  // cancelling the wait so that a direct read takes the end of stream.
  PeerSends("last");
  peer_.shutdown(tcp::socket::shutdown_send);
  ArrivedAndEdgeTaken(POLLIN | POLLRDHUP);
  StartRead(sizeof(buf_), false);
  Result r = Finish();
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(Got(r), "last");
  StartRead(sizeof(buf_), false);
  ioc_.restart();
  ioc_.poll();
  EXPECT_FALSE(result_) << "read without an edge: then the idle check would not be needed";
  pollfd p{server_.native_handle(), POLLIN | POLLRDHUP, 0};
  ASSERT_EQ(::poll(&p, 1, 0), 1);
  EXPECT_TRUE(p.revents & POLLRDHUP);
  server_.cancel();
  r = Finish();
  EXPECT_EQ(r.ec, asio::error::operation_aborted);
  error_code ec;
  EXPECT_EQ(server_.read_some(asio::buffer(buf_), ec), 0u);
  EXPECT_EQ(ec, asio::error::eof);
}

#if INFERD_DRAINED_READ
// ReadDry itself: what it reads and whether it calls the socket dry.
TEST_F(DrainedReadTest, ReadDryCallsAShortReadDry) {
  using drained_read_detail::ReadDry;
  using drained_read_detail::ReadResult;
  const int fd = server_.native_handle();
  error_code ec;
  size_t n = 0;
  EXPECT_EQ(ReadDry(fd, asio::buffer(buf_), ec, n), ReadResult::kWouldBlock);
  // Less than the buffer: dry.
  PeerSends("abc");
  ArrivedAndEdgeTaken();
  EXPECT_EQ(ReadDry(fd, asio::buffer(buf_), ec, n), ReadResult::kDry);
  EXPECT_FALSE(ec);
  EXPECT_EQ(std::string(buf_, n), "abc");
  // Exactly the buffer's size: not dry (there may be more).
  const std::string full(sizeof(buf_), 'f');
  PeerSends(full);
  ArrivedAndEdgeTaken();
  EXPECT_EQ(ReadDry(fd, asio::buffer(buf_), ec, n), ReadResult::kDone);
  EXPECT_EQ(std::string(buf_, n), full);
  EXPECT_EQ(ReadDry(fd, asio::buffer(buf_), ec, n), ReadResult::kWouldBlock);
  // More than the buffer: a full read, not dry, then the rest, dry.
  PeerSends(full + "rest");
  ArrivedAndEdgeTaken();
  EXPECT_EQ(ReadDry(fd, asio::buffer(buf_), ec, n), ReadResult::kDone);
  EXPECT_EQ(std::string(buf_, n), full);
  EXPECT_EQ(ReadDry(fd, asio::buffer(buf_), ec, n), ReadResult::kDry);
  EXPECT_EQ(std::string(buf_, n), "rest");
  // Data with the end of stream behind it: dry too (see above); then the end.
  PeerSends("bye");
  peer_.shutdown(tcp::socket::shutdown_send);
  ArrivedAndEdgeTaken(POLLIN | POLLRDHUP);
  EXPECT_EQ(ReadDry(fd, asio::buffer(buf_), ec, n), ReadResult::kDry);
  EXPECT_FALSE(ec);
  EXPECT_EQ(std::string(buf_, n), "bye");
  EXPECT_EQ(ReadDry(fd, asio::buffer(buf_), ec, n), ReadResult::kDone);
  EXPECT_EQ(ec, asio::error::eof);
  EXPECT_EQ(n, 0u);
}
#endif

TEST_F(DrainedReadTest, EndOfStreamCompletesAQueuedRead) {
  StartRead(sizeof(buf_), /*known_empty=*/true);
  ioc_.poll();
  peer_.close();
  Result r = Finish();
  EXPECT_EQ(r.ec, asio::error::eof);
  EXPECT_EQ(r.n, 0u);
}

TEST_F(DrainedReadTest, CancelCompletesAQueuedReadAsAborted) {
  StartRead(sizeof(buf_), /*known_empty=*/true);
  ioc_.poll();
  EXPECT_FALSE(result_);
  server_.cancel();
  Result r = Finish();
  EXPECT_EQ(r.ec, asio::error::operation_aborted);
}

TEST_F(DrainedReadTest, ClosingTheSocketCompletesAQueuedReadAsAborted) {
  StartRead(sizeof(buf_), /*known_empty=*/false);
  ioc_.poll();
  server_.close();
  Result r = Finish();
  EXPECT_EQ(r.ec, asio::error::operation_aborted);
}

}  // namespace
}  // namespace inferd::http
