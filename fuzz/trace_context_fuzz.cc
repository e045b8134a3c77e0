// Fuzz target: the request-context headers, traceparent (W3C Trace Context)
// and X-Request-Id.
// Invariants: parsing never reads out of bounds; the header sent on
// (Continue, then Traceparent) always parses, and keeps an accepted
// caller's trace id; a request id is the client's only when it is 1-128
// visible ASCII characters, else the trace id.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/trace_context.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace inferd;
  std::string_view header(reinterpret_cast<const char*>(data), size);
  TraceContext parsed;
  const bool accepted = TraceContext::Parse(header, &parsed);
  if (accepted) FUZZ_CHECK(parsed.valid());
  // What the server sends on is always a valid version-00 header that
  // keeps the caller's trace id when the caller's header was accepted.
  TraceContext t = TraceContext::Continue(header);
  FUZZ_CHECK(t.valid());
  std::string sent = t.Traceparent();
  FUZZ_CHECK(sent.size() == 55);
  TraceContext again;
  FUZZ_CHECK(TraceContext::Parse(sent, &again));
  FUZZ_CHECK(again.trace_id == t.trace_id && again.parent_id == t.span_id);
  if (accepted) FUZZ_CHECK(t.trace_id == parsed.trace_id);
  const RequestId chosen = ChooseRequestId(header, t);
  const std::string_view id = chosen.view();
  if (id != header) FUZZ_CHECK(id == t.TraceIdHex());
  FUZZ_CHECK(!id.empty() && id.size() <= 128);
  return 0;
}
