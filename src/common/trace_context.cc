#include "common/trace_context.h"

#include <algorithm>
#include <cstring>
#include <random>

namespace inferd {
namespace {

// Per-thread ids: a splitmix64 sequence seeded once per thread from the
// operating system. Not cryptographic; trace and span ids need only be
// unique, and this costs a few nanoseconds per id.
uint64_t NextRandom() {
  thread_local uint64_t state = [] {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
  }();
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <size_t N>
void FillRandom(std::array<uint8_t, N>* out) {
  for (size_t i = 0; i < N; i += 8) {
    uint64_t r = NextRandom();
    for (size_t j = 0; j < 8 && i + j < N; ++j) (*out)[i + j] = static_cast<uint8_t>(r >> (8 * j));
  }
  (*out)[0] |= 1;  // never all zero (invalid by the specification)
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is invalid in traceparent
}

template <size_t N>
bool ParseHex(std::string_view s, std::array<uint8_t, N>* out) {
  if (s.size() != 2 * N) return false;
  bool nonzero = false;
  for (size_t i = 0; i < N; ++i) {
    int hi = HexValue(s[2 * i]);
    int lo = HexValue(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
    nonzero |= (*out)[i] != 0;
  }
  return nonzero;
}

// "00" "01" ... "ff": two digits per byte, one load each.
constexpr std::array<char, 512> kHexPairs = [] {
  constexpr char kDigits[] = "0123456789abcdef";
  std::array<char, 512> t{};
  for (int i = 0; i < 256; ++i) {
    t[2 * i] = kDigits[i >> 4];
    t[2 * i + 1] = kDigits[i & 15];
  }
  return t;
}();

// Writes `bytes` in hex (2 * N digits) at `out`; returns the end.
template <size_t N>
char* WriteHex(char* out, const std::array<uint8_t, N>& bytes) {
  for (uint8_t b : bytes) out = std::copy_n(&kHexPairs[2 * b], 2, out);
  return out;
}

}  // namespace

bool TraceContext::valid() const {
  for (uint8_t b : trace_id)
    if (b) return true;
  return false;
}

TraceContext TraceContext::Generate() {
  TraceContext t;
  FillRandom(&t.trace_id);
  FillRandom(&t.span_id);
  return t;
}

bool TraceContext::Parse(std::string_view h, TraceContext* out) {
  // version "-" trace-id "-" parent-id "-" flags: 55 characters. A later
  // version may append "-..." fields, which this version ignores.
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return false;
  std::array<uint8_t, 1> version{};
  int vhi = HexValue(h[0]), vlo = HexValue(h[1]);
  if (vhi < 0 || vlo < 0) return false;
  version[0] = static_cast<uint8_t>(vhi << 4 | vlo);
  if (version[0] == 0xff) return false;
  if (version[0] == 0 && h.size() != 55) return false;
  if (h.size() > 55 && h[55] != '-') return false;
  TraceContext t;
  if (!ParseHex(h.substr(3, 32), &t.trace_id) || !ParseHex(h.substr(36, 16), &t.parent_id))
    return false;
  int fhi = HexValue(h[53]), flo = HexValue(h[54]);
  if (fhi < 0 || flo < 0) return false;
  t.flags = static_cast<uint8_t>(fhi << 4 | flo);
  *out = t;
  return true;
}

TraceContext TraceContext::Continue(std::string_view header) {
  TraceContext t;
  if (header.empty() || !Parse(header, &t)) return Generate();
  FillRandom(&t.span_id);
  return t;
}

std::string_view TraceContext::FormatTraceparent(char (&out)[kTraceparentSize]) const {
  char* p = out;
  std::memcpy(p, "00-", 3);
  p += 3;
  p = WriteHex(p, trace_id);
  *p++ = '-';
  p = WriteHex(p, span_id);
  *p++ = '-';
  p = std::copy_n(&kHexPairs[2 * (flags & 1)], 2, p);
  return {out, static_cast<size_t>(p - out)};
}

std::string TraceContext::Traceparent() const {
  char buf[kTraceparentSize];
  return std::string(FormatTraceparent(buf));
}

std::string TraceContext::TraceIdHex() const {
  char buf[2 * sizeof(trace_id)];
  return std::string(buf, WriteHex(buf, trace_id));
}

RequestId ChooseRequestId(std::string_view client_id, const TraceContext& trace) {
  static_assert(RequestId::kMaxSize >= 2 * sizeof(trace.trace_id) && RequestId::kMaxSize < 256);
  bool ok = !client_id.empty() && client_id.size() <= RequestId::kMaxSize;
  for (char c : client_id) ok = ok && c > 0x20 && c < 0x7f;
  RequestId id;
  if (ok) {
    std::memcpy(id.data_, client_id.data(), client_id.size());
    id.size_ = static_cast<uint8_t>(client_id.size());
  } else {
    id.size_ = static_cast<uint8_t>(WriteHex(id.data_, trace.trace_id) - id.data_);
  }
  return id;
}

}  // namespace inferd
