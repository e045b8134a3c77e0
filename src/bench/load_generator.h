#pragma once
// LoadGenerator internals of `inferd bench`: runs one level (a closed-loop
// concurrency or an open-loop rate) of one prepared request against a server
// and returns the raw samples. See bench.h for the measurement rules.
//
// Threading: RunLoad blocks its caller; it runs `threads` I/O threads, each
// with its own io_context and its own connections, state and samples (no
// locks on the request path); samples are merged after the threads join.
// RunLoads runs each load's share on the same I/O threads.
// Time is real time (std::chrono::steady_clock, as Asio's timers use): the
// generator measures the server, so there is nothing to fake here.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "http/client.h"

namespace inferd::bench {

struct LoadSpec {
  http::Url url;
  http::ClientRequest request;  // sent as-is, over and over
  int threads = 1;
  std::chrono::nanoseconds warmup{std::chrono::seconds(1)};
  std::chrono::nanoseconds duration{std::chrono::seconds(5)};
  std::chrono::milliseconds timeout{30000};
  int concurrency = 1;        // closed loop (when rate == 0)
  double rate = 0;            // open loop requests/s when > 0
  bool poisson = false;       // open loop: exponential inter-arrival times
  int max_connections = 256;  // open loop pool bound (over all threads)
  uint64_t seed = 42;         // Poisson arrivals
  // This fraction of requests is made unique (never seen before) by
  // overwriting 12 bytes of the body at `unique_offset` (binary payloads: the
  // first input's data) with three floats: a per-thread counter, the thread
  // index and a random per-run nonce, so that runs against one server do not
  // repeat each other's unique requests. The rest repeat `request` exactly:
  // a cache-friendly mix.
  double unique_fraction = 0;
  size_t unique_offset = 0;
  static constexpr size_t kUniqueMarkBytes = 12;
};

struct LoadResult {
  double window_s = 0;
  int64_t ok = 0;
  int64_t errors = 0;
  std::map<std::string, int64_t> errors_by_kind;
  std::vector<int64_t> latencies_ns;  // of the ok requests, unsorted
  int64_t connections = 0;
  int64_t backlog = 0;
  // Requests whose send time (open loop: intended send time) fell inside the
  // window, and how many of those were answered 200, whenever they completed
  // (requests in flight at the end are awaited). Unsent backlog is not in
  // `sent`.
  int64_t sent = 0;
  int64_t served = 0;
};

// Fails only when the generator itself fails (threads, internal errors);
// request failures are counted in the result.
StatusOr<LoadResult> RunLoad(const LoadSpec& spec);

// Runs several loads at once over one window and one set of I/O threads (the
// classes of `inferd bench --mix`): each keeps its own request, rate,
// arrivals, connections and samples; results are in the order of `specs`.
// The specs must agree on threads, warmup and duration.
StatusOr<std::vector<LoadResult>> RunLoads(const std::vector<LoadSpec>& specs);

}  // namespace inferd::bench
