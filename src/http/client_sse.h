#pragma once
// Server-sent events (text/event-stream) on the client side: a parser that
// follows the WHATWG EventSource rules, and a reader over a ClientStream.

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "http/client_stream.h"

namespace inferd::http {

struct SseEvent {
  std::string event = "message";  // the "event" field; "message" when absent
  std::string data;               // "data" fields joined with '\n'
  std::string id;                 // the last event ID (kept across events)
};

// Splits a text/event-stream into events (WHATWG HTML, "Interpreting an
// event stream"): lines end in "\n", "\r\n" or "\r" (also when a CRLF is cut
// between two pieces); a leading BOM is dropped; a line starting with ':'
// is a comment; a line without ':' is a field with an empty value; one
// space after the colon is stripped; unknown fields are ignored; a blank
// line dispatches the event unless its data is empty. An event not ended by
// a blank line when the stream stops is never dispatched.
//
// Threading: not thread-safe (plain data).
class SseParser {
 public:
  // Consumes `bytes`, appending the events they complete to *out.
  void Feed(std::string_view bytes, std::vector<SseEvent>* out);
  // The last valid "retry" field (reconnection time, ms), if any.
  std::optional<uint64_t> retry_ms() const { return retry_ms_; }

 private:
  void ProcessLine(std::string_view line, std::vector<SseEvent>* out);
  void Field(std::string_view name, std::string_view value);

  std::string line_;        // the current, unfinished line
  bool after_cr_ = false;   // the last byte was '\r': a '\n' next is part of it
  bool first_line_ = true;  // a BOM may start it
  std::string event_;
  std::string data_;
  std::string last_id_;
  std::optional<uint64_t> retry_ms_;
};

// Reads the events of a streamed response (see ClientPool::Open) as they
// arrive. The stream's status and header fields are the caller's to check
// first (e.g. 200 and Content-Type text/event-stream).
//
// Threading: as ClientStream.
class SseReader {
 public:
  explicit SseReader(std::unique_ptr<ClientStream> stream) : stream_(std::move(stream)) {}

  // The next event, or nullopt when the stream ended.
  boost::asio::awaitable<::inferd::StatusOr<std::optional<SseEvent>>> Next();

  const ClientStream& stream() const { return *stream_; }
  std::optional<uint64_t> retry_ms() const { return parser_.retry_ms(); }

 private:
  std::unique_ptr<ClientStream> stream_;
  SseParser parser_;
  std::deque<SseEvent> ready_;
};

}  // namespace inferd::http
