#include "http/response_encoding.h"

#include <zlib.h>

#include <cctype>
#include <cstdlib>

namespace inferd::http {

bool AcceptsGzip(std::string_view v) {
  size_t pos = 0;
  bool star = false, gzip = false, gzip_refused = false;
  while (pos <= v.size()) {
    size_t comma = v.find(',', pos);
    if (comma == std::string_view::npos) comma = v.size();
    std::string_view item = v.substr(pos, comma - pos);
    pos = comma + 1;
    size_t semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t'))
      coding.remove_prefix(1);
    while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t'))
      coding.remove_suffix(1);
    std::string lower(coding);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    double q = 1.0;
    if (semi != std::string_view::npos) {
      std::string params(item.substr(semi + 1));
      size_t qpos = params.find("q=");
      if (qpos != std::string::npos) q = std::strtod(params.c_str() + qpos + 2, nullptr);
    }
    if (lower == "gzip" || lower == "x-gzip") {
      (q > 0 ? gzip : gzip_refused) = true;
    } else if (lower == "*" && q > 0) {
      star = true;
    }
  }
  return gzip || (star && !gzip_refused);
}

bool GzipCompress(std::string_view in, int level, std::string* out) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return false;
  }
  out->resize(deflateBound(&zs, in.size()));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out->data());
  zs.avail_out = static_cast<uInt>(out->size());
  int rc = deflate(&zs, Z_FINISH);
  out->resize(zs.total_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END;
}

bool MaybeGzipResponse(Response& res, size_t min_bytes, int level) {
  if (res.body().size() < min_bytes || res.body().size() > UINT32_MAX ||
      res.count(beast_http::field::content_encoding) > 0) {
    return false;
  }
  std::string gz;
  if (!GzipCompress(res.body(), level, &gz) || gz.size() >= res.body().size()) return false;
  res.body() = std::move(gz);
  res.set(beast_http::field::content_encoding, "gzip");
  res.set(beast_http::field::vary, "Accept-Encoding");
  return true;
}

}  // namespace inferd::http
