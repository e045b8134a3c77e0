#pragma once
// The request reader's fast path: a plain request that arrived whole is
// parsed in one pass over its bytes, without Beast's incremental state
// machine. Plain means: "METHOD target HTTP/1.x", fields whose names are
// tokens and whose values are visible ASCII, spaces and tabs, no
// Transfer-Encoding, Upgrade or Proxy-Connection, at most one
// Content-Length, a Connection field that is a plain token list, the header
// under its limit and the body (Content-Length bytes) within its limit and
// already in `data`. Anything else (incomplete, chunked, obs-fold, bytes
// Beast would refuse or read differently) is declined and left to Beast.
//
// The rule, checked by fuzz/http_request_fuzz.cc against Beast on every
// input: a request the fast path accepts, Beast accepts too and reads the
// same (method, target, version, fields in order, body).
// Private to the http component.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/request.h"

namespace inferd::http {

struct FastParseLimits {
  size_t max_header_bytes = 0;
  size_t max_body_bytes = 0;
};

struct FastParsed {
  size_t header_bytes = 0;  // the request line and fields, blank line included
  size_t body_bytes = 0;    // Content-Length, 0 without one
  bool has_content_length = false;
};

// Parses the request at the start of `data` into *req, a request as
// default-constructed (start line and fields; the body is the caller's:
// data.substr(header_bytes, body_bytes)). Returns false, with *req
// untouched, to decline.
bool FastParseRequest(std::string_view data, const FastParseLimits& limits, Request* req,
                      FastParsed* out);

}  // namespace inferd::http
