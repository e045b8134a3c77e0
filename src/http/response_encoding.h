#pragma once
// Response compression: gzip for clients that ask for it (Accept-Encoding),
// on bodies large enough for it to pay (Server::Options::gzip_min_bytes;
// docs/benchmarks.md measures the trade-off).

#include <cstddef>
#include <string>
#include <string_view>

#include "http/types.h"

namespace inferd::http {

// Whether an Accept-Encoding value accepts gzip: "gzip" or "x-gzip" or "*"
// with a q-value above 0 (RFC 9110 12.5.3); "gzip;q=0" refuses it.
bool AcceptsGzip(std::string_view accept_encoding);

// Compresses `in` as one gzip member at `level` (1 fastest .. 9 smallest)
// into *out. False on a zlib failure.
bool GzipCompress(std::string_view in, int level, std::string* out);

// Replaces the body of `res` with its gzip form and sets Content-Encoding
// and Vary, if the body has at least `min_bytes`, no Content-Encoding yet,
// and compresses to fewer bytes. Returns whether it did.
bool MaybeGzipResponse(Response& res, size_t min_bytes, int level);

}  // namespace inferd::http
