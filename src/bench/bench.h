#pragma once
// The load generator behind `inferd bench`, in the spirit of Triton's
// perf_analyzer: it reads a model's metadata, builds one random request up
// front and sends it over HTTP/1.1 keep-alive connections, either
//   - closed loop: for each concurrency level C, C connections each with one
//     request outstanding; or
//   - open loop: requests at a fixed rate (constant or Poisson arrivals) over
//     a pool of connections that grows up to max_connections, latency
//     measured from each request's intended send time (no coordinated
//     omission).
// Each level runs a warm-up (not recorded) and then a measurement window.
// Counted are the requests that complete inside the window (as Triton's
// perf_analyzer does), with latency from the send time (closed loop) or the
// intended send time (open loop). Requests still in flight when the window
// closes are awaited but not counted; in open loop, requests due but not yet
// sent are dropped and reported as backlog.
//
// Every request (the metadata request too) can carry an identity: an API
// key, extra headers and, on inference requests, a priority level (see
// mix.h). With `mix`, one open-loop run drives several classes of traffic at
// once, each with its own rate, arrivals, connection pool, identity and
// optional latency SLO, and the level reports each class apart.
//
// RunBench blocks the calling thread; load runs on `threads` I/O threads,
// one io_context each, connections spread over them.

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "bench/latency.h"
#include "common/status.h"

namespace inferd::bench {

struct BenchOptions {
  std::string url = "http://127.0.0.1:8000";  // server base URL
  std::string model;                          // required
  std::string model_version;                  // "" = server's choice
  std::vector<int> concurrency = {1, 4, 16};  // closed-loop levels (when rate == 0)
  double rate = 0;                            // requests/s; 0 = closed loop
  std::string arrival = "constant";           // open loop: "constant" or "poisson"
  double duration_s = 5;                      // measurement window per level
  double warmup_s = 1;                        // warm-up per level, not recorded
  std::string payload = "json";               // "json" or "binary" (tensor extension)
  std::string input_file;                     // optional: a full KServe v2 JSON body sent as-is
  int64_t batch_size = 1;                     // items per request (value of the batch dim)
  std::vector<std::string> shapes;            // "name=d1,d2,..." for variable dims
  int threads = 1;                            // load-generator I/O threads
  std::string json_out;                       // optional path for the JSON report
  int timeout_ms = 30000;                     // per request (and per connect)
  int max_connections = 256;                  // open loop: connection pool bound
  uint64_t seed = 42;                         // payload data and Poisson arrivals
  double unique_fraction = 0;                 // binary payload: share of never-repeated requests
  // Who the requests are from. Sent on every request, metadata included:
  std::string api_key;               // "" = none; else `Authorization: Bearer <api_key>`
  std::vector<std::string> headers;  // extra headers, each "Name: value" or "Name:value"
  // Inference requests only: `X-Inferd-Priority: <priority>` when > 0. 1 is
  // the highest level, larger numbers are lower (Triton's convention); 0 =
  // the model's default level (no header).
  int priority = 0;
  // Several classes in one open-loop run (then `rate` must be 0: each class
  // has its own), e.g.
  //   "high:priority=1,rate=20,slo_ms=1000;low:priority=2,rate=200,api_key=K,header=X-Foo:bar"
  // Keys: rate (required, > 0), priority, api_key, header (repeatable),
  // slo_ms. A class inherits api_key, priority and headers from the options
  // above and overrides them with its own. Full grammar in mix.h. Each class
  // has its own pool of up to max_connections connections and the same
  // `arrival` process. The metadata request and the probe go out as the
  // first class; then each class is probed once.
  std::string mix;
};

// One class of a --mix run, measured over the level's window.
struct ClassReport {
  std::string name;
  double rate = 0;        // target requests/s
  int priority = 0;       // X-Inferd-Priority sent (0: none)
  double slo_ms = 0;      // 0: no SLO
  int64_t sent = 0;       // requests sent with their intended send time in the window
  int64_t completed = 0;  // HTTP 200s completed in the window
  int64_t errors = 0;     // failures completed in the window
  std::map<std::string, int64_t> errors_by_kind;  // as LevelReport's
  double throughput_rps = 0;                      // completed / window
  // 200s completed in the window within slo_ms, per second of window;
  // throughput_rps when there is no SLO.
  double goodput_rps = 0;
  // Of the `sent` requests, the share answered 200 (whenever they completed;
  // backlog never sent is not counted). 0 when nothing was sent.
  double served_fraction = 0;
  LatencySummary latency;   // of the completed requests
  int64_t connections = 0;  // peak pool size of this class
  int64_t backlog = 0;      // requests due but unsent when the window closed
};

// Results of one concurrency level or rate.
struct LevelReport {
  int concurrency = 0;  // closed loop; 0 in open loop
  double rate = 0;      // open loop target req/s; 0 in closed loop
  double window_s = 0;
  int64_t completed = 0;  // successful (HTTP 200) requests in the window
  int64_t errors = 0;     // failed requests in the window
  // "503", "400", ... or transport failures "connect", "timeout", "io".
  std::map<std::string, int64_t> errors_by_kind;
  double throughput_rps = 0;    // completed / window
  double throughput_items = 0;  // throughput_rps * batch_size
  LatencySummary latency;       // of the completed requests
  int64_t connections = 0;      // connections in use (open loop: the peak pool size)
  int64_t backlog = 0;          // open loop: requests due but unsent when the window closed
  // With --mix: one entry per class, in mix order; the numbers above are
  // then their sum (latency: over all classes' samples). Empty otherwise.
  std::vector<ClassReport> classes;
};

struct BenchReport {
  BenchOptions options;
  std::string model_name;    // as the server reports it
  std::string infer_target;  // "/v2/models/m/infer"
  size_t request_bytes = 0;  // body size of each request
  std::vector<LevelReport> levels;
};

// Checks the options (flag values, --header, --mix) without contacting the
// server; an error names the offending flag or token. RunBench checks too.
Status ValidateOptions(const BenchOptions& options);

StatusOr<BenchReport> RunBench(const BenchOptions& options);

// An aligned table, one row per level.
void PrintReport(const BenchReport& report, std::ostream& out);

// The options and the rows as JSON.
Status WriteReportJson(const BenchReport& report, const std::string& path);

}  // namespace inferd::bench
