// ClientStream and SseReader over the wire: a chunked body and an event
// stream read piece by piece while the server waits between pieces, when
// the connection goes back to the pool, and the read idle timeout.

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "http/client_pool.h"
#include "http/client_sse.h"
#include "http/client_stream.h"
#include "http/client_test_server.h"

namespace inferd::http {
namespace {

namespace asio = boost::asio;
using client_testing::ClientTest;
using client_testing::ExpectBody;
using std::chrono::milliseconds;

using ClientStreamTest = ClientTest;

// The next piece of `stream`, or "<end>", or "<error: ...>".
asio::awaitable<std::string> NextPiece(ClientStream& stream) {
  ::inferd::StatusOr<std::optional<std::string>> piece = co_await stream.Next();
  if (!piece.ok()) co_return "<error: " + piece.status().ToString() + ">";
  co_return piece->has_value() ? **piece : "<end>";
}

TEST_F(ClientStreamTest, ReadsAChunkedBodyPieceByPiece) {
  Start();
  const ClientRequest chunked = Get("/chunked");
  Run([&]() -> asio::awaitable<void> {
    auto opened = co_await pool_->Open(chunked, url_);
    CO_ASSERT_OK(opened);
    ClientStream& stream = **opened;
    EXPECT_EQ(stream.result(), Status::ok);
    EXPECT_EQ(stream.header()[beast_http::field::transfer_encoding], "chunked");
    EXPECT_EQ(co_await NextPiece(stream), "piece1");
    // The client has piece 1 while the server still holds piece 2 back.
    EXPECT_EQ(server_->pieces_sent(), 1);
    server_->step().Add();
    EXPECT_EQ(co_await NextPiece(stream), "piece2");
    EXPECT_EQ(server_->pieces_sent(), 2);
    EXPECT_FALSE(stream.done());
    server_->step().Add();
    EXPECT_EQ(co_await NextPiece(stream), "<end>");
    EXPECT_TRUE(stream.done());
    EXPECT_EQ(pool_->GetStats().idle, 1);  // back in the pool once read to its end
  });
}

TEST_F(ClientStreamTest, ConnectionGoesBackOnlyAfterTheBodyWasRead) {
  Start();
  const ClientRequest chunked = Get("/chunked");
  Run([&]() -> asio::awaitable<void> {
    auto opened = co_await pool_->Open(chunked, url_);
    CO_ASSERT_OK(opened);
    // The stream's connection is busy: this request gets a second one.
    co_await ExpectBody(*pool_, hello_, url_, "conn 2");
    server_->step().Add(2);
    auto all = co_await (*opened)->ReadAll();
    EXPECT_TRUE(all.ok() && all->body() == "piece1piece2") << all.status().ToString();
    EXPECT_EQ(pool_->GetStats().idle, 2);
    co_await ExpectBody(*pool_, hello_, url_, "conn 1");
  });
  EXPECT_EQ(server_->accepted(), 2);
}

TEST_F(ClientStreamTest, AnAbandonedStreamClosesItsConnection) {
  Start();
  const ClientRequest chunked = Get("/chunked");
  Run([&]() -> asio::awaitable<void> {
    auto opened = co_await pool_->Open(chunked, url_);
    CO_ASSERT_OK(opened);
    EXPECT_EQ(co_await NextPiece(**opened), "piece1");
    opened->reset();
    EXPECT_EQ(pool_->GetStats().open, 0);
    co_await ExpectBody(*pool_, hello_, url_, "conn 2");
  });
}

TEST_F(ClientStreamTest, ReadIdleTimeout) {
  ClientPool::Options options;
  options.read_idle_timeout = milliseconds(100);
  Start(options);
  const ClientRequest chunked = Get("/chunked");
  Run([&]() -> asio::awaitable<void> {
    auto opened = co_await pool_->Open(chunked, url_);
    CO_ASSERT_OK(opened);
    EXPECT_EQ(co_await NextPiece(**opened), "piece1");
    // The server never sends piece 2 (no step).
    auto next = co_await (*opened)->Next();
    EXPECT_EQ(next.status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_NE(next.status().message().find("read idle timeout (100 ms) expired"), std::string::npos)
        << next.status().ToString();
    EXPECT_TRUE((*opened)->done());
    EXPECT_EQ((co_await (*opened)->Next()).status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_EQ(pool_->GetStats().open, 0);
  });
}

TEST_F(ClientStreamTest, ReadsServerSentEventsAsTheyArrive) {
  Start();
  const ClientRequest sse = Get("/sse");
  Run([&]() -> asio::awaitable<void> {
    auto opened = co_await pool_->Open(sse, url_);
    CO_ASSERT_OK(opened);
    EXPECT_EQ((*opened)->header()[beast_http::field::content_type], "text/event-stream");
    SseReader reader(std::move(*opened));

    auto e = co_await reader.Next();
    EXPECT_TRUE(e.ok() && e->has_value()) << e.status().ToString();
    if (!e.ok() || !e->has_value()) co_return;
    EXPECT_EQ((*e)->event, "greeting");
    EXPECT_EQ((*e)->data, "hello\n world");
    EXPECT_EQ((*e)->id, "7");
    EXPECT_EQ(server_->pieces_sent(), 1);  // the first event came before the rest

    server_->step().Add();
    e = co_await reader.Next();
    EXPECT_TRUE(e.ok() && e->has_value()) << e.status().ToString();
    if (!e.ok() || !e->has_value()) co_return;
    EXPECT_EQ((*e)->event, "message");
    EXPECT_EQ((*e)->data, "\ntail");
    EXPECT_EQ((*e)->id, "7");

    // "event: no-data" had no data: dropped, and its type not carried over.
    server_->step().Add();
    e = co_await reader.Next();
    EXPECT_TRUE(e.ok() && e->has_value()) << e.status().ToString();
    if (!e.ok() || !e->has_value()) co_return;
    EXPECT_EQ((*e)->event, "message");
    EXPECT_EQ((*e)->data, "split");

    // The unterminated last event is not dispatched.
    server_->step().Add();
    e = co_await reader.Next();
    EXPECT_TRUE(e.ok() && !e->has_value()) << e.status().ToString();
    EXPECT_TRUE(reader.stream().done());
  });
}

}  // namespace
}  // namespace inferd::http
