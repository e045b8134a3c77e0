#pragma once
// RequestReader: turns the bytes of one connection into HTTP/1.1 requests,
// one at a time, with every check that protects the server from what a
// client sends. It does no I/O: the server feeds it what it read, and the
// fuzz target feeds it arbitrary bytes.
//
// Checks, each an HttpError naming the problem:
//   - malformed HTTP: 400; a header over max_header_bytes: 431;
//   - a body over max_body_bytes (declared, received or decompressed): 413;
//   - any Transfer-Encoding other than exactly "chunked" (RFC 9112 6.1):
//     501; Transfer-Encoding together with Content-Length: 400;
//   - Content-Encoding gzip, x-gzip and deflate (zlib or raw) are decoded
//     after the body is complete, identity is ignored; any other coding:
//     415; a corrupt compressed body: 400.
// After an error the connection must be closed: the rest of the stream can
// no longer be framed.
//
// Pipelining: Feed consumes only the bytes of the current request; what
// follows stays with the caller for the next reader.
//
// Threading: one reader per request, used from one thread.

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/types.h"

namespace inferd::http {

struct HttpError {
  HttpError() = default;
  HttpError(Status s, std::string m, std::vector<std::pair<std::string, std::string>> f = {})
      : status(s), message(std::move(m)), fields(std::move(f)) {}
  Status status = Status::bad_request;
  std::string message;
  // Extra response header fields (WWW-Authenticate on a 401).
  std::vector<std::pair<std::string, std::string>> fields;
};

// Beast's request parser (its checks and framing), storing into an
// http::Request: the fields go into the request's one string instead of an
// allocated node each.
class RequestParser final : public beast_http::basic_parser<true> {
 public:
  using error_code = boost::system::error_code;
  using string_view = boost::beast::string_view;
  const Request& get() const { return req_; }
  Request& get() { return req_; }
  Request release() { return std::move(req_); }

 private:
  void on_request_impl(Verb method, string_view method_str, string_view target, int version,
                       error_code& ec) override;
  void on_response_impl(int, string_view, int, error_code& ec) override {
    ec = beast_http::error::bad_method;  // never called for requests
  }
  void on_field_impl(beast_http::field, string_view name, string_view value,
                     error_code& ec) override;
  void on_header_impl(error_code& ec) override { ec = {}; }
  // The body's room: reserved by RequestReader once the header is checked.
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code& ec) override {
    ec = {};
  }
  size_t on_body_impl(string_view body, error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t, string_view, error_code& ec) override { ec = {}; }
  size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code& ec) override {
    return on_body_impl(body, ec);
  }
  void on_finish_impl(error_code& ec) override { ec = {}; }

  Request req_;
};

class RequestReader {
 public:
  struct Options {
    size_t max_body_bytes = 64u << 20;    // after decompression too
    size_t max_header_bytes = 16u << 10;  // request line and fields
    // Spare capacity left after the body, so that a parser that reads past
    // the end (simdjson reads up to 64 bytes) can read the body in place
    // instead of copying it.
    size_t body_padding = 64;
    // Called once the header is complete and passed the reader's own
    // checks, before any body byte is read: an error refuses the request
    // there (and the connection closes), without reading its body.
    std::function<std::optional<HttpError>(const Request& header)> check_header;
    // A plain request that arrived whole is read in one pass instead of
    // through Beast (request_fast_path.h); off only to compare the two.
    bool fast_path = true;
  };
  explicit RequestReader(const Options& options);
  ~RequestReader();
  RequestReader(const RequestReader&) = delete;
  RequestReader& operator=(const RequestReader&) = delete;

  // Parses as much of `data` as belongs to this request; returns the number
  // of bytes consumed. Call again with the unconsumed bytes plus new ones
  // while neither done() nor error().
  size_t Feed(std::string_view data);

  bool header_done() const;
  bool done() const { return done_; }
  const std::optional<HttpError>& error() const { return error_; }
  // After header_done(): the client sent "Expect: 100-continue" and its
  // declared body fits.
  bool wants_continue() const;
  // The request method, valid after header_done().
  Verb method() const;
  // Whether the fast path read this request (request_fast_path.h).
  bool read_fast() const { return fast_; }

  // The finished request, body decoded. Only after done(); request() is
  // valid until Release().
  const Request& request() const { return parser_.get(); }
  Request Release();

 private:
  // `content_length`: the declared body length, if any.
  void CheckHeader(std::optional<uint64_t> content_length);
  void Finish();
  void Fail(Status status, std::string message);

  Options options_;
  RequestParser parser_;
  bool header_checked_ = false;
  bool fast_ = false;         // read by the fast path
  size_t consumed_ = 0;       // bytes of this request consumed so far
  size_t fast_retry_at_ = 0;  // the fast path's next try, in bytes of data
  bool done_ = false;
  std::optional<HttpError> error_;
  std::string content_encoding_;  // lower-case, "" for none or identity
};

// Inflates a gzip (windowBits 16+15) or deflate (zlib, else raw) body into
// *out, failing with 413 past `max_bytes` of output and 400 on corruption.
// Exposed for tests.
std::optional<HttpError> Inflate(std::string_view in, bool gzip, size_t max_bytes,
                                 std::string* out);

// Decodes %XX escapes in one path segment; nullopt on a malformed escape.
std::optional<std::string> PercentDecode(std::string_view segment);

}  // namespace inferd::http
