#pragma once
// ClientStream: an HTTP response read piece by piece as it arrives.

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "http/client_socket.h"
#include "http/types.h"

namespace inferd::http {

using ResponseHeader = beast_http::response_header<>;

// One response being received: its status and header first, then the body
// (chunked, Content-Length or up to the close) in the pieces the network
// delivers, so that a caller sees the first piece before the server has sent
// the second. Made by ClientPool::Open.
//
// Invariant: the connection goes back to its owner (the Release callback)
// exactly once: reusable only when the body was read to its end and both
// sides keep the connection alive; a stream that fails or is destroyed
// before its end closes the connection. The total and read idle timeouts of
// the exchange bound every Next().
//
// Threading: not thread-safe; one call at a time, from the executor of the
// pool that made it.
class ClientStream {
 public:
  // Opens a new connection for the exchange.
  using Connector =
      std::function<boost::asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientSocket>>>()>;
  // Takes the connection back: `socket` is null when it was closed (the
  // owner's slot is free), `reusable` when it may carry another request.
  using Release = std::function<void(std::unique_ptr<ClientSocket> socket, bool reusable)>;

  // Starts an exchange on `socket`, a reused connection, or when it is null
  // on a new one from `connect`: writes `request` (read only; the caller
  // keeps it alive until this completes) and reads the response header. A
  // reused connection that turns out closed by the server before any
  // response byte is replaced once. On failure `release` has been called.
  static boost::asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientStream>>> Start(
      std::unique_ptr<ClientSocket> socket, Connector connect, const ClientRequest& request,
      ExchangeDeadlines deadlines, uint64_t max_body_bytes, Release release);

  ClientStream(const ClientStream&) = delete;
  ClientStream& operator=(const ClientStream&) = delete;
  ~ClientStream();

  // Status line and header fields (empty after ReadAll, which moves them).
  const ResponseHeader& header() const { return parser_->get().base(); }
  Status result() const { return header().result(); }

  // The next piece of the body as it arrived, or nullopt at its end. After
  // an error every later call returns the same error.
  boost::asio::awaitable<::inferd::StatusOr<std::optional<std::string>>> Next();
  // Reads the rest of the body and returns the whole response.
  boost::asio::awaitable<::inferd::StatusOr<ClientResponse>> ReadAll();

  // The body was read to its end, or the stream failed.
  bool done() const { return socket_ == nullptr; }

 private:
  ClientStream(std::unique_ptr<ClientSocket> socket, std::unique_ptr<ResponseParser> parser,
               ExchangeDeadlines deadlines, Release release);
  // Reads body bytes into data[0, size): how many (0 at the end of the body).
  boost::asio::awaitable<::inferd::StatusOr<size_t>> ReadInto(char* data, size_t size);
  // Hands the connection back (closed unless `reusable`).
  void Finish(bool reusable);

  std::unique_ptr<ClientSocket> socket_;  // null once done
  std::unique_ptr<ResponseParser> parser_;
  ExchangeDeadlines deadlines_;
  Release release_;
  std::string scratch_;  // the parser writes body bytes here
  ::inferd::Status error_;
};

}  // namespace inferd::http
