#include "http/request_fast_path.h"

#include <algorithm>
#include <boost/beast/http/verb.hpp>
#include <cstring>

#include "http/ascii.h"

namespace inferd::http {
namespace {

// tchar (RFC 9110 5.6.2): Beast's table for field names.
constexpr bool IsTokenChar(unsigned char c) {
  if (c >= 'a' && c <= 'z') return true;
  if (c >= 'A' && c <= 'Z') return true;
  if (c >= '0' && c <= '9') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':  // clang-format off
    case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;  // clang-format on
    default:
      return false;
  }
}

struct Tables {
  bool token[256] = {};
  bool target[256] = {};  // visible ASCII: stricter than Beast's (no obs-text)
  bool value[256] = {};   // visible ASCII, space and tab (no obs-text, no controls)
  constexpr Tables() {
    for (int c = 0; c < 256; ++c) {
      token[c] = IsTokenChar(static_cast<unsigned char>(c));
      target[c] = c > 0x20 && c < 0x7f;
      value[c] = (c >= 0x20 && c < 0x7f) || c == '\t';
    }
  }
};
constexpr Tables kTables;

// The end of the run of `table` characters from `p`, at most `end`.
const char* Span(const char* p, const char* end, const bool (&table)[256]) {
  while (p < end && table[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighs = 0x8080808080808080ull;

// The end of the run from `p` (at most `end`) of bytes in [lo, 0x7e], eight
// at a time (SWAR: nonzero when some byte is below `lo`, or above 0x7e);
// it may stop early, at the word holding the first byte outside: the
// caller's table loop goes on from there.
const char* SpanPrintable(const char* p, const char* end, uint8_t lo) {
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    const uint64_t below = (w - kOnes * lo) & ~w & kHighs;
    const uint64_t above = ((w + kOnes * (127 - 0x7e)) | w) & kHighs;
    if ((below | above) != 0) break;
    p += 8;
  }
  return p;
}

// A Connection value Beast reads the same way: tokens separated by commas
// with optional spaces, no empty element.
bool PlainTokenList(std::string_view v) {
  bool ok = !v.empty();
  ForEachListElement(
      v,
      [&](std::string_view t) {
        ok = ok && !t.empty() &&
             Span(t.data(), t.data() + t.size(), kTables.token) == t.data() + t.size();
      },
      EmptyElements::kReport);
  return ok;
}

}  // namespace

bool FastParseRequest(std::string_view data, const FastParseLimits& limits, Request* req,
                      FastParsed* out) {
  // The header must be whole and under the limit (Beast: 431 past it).
  const size_t window = std::min(data.size(), limits.max_header_bytes);
  const char* const begin = data.data();
  const char* const wend = begin + window;
  // Request line.
  const char* p = Span(begin, wend, kTables.token);
  if (p == begin || p >= wend || *p != ' ') return false;
  const std::string_view method(begin, static_cast<size_t>(p - begin));
  const char* t = ++p;
  p = Span(SpanPrintable(p, wend, 0x21), wend, kTables.target);
  if (p == t || wend - p < 11 || *p != ' ') return false;
  const std::string_view target(t, static_cast<size_t>(p - t));
  ++p;
  if (std::memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != '\r' ||
      p[9] != '\n') {
    return false;
  }
  const unsigned version = p[7] == '1' ? 11 : 10;
  p += 10;
  // Fields: first a pass that checks them all and finds the header's end.
  Request::HeaderSpans::Field lines[32];  // trivial: not initialized
  size_t n = 0;
  uint64_t length = 0;
  bool has_length = false;
  for (;;) {
    if (wend - p < 2) return false;
    if (p[0] == '\r') {
      if (p[1] != '\n') return false;
      p += 2;
      break;
    }
    const char* name_end = Span(p, wend, kTables.token);
    if (name_end == p || name_end >= wend || *name_end != ':') return false;
    const std::string_view name(p, static_cast<size_t>(name_end - p));
    const char* v = name_end + 1;
    while (v < wend && (*v == ' ' || *v == '\t')) ++v;
    const char* v_end = Span(SpanPrintable(v, wend, 0x20), wend, kTables.value);
    // CRLF, then a next line that does not start with SP or HTAB (obs-fold).
    if (wend - v_end < 3 || v_end[0] != '\r' || v_end[1] != '\n' || v_end[2] == ' ' ||
        v_end[2] == '\t') {
      return false;
    }
    const char* trimmed = v_end;
    while (trimmed > v && (trimmed[-1] == ' ' || trimmed[-1] == '\t')) --trimmed;
    const std::string_view value(v, static_cast<size_t>(trimmed - v));
    if (n == sizeof(lines) / sizeof(lines[0])) return false;
    lines[n++] = {static_cast<uint32_t>(name.data() - begin), static_cast<uint32_t>(name.size()),
                  static_cast<uint32_t>(value.data() - begin), static_cast<uint32_t>(value.size())};
    p = v_end + 2;
    // The fields Beast interprets: take the plain cases only.
    if (name == "Content-Length" || IEquals(name, "Content-Length")) {
      if (has_length || value.empty() || value.size() > 18) return false;
      for (char c : value) {
        if (c < '0' || c > '9') return false;
        length = length * 10 + static_cast<uint64_t>(c - '0');
      }
      has_length = true;
    } else if (IEquals(name, "Transfer-Encoding") || IEquals(name, "Upgrade") ||
               IEquals(name, "Proxy-Connection")) {
      return false;
    } else if (IEquals(name, "Connection") && !PlainTokenList(value)) {
      return false;
    }
  }
  const size_t header_bytes = static_cast<size_t>(p - begin);
  if (header_bytes >= limits.max_header_bytes || header_bytes > UINT32_MAX) return false;
  if (length > limits.max_body_bytes || length > data.size() - header_bytes) return false;

  Request::HeaderSpans spans;
  spans.method_size = static_cast<uint32_t>(method.size());
  spans.target = static_cast<uint32_t>(target.data() - begin);
  spans.target_size = static_cast<uint32_t>(target.size());
  spans.fields = lines;
  spans.n = n;
  req->AssignHeader(data.substr(0, header_bytes),
                    boost::beast::http::string_to_verb({method.data(), method.size()}), version,
                    spans);
  out->header_bytes = header_bytes;
  out->body_bytes = static_cast<size_t>(length);
  out->has_content_length = has_length;
  return true;
}

}  // namespace inferd::http
