#pragma once
// Who `inferd bench` sends its requests as: extra headers (--header), an API
// key (--api-key, sent as `Authorization: Bearer <key>`) and a priority level
// (--priority, sent as `X-Inferd-Priority: <n>`), and the --mix grammar that
// runs several such classes of traffic at once in one open-loop run.
//
// --mix grammar (classes separated by ';', settings by ','):
//   mix     = class *( ";" class )
//   class   = name ":" setting *( "," setting )
//   name    = 1*( ALPHA / DIGIT / "_" / "-" / "." )      unique in the mix
//   setting = "rate=" number           requests/s, > 0; required
//           / "priority=" integer      0 = the model's default (no header);
//                                      1 is the highest level (Triton's)
//           / "api_key=" key           replaces --api-key for this class
//           / "header=" name ":" value  repeatable; added to --header (a
//                                      name given by both: the class wins)
//           / "slo_ms=" number         > 0: goodput counts 200s within it
// Blanks around names, keys and values are ignored. A value cannot hold ','
// or ';' (give such a header to every class with --header). Settings other
// than header may appear once per class. Example:
//   high:priority=1,rate=20,slo_ms=1000;low:priority=2,rate=200,api_key=K,header=X-Foo:bar

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "http/types.h"

namespace inferd::bench {

struct Header {
  std::string name;
  std::string value;
  bool operator==(const Header&) const = default;
};

// Parses "Name: value" or "Name:value" (split at the first ':'). The name
// must be a non-empty HTTP token and not Content-Length or
// Transfer-Encoding (the generator frames requests itself); neither part may
// hold CR, LF or NUL. Blanks around the value are dropped. Errors name the
// text.
StatusOr<Header> ParseHeader(std::string_view text);
StatusOr<std::vector<Header>> ParseHeaders(const std::vector<std::string>& texts);

// An API key goes into a header as-is: non-empty, printable ASCII, no blanks.
Status CheckApiKey(std::string_view key);

// One class of a --mix.
struct MixClass {
  std::string name;
  double rate = 0;                     // requests/s, > 0
  std::optional<int> priority;         // unset: --priority
  std::optional<std::string> api_key;  // unset: --api-key
  std::vector<Header> headers;         // on top of --header
  double slo_ms = 0;                   // 0: no SLO (goodput = throughput)
};

// Parses a --mix value (grammar above). Errors name the offending token.
StatusOr<std::vector<MixClass>> ParseMix(std::string_view text);

// The mix back in its own grammar, with API keys and header values replaced
// by "***": safe to write into a report.
std::string RedactedMix(const std::vector<MixClass>& classes);

// The headers that say who a request is from.
struct RequestIdentity {
  std::string api_key;  // "" = no Authorization header
  int priority = 0;     // 0 = no X-Inferd-Priority header
  std::vector<Header> headers;
};

// A class's identity: `defaults` (from --api-key, --priority, --header) with
// the class's own api_key and priority in place of the defaults' and its
// headers replacing default headers of the same name (case-insensitive).
RequestIdentity ClassIdentity(const RequestIdentity& defaults, const MixClass& mix_class);

// Sets `identity` on `request`: each header name replaces any earlier value
// (a name listed twice sends both values), then Authorization when there is
// an API key, then X-Inferd-Priority when `with_priority` and priority > 0.
void ApplyIdentity(const RequestIdentity& identity, bool with_priority,
                   http::ClientRequest& request);

}  // namespace inferd::bench
