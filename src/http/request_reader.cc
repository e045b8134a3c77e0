#include "http/request_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <vector>

#include "http/ascii.h"
#include "http/request_fast_path.h"

namespace inferd::http {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The comma-separated tokens of every `field` line, lower-cased and trimmed;
// empty list elements are skipped (RFC 9110 5.6.1).
std::vector<std::string> Tokens(const Request& req, std::string_view field) {
  std::vector<std::string> out;
  for (std::string_view v : req.values(field)) {
    ForEachListElement(v, [&](std::string_view t) { out.push_back(Lower(t)); });
  }
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One inflate pass over `in` with `window_bits`; see Inflate.
std::optional<HttpError> InflateWith(std::string_view in, int window_bits, bool multi_member,
                                     size_t max_bytes, std::string* out) {
  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK) {
    return HttpError{Status::internal_server_error, "cannot start the decompressor"};
  }
  struct End {
    z_stream* zs;
    ~End() { inflateEnd(zs); }
  } end{&zs};
  out->clear();
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(std::min<size_t>(in.size(), UINT32_MAX));
  size_t in_left = in.size() - zs.avail_in;  // beyond 4 GiB; never in practice
  size_t used = 0;
  for (;;) {
    if (used == out->size()) {
      if (out->size() > max_bytes) break;
      // Grow geometrically, never past the limit plus one byte (which
      // tells an over-limit body from one exactly at the limit).
      size_t grown = std::max<size_t>(out->size() * 2, 16u << 10);
      out->resize(std::min(grown, max_bytes + 1));
    }
    zs.next_out = reinterpret_cast<Bytef*>(out->data() + used);
    zs.avail_out = static_cast<uInt>(std::min<size_t>(out->size() - used, UINT32_MAX));
    uInt before = zs.avail_out;
    int rc = inflate(&zs, Z_NO_FLUSH);
    used += before - zs.avail_out;
    if (zs.avail_in == 0 && in_left > 0) {
      zs.avail_in = static_cast<uInt>(std::min<size_t>(in_left, UINT32_MAX));
      in_left -= zs.avail_in;
    }
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      if (!multi_member) {
        return HttpError{Status::bad_request, "compressed body has data after its end"};
      }
      if (inflateReset(&zs) != Z_OK) {
        return HttpError{Status::bad_request, "corrupt gzip member in the request body"};
      }
      continue;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      return HttpError{Status::bad_request, "compressed request body is truncated"};
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return HttpError{Status::bad_request,
                       std::string("corrupt compressed request body: ") +
                           (zs.msg ? zs.msg : "inflate error " + std::to_string(rc))};
    }
  }
  if (used > max_bytes) {
    return HttpError{Status::payload_too_large, "decompressed request body exceeds the limit of " +
                                                    std::to_string(max_bytes) +
                                                    " bytes (max_body_bytes)"};
  }
  out->resize(used);
  return std::nullopt;
}

}  // namespace

std::optional<HttpError> Inflate(std::string_view in, bool gzip, size_t max_bytes,
                                 std::string* out) {
  if (gzip) return InflateWith(in, 16 + MAX_WBITS, true, max_bytes, out);
  // "deflate" is the zlib format (RFC 9110 8.4.1.2), but some clients send
  // raw deflate: a zlib header is recognisable, so try it first.
  auto err = InflateWith(in, MAX_WBITS, false, max_bytes, out);
  if (err && err->status == Status::bad_request) {
    auto raw = InflateWith(in, -MAX_WBITS, false, max_bytes, out);
    if (!raw || raw->status != Status::bad_request) return raw;
  }
  return err;
}

std::optional<std::string> PercentDecode(std::string_view segment) {
  if (segment.find('%') == std::string_view::npos) return std::string(segment);
  std::string out;
  out.reserve(segment.size());
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out += segment[i];
      continue;
    }
    if (i + 2 >= segment.size()) return std::nullopt;
    int hi = HexValue(segment[i + 1]), lo = HexValue(segment[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

void RequestParser::on_request_impl(Verb method, string_view method_str, string_view target,
                                    int version, error_code& ec) {
  ec = {};
  req_.method(method);
  if (method == Verb::unknown) req_.method_string({method_str.data(), method_str.size()});
  req_.target({target.data(), target.size()});
  req_.version(static_cast<unsigned>(version));
}

void RequestParser::on_field_impl(beast_http::field, string_view name, string_view value,
                                  error_code& ec) {
  ec = {};
  req_.insert({name.data(), name.size()}, {value.data(), value.size()});
}

size_t RequestParser::on_body_impl(string_view body, error_code& ec) {
  ec = {};
  req_.body().append(body.data(), body.size());
  return body.size();
}

RequestReader::RequestReader(const Options& options) : options_(options) {
  parser_.header_limit(
      static_cast<uint32_t>(std::min<size_t>(options.max_header_bytes, UINT32_MAX)));
  parser_.body_limit(options.max_body_bytes);
  parser_.eager(false);  // stop after the header, to check it before the body
}

RequestReader::~RequestReader() = default;

bool RequestReader::header_done() const { return fast_ || parser_.is_header_done(); }

Verb RequestReader::method() const { return parser_.get().method(); }

bool RequestReader::wants_continue() const {
  // Never to an HTTP/1.0 client, which would read it as the final answer
  // (RFC 9110 10.1.1).
  if (!parser_.is_header_done() || parser_.is_done() || parser_.get().version() < 11) return false;
  auto expect = parser_.get()[beast_http::field::expect];
  return Lower(std::string_view(expect.data(), expect.size())) == "100-continue" &&
         parser_.content_length().value_or(0) <= options_.max_body_bytes;
}

void RequestReader::Fail(Status status, std::string message) {
  if (!error_) error_ = HttpError{status, std::move(message)};
}

size_t RequestReader::Feed(std::string_view data) {
  // Nothing consumed yet: `data` starts with the request. Tried again only
  // once the data has doubled, so that a header arriving byte by byte is
  // not scanned again per byte.
  if (consumed_ == 0 && options_.fast_path && !done_ && !error_ && data.size() >= fast_retry_at_) {
    FastParsed parsed;
    if (FastParseRequest(data, {options_.max_header_bytes, options_.max_body_bytes}, &parser_.get(),
                         &parsed)) {
      fast_ = true;
      consumed_ = parsed.header_bytes;
      CheckHeader(parsed.has_content_length ? std::optional<uint64_t>(parsed.body_bytes)
                                            : std::nullopt);
      if (error_) return consumed_;  // refused before the body, as Beast's path is
      parser_.get().body().append(data.substr(parsed.header_bytes, parsed.body_bytes));
      consumed_ += parsed.body_bytes;
      Finish();
      return consumed_;
    }
    fast_retry_at_ = 2 * std::max<size_t>(data.size(), 1);
  }
  size_t consumed = 0;
  while (!done_ && !error_) {
    boost::system::error_code ec;
    size_t n = parser_.put(boost::asio::buffer(data.data() + consumed, data.size() - consumed), ec);
    consumed += n;
    consumed_ += n;
    if (ec && ec != beast_http::error::need_more) {
      if (ec == beast_http::error::body_limit) {
        Fail(Status::payload_too_large, "request body exceeds the limit of " +
                                            std::to_string(options_.max_body_bytes) +
                                            " bytes (max_body_bytes)");
      } else if (ec == beast_http::error::header_limit) {
        Fail(Status::request_header_fields_too_large,
             "request header exceeds " + std::to_string(options_.max_header_bytes) + " bytes");
      } else {
        Fail(Status::bad_request, "malformed HTTP request: " + ec.message());
      }
      break;
    }
    if (parser_.is_header_done() && !header_checked_) {
      auto length = parser_.content_length();
      CheckHeader(length ? std::optional<uint64_t>(*length) : std::nullopt);
      if (error_) break;
    }
    if (parser_.is_done()) {
      Finish();
      break;
    }
    if (ec == beast_http::error::need_more || consumed == data.size()) break;
    if (n == 0) break;
  }
  return consumed;
}

void RequestReader::CheckHeader(std::optional<uint64_t> content_length) {
  header_checked_ = true;
  parser_.eager(true);  // the body in as few calls as the bytes allow
  const Request& req = parser_.get();
  if (req.count("Transfer-Encoding") > 0) {
    if (req.version() < 11) {  // RFC 9112 6.1: the framing is faulty
      Fail(Status::bad_request, "Transfer-Encoding is not allowed in an HTTP/1.0 request");
      return;
    }
    auto codings = Tokens(req, "Transfer-Encoding");
    if (codings.size() != 1 || codings[0] != "chunked") {
      Fail(Status::not_implemented,
           "Transfer-Encoding '" + Join(codings) + "' is not supported: only 'chunked' is");
      return;
    }
    if (req.count("Content-Length") > 0) {
      Fail(Status::bad_request,
           "a request may not carry both Transfer-Encoding and Content-Length");
      return;
    }
  }
  if (content_length && *content_length <= options_.max_body_bytes) {
    parser_.get().body().reserve(static_cast<size_t>(*content_length) + options_.body_padding);
  }
  for (const std::string& coding : Tokens(req, "Content-Encoding")) {
    if (coding == "identity") continue;
    if (coding != "gzip" && coding != "x-gzip" && coding != "deflate") {
      Fail(Status::unsupported_media_type,
           "Content-Encoding '" + coding + "' is not supported (gzip, deflate or identity)");
      return;
    }
    if (!content_encoding_.empty()) {
      Fail(Status::unsupported_media_type, "only one Content-Encoding is supported");
      return;
    }
    content_encoding_ = coding;
  }
  if (options_.check_header) {
    if (std::optional<HttpError> refused = options_.check_header(req)) error_ = std::move(refused);
  }
}

void RequestReader::Finish() {
  if (!content_encoding_.empty() && !parser_.get().body().empty()) {
    std::string decoded;
    auto err = Inflate(parser_.get().body(), content_encoding_ != "deflate",
                       options_.max_body_bytes, &decoded);
    if (err) {
      err->message = "Content-Encoding " + content_encoding_ + ": " + err->message;
      error_ = std::move(err);
      return;
    }
    decoded.reserve(decoded.size() + options_.body_padding);
    Request& req = parser_.get();
    req.body() = std::move(decoded);
    req.erase(beast_http::field::content_encoding);
  }
  done_ = true;
}

Request RequestReader::Release() { return parser_.release(); }

}  // namespace inferd::http
