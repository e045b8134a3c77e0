#include "http/client_stream.h"

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <algorithm>

namespace inferd::http {
namespace {

namespace asio = boost::asio;
using IStatus = ::inferd::Status;

constexpr size_t kPieceBytes = 16 * 1024;
constexpr uint32_t kMaxHeaderBytes = 64 * 1024;

std::unique_ptr<ResponseParser> MakeParser(const ClientRequest& request, uint64_t max_body_bytes) {
  auto parser = std::make_unique<ResponseParser>();
  parser->header_limit(kMaxHeaderBytes);
  parser->body_limit(max_body_bytes);
  // A response to HEAD has a Content-Length but no body.
  if (request.method() == Verb::head) parser->skip(true);
  return parser;
}

}  // namespace

ClientStream::ClientStream(std::unique_ptr<ClientSocket> socket,
                           std::unique_ptr<ResponseParser> parser, ExchangeDeadlines deadlines,
                           Release release)
    : socket_(std::move(socket)),
      parser_(std::move(parser)),
      deadlines_(deadlines),
      release_(std::move(release)) {}

ClientStream::~ClientStream() {
  if (socket_ != nullptr) Finish(false);
}

asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientStream>>> ClientStream::Start(
    std::unique_ptr<ClientSocket> socket, Connector connect, const ClientRequest& request,
    ExchangeDeadlines deadlines, uint64_t max_body_bytes, Release release) {
  for (int attempt = 0;; ++attempt) {
    const bool reused = socket != nullptr;
    if (!reused) {
      ::inferd::StatusOr<std::unique_ptr<ClientSocket>> fresh = co_await connect();
      if (!fresh.ok()) {
        release(nullptr, false);
        co_return fresh.status();
      }
      socket = std::move(fresh).value();
    }
    std::unique_ptr<ResponseParser> parser = MakeParser(request, max_body_bytes);
    bool stale = false;
    IStatus started = co_await socket->StartExchange(request, *parser, deadlines, &stale);
    if (started.ok()) {
      co_return std::unique_ptr<ClientStream>(
          new ClientStream(std::move(socket), std::move(parser), deadlines, std::move(release)));
    }
    socket.reset();  // closed by StartExchange
    if (!reused || !stale || attempt > 0) {
      release(nullptr, false);
      co_return started;
    }
  }
}

void ClientStream::Finish(bool reusable) {
  std::unique_ptr<ClientSocket> socket = std::move(socket_);
  if (!reusable) {
    socket->Close();
    socket.reset();
  }
  Release release = std::move(release_);
  release(std::move(socket), reusable);
}

asio::awaitable<::inferd::StatusOr<size_t>> ClientStream::ReadInto(char* data, size_t size) {
  if (!error_.ok()) co_return error_;
  while (socket_ != nullptr) {
    if (parser_->is_done()) {
      Finish(parser_->keep_alive());
      break;
    }
    auto& body = parser_->get().body();
    body.data = data;
    body.size = size;
    IStatus read = co_await socket_->ReadSome(*parser_, deadlines_);
    const size_t n = size - body.size;
    body.data = nullptr;
    body.size = 0;
    if (!read.ok()) {
      error_ = read;
      Finish(false);
      co_return read;
    }
    // Give the connection back as soon as the message is complete.
    if (parser_->is_done()) Finish(parser_->keep_alive());
    if (n > 0) co_return n;
  }
  co_return size_t{0};
}

asio::awaitable<::inferd::StatusOr<std::optional<std::string>>> ClientStream::Next() {
  scratch_.resize(kPieceBytes);
  ::inferd::StatusOr<size_t> n = co_await ReadInto(scratch_.data(), scratch_.size());
  if (!n.ok()) co_return n.status();
  if (*n == 0) co_return std::optional<std::string>();
  co_return std::optional<std::string>(scratch_.substr(0, *n));
}

asio::awaitable<::inferd::StatusOr<ClientResponse>> ClientStream::ReadAll() {
  std::string body;
  while (true) {
    // Straight into the body: as much as Content-Length announces, else a piece.
    const auto remaining = parser_->content_length_remaining();
    const size_t room =
        remaining && *remaining > 0 ? std::min<uint64_t>(*remaining, 1 << 20) : kPieceBytes;
    const size_t used = body.size();
    body.resize(used + room);
    ::inferd::StatusOr<size_t> n = co_await ReadInto(body.data() + used, room);
    if (!n.ok()) co_return n.status();
    body.resize(used + *n);
    if (*n == 0) break;
  }
  ClientResponse response(std::move(parser_->get().base()));
  response.body() = std::move(body);
  co_return response;
}

}  // namespace inferd::http
