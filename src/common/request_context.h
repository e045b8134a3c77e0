#pragma once
// RequestContext: what every request carries through the pipeline besides
// its payload, set by the protocol adapter and read by every stage:
//
//  - credential: the API key as the client sent it ("" for none), until
//    the admission stage turns it into the tenant and clears it;
//  - tenant: who is asking ("default" for requests without a key while
//    keys are optional); it scopes the response cache. In-process callers
//    (cache warm-up, tests) set it themselves with `authenticated`;
//  - priority: 0 is the model's default level; otherwise 1 is the highest
//    and larger numbers are lower (Triton's convention);
//  - deadline: absolute, on the server's Clock; Time::max() for none. A
//    request still queued when it passes is answered 504 without running;
//  - cancel: raised when the client goes away; queued work is dropped and a
//    streaming backend stops (the deadline is checked where work is taken);
//  - request_id: the client's X-Request-Id if it is sane, else generated;
//  - trace: the W3C trace context, continued from the client's traceparent
//    or started here, with this server's own span id.

#include <memory>
#include <string>

#include "common/cancellation.h"
#include "common/clock.h"
#include "common/trace_context.h"

namespace inferd {

struct RequestContext {
  static constexpr const char* kDefaultTenant = "default";

  std::string credential;
  bool authenticated = false;  // true: `tenant` is set, skip authentication
  std::string tenant = kDefaultTenant;
  int priority = 0;
  Time deadline = Time::max();
  std::shared_ptr<Cancellation> cancel;  // never null once in the pipeline
  RequestId request_id;
  TraceContext trace;

  bool expired(Time now) const { return now >= deadline; }
};

}  // namespace inferd
