#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing and
// formatting of the `traceparent` header, and fresh ids.
//
//   traceparent: 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>
//
// A server continues the caller's trace: it keeps the trace id and flags,
// takes a new span id of its own, and sends that onward (upstreams) and back
// (the response's traceparent). A header that does not parse is ignored and
// a new trace starts, as the specification asks.
//
// Also the X-Request-Id rule: a client's id is kept when it is 1 to 128
// visible ASCII characters; otherwise the request gets the trace id as its id.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace inferd {

struct TraceContext {
  std::array<uint8_t, 16> trace_id{};  // never all zero once set
  std::array<uint8_t, 8> span_id{};    // this server's span
  std::array<uint8_t, 8> parent_id{};  // the caller's span; all zero if none
  uint8_t flags = 0;                   // bit 0: sampled

  bool valid() const;
  // A trace started here: random trace and span ids, not sampled.
  static TraceContext Generate();
  // Continues `header` (a traceparent value) with a new span id; starts a
  // new trace (Generate) when it is absent or malformed.
  static TraceContext Continue(std::string_view header);
  // Parses a traceparent value; false if it is malformed (out untouched).
  static bool Parse(std::string_view header, TraceContext* out);

  // "00-<trace-id>-<span_id>-<flags>": what this server sends on (after
  // Generate or Continue; a merely parsed context has no span of its own).
  std::string Traceparent() const;
  // The same, written into `out` without allocating.
  static constexpr size_t kTraceparentSize = 55;
  std::string_view FormatTraceparent(char (&out)[kTraceparentSize]) const;
  std::string TraceIdHex() const;
};

// A request's id: at most 128 visible ASCII characters, held inline, so
// that a request gets its id without an allocation.
class RequestId {
 public:
  static constexpr size_t kMaxSize = 128;
  RequestId() = default;
  std::string_view view() const { return {data_, size_}; }
  operator std::string_view() const { return view(); }  // NOLINT: an id reads as text

 private:
  friend RequestId ChooseRequestId(std::string_view, const TraceContext&);
  char data_[kMaxSize];
  uint8_t size_ = 0;
};

// The client's X-Request-Id if acceptable, else the trace id in hex.
RequestId ChooseRequestId(std::string_view client_id, const TraceContext& trace);

}  // namespace inferd
