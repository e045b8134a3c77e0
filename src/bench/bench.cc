#include "bench/bench.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "bench/load_generator.h"
#include "bench/mix.h"
#include "bench/payload.h"
#include "http/client.h"

namespace inferd::bench {
namespace {

// One class of traffic as RunBench sends it; without --mix the only one.
struct Traffic {
  std::string name;  // "" without --mix
  double rate = 0;   // 0: closed loop
  double slo_ms = 0;
  RequestIdentity identity;
};

StatusOr<std::vector<Traffic>> ResolveTraffic(const BenchOptions& o) {
  RequestIdentity defaults;
  defaults.api_key = o.api_key;
  defaults.priority = o.priority;
  StatusOr<std::vector<Header>> headers = ParseHeaders(o.headers);
  if (!headers.ok()) return headers.status().WithContext("--header");
  defaults.headers = *std::move(headers);
  if (o.mix.empty()) return std::vector<Traffic>{{"", o.rate, 0, std::move(defaults)}};
  INFERD_ASSIGN_OR_RETURN(std::vector<MixClass> mix, ParseMix(o.mix));
  std::vector<Traffic> traffic;
  for (const MixClass& c : mix) {
    traffic.push_back({c.name, c.rate, c.slo_ms, ClassIdentity(defaults, c)});
  }
  return traffic;
}

Status ValidateIdentity(const BenchOptions& o) {
  if (!o.api_key.empty()) {
    Status key = CheckApiKey(o.api_key);
    if (!key.ok()) return key.WithContext("--api-key");
  }
  if (o.priority < 0) return InvalidArgumentError("--priority must be >= 0");
  if (!o.mix.empty() && o.rate != 0) {
    return InvalidArgumentError("--mix gives each class its own rate: drop --rate");
  }
  return ResolveTraffic(o).status();
}

Status ValidateLoadOptions(const BenchOptions& o) {
  if (o.model.empty()) return InvalidArgumentError("--model is required");
  if (!std::isfinite(o.rate) || o.rate < 0) return InvalidArgumentError("--rate must be >= 0");
  if (o.rate == 0 && o.mix.empty()) {
    if (o.concurrency.empty())
      return InvalidArgumentError("--concurrency needs at least one level");
    for (int c : o.concurrency) {
      if (c < 1 || c > 100000)
        return InvalidArgumentError("--concurrency levels must be 1..100000");
    }
  }
  if (!std::isfinite(o.duration_s) || o.duration_s <= 0) {
    return InvalidArgumentError("--duration-s must be > 0");
  }
  if (!std::isfinite(o.warmup_s) || o.warmup_s < 0) {
    return InvalidArgumentError("--warmup-s must be >= 0");
  }
  if (o.payload != "json" && o.payload != "binary") {
    return InvalidArgumentError("--payload must be json or binary");
  }
  if (o.arrival != "constant" && o.arrival != "poisson") {
    return InvalidArgumentError("--arrival must be constant or poisson");
  }
  if (!o.input_file.empty() && o.payload != "json") {
    return InvalidArgumentError("--input-file holds a JSON request body; it needs --payload json");
  }
  if (o.batch_size < 1) return InvalidArgumentError("--batch-size must be >= 1");
  if (o.threads < 1 || o.threads > 256) return InvalidArgumentError("--threads must be 1..256");
  if (o.timeout_ms < 1) return InvalidArgumentError("--timeout-ms must be >= 1");
  if (o.max_connections < 1) return InvalidArgumentError("--max-connections must be >= 1");
  return Status::OK();
}

std::string Truncate(std::string s, size_t n) {
  if (s.size() > n) s = s.substr(0, n) + "...";
  return s;
}

Status HttpError(const std::string& what, const http::ClientResponse& r) {
  std::string message =
      what + ": HTTP " + std::to_string(r.result_int()) + ": " + Truncate(r.body(), 300);
  return r.result() == http::Status::not_found ? NotFoundError(message)
                                               : FailedPreconditionError(message);
}

StatusOr<ModelMetadata> FetchMetadata(const http::Url& url, const std::string& model_path,
                                      const RequestIdentity& identity,
                                      std::chrono::milliseconds timeout) {
  http::ClientRequest req = http::MakeRequest(url, http::Verb::get, model_path);
  ApplyIdentity(identity, /*with_priority=*/false, req);
  StatusOr<http::ClientResponse> r = http::FetchOnce(url, req, timeout);
  const std::string what = "GET " + url.base_path + model_path;
  if (!r.ok()) return r.status().WithContext(what);
  if (r->result() != http::Status::ok) return HttpError(what, *r);
  StatusOr<ModelMetadata> m = ParseModelMetadata(r->body());
  if (!m.ok()) return m.status().WithContext(what);
  return m;
}

StatusOr<Payload> LoadPayload(const BenchOptions& o, const ModelMetadata& metadata) {
  if (!o.input_file.empty()) {
    std::ifstream in(o.input_file, std::ios::binary);
    if (!in) return NotFoundError("cannot read --input-file " + o.input_file);
    std::ostringstream text;
    text << in.rdbuf();
    Payload p;
    p.body = std::move(text).str();
    p.content_type = "application/json";
    return p;
  }
  INFERD_ASSIGN_OR_RETURN(auto overrides, ParseShapeOverrides(o.shapes));
  return BuildPayload(metadata,
                      o.payload == "binary" ? PayloadFormat::kBinary : PayloadFormat::kJson,
                      o.batch_size, overrides, o.seed);
}

// The probe passes with 200, and with the statuses of a server refusing load
// (429, 503, 504): the request itself is fine, and the run will count them.
bool ProbePassed(const http::ClientResponse& r) {
  const unsigned status = r.result_int();
  return status == 200 || status == 429 || status == 503 || status == 504;
}

LevelReport ToLevelReport(const BenchOptions& o, LoadResult& r) {
  LevelReport level;
  level.window_s = r.window_s;
  level.completed = r.ok;
  level.errors = r.errors;
  level.errors_by_kind = std::move(r.errors_by_kind);
  level.throughput_rps = r.window_s > 0 ? static_cast<double>(r.ok) / r.window_s : 0;
  level.throughput_items = level.throughput_rps * static_cast<double>(o.batch_size);
  level.latency = SummarizeLatencies(r.latencies_ns);
  level.connections = r.connections;
  level.backlog = r.backlog;
  return level;
}

ClassReport ToClassReport(const Traffic& traffic, LoadResult& r) {
  ClassReport c;
  c.name = traffic.name;
  c.rate = traffic.rate;
  c.priority = traffic.identity.priority;
  c.slo_ms = traffic.slo_ms;
  c.sent = r.sent;
  c.completed = r.ok;
  c.errors = r.errors;
  c.errors_by_kind = r.errors_by_kind;
  const double window_s = r.window_s > 0 ? r.window_s : 1;
  c.throughput_rps = static_cast<double>(r.ok) / window_s;
  int64_t good = r.ok;
  if (traffic.slo_ms > 0) {
    const double slo_ns = traffic.slo_ms * 1e6;
    good = std::count_if(r.latencies_ns.begin(), r.latencies_ns.end(),
                         [slo_ns](int64_t ns) { return static_cast<double>(ns) <= slo_ns; });
  }
  c.goodput_rps = static_cast<double>(good) / window_s;
  c.served_fraction = r.sent > 0 ? static_cast<double>(r.served) / static_cast<double>(r.sent) : 0;
  std::vector<int64_t> latencies = r.latencies_ns;
  c.latency = SummarizeLatencies(latencies);
  c.connections = r.connections;
  c.backlog = r.backlog;
  return c;
}

// The level of a --mix run: one ClassReport per class, and their sum.
LevelReport MixLevelReport(const BenchOptions& o, const std::vector<Traffic>& traffic,
                           std::vector<LoadResult>& results) {
  LoadResult total;
  total.window_s = results.front().window_s;
  std::vector<ClassReport> classes;
  double rate = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    LoadResult& r = results[i];
    classes.push_back(ToClassReport(traffic[i], r));
    rate += traffic[i].rate;
    total.ok += r.ok;
    total.errors += r.errors;
    for (const auto& [kind, n] : r.errors_by_kind) total.errors_by_kind[kind] += n;
    total.latencies_ns.insert(total.latencies_ns.end(), r.latencies_ns.begin(),
                              r.latencies_ns.end());
    total.connections += r.connections;
    total.backlog += r.backlog;
  }
  LevelReport level = ToLevelReport(o, total);
  level.rate = rate;
  level.classes = std::move(classes);
  return level;
}

// The spec every class starts from: the prepared request and the run's shape.
StatusOr<LoadSpec> BaseSpec(const BenchOptions& o, const http::Url& url,
                            const std::string& infer_path, Payload payload) {
  LoadSpec spec;
  spec.url = url;
  const size_t header_length = payload.header_length;
  spec.request = http::MakeRequest(url, http::Verb::post, infer_path, std::move(payload.body),
                                   payload.content_type);
  if (header_length > 0) {
    spec.request.set("Inference-Header-Content-Length", std::to_string(header_length));
  }
  spec.threads = o.threads;
  spec.warmup = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(o.warmup_s));
  spec.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(o.duration_s));
  spec.timeout = std::chrono::milliseconds(o.timeout_ms);
  spec.poisson = o.arrival == "poisson";
  spec.max_connections = o.max_connections;
  spec.seed = o.seed;
  if (o.unique_fraction > 0) {
    if (header_length == 0) return InvalidArgumentError("--unique-fraction needs --payload binary");
    if (spec.request.body().size() < header_length + LoadSpec::kUniqueMarkBytes) {
      return InvalidArgumentError("--unique-fraction needs at least " +
                                  std::to_string(LoadSpec::kUniqueMarkBytes) +
                                  " bytes of tensor data to mark requests unique");
    }
    spec.unique_fraction = o.unique_fraction;
    spec.unique_offset = header_length;
  }
  return spec;
}

// One spec per class, each probed once, so that a request the server
// rejects fails here with its message.
StatusOr<std::vector<LoadSpec>> ClassSpecs(const LoadSpec& base,
                                           const std::vector<Traffic>& traffic,
                                           const std::string& infer_target) {
  std::vector<LoadSpec> specs;
  for (size_t i = 0; i < traffic.size(); ++i) {
    LoadSpec& spec = specs.emplace_back(base);
    ApplyIdentity(traffic[i].identity, /*with_priority=*/true, spec.request);
    spec.rate = traffic[i].rate;
    spec.seed = base.seed + i * 1000003;  // classes do not share arrival draws
    const std::string what = "POST " + infer_target +
                             (traffic[i].name.empty() ? "" : " (class " + traffic[i].name + ")");
    StatusOr<http::ClientResponse> probe = http::FetchOnce(base.url, spec.request, base.timeout);
    if (!probe.ok()) return probe.status().WithContext(what);
    if (!ProbePassed(*probe)) return HttpError(what, *probe);
  }
  return specs;
}

}  // namespace

Status ValidateOptions(const BenchOptions& options) {
  INFERD_RETURN_IF_ERROR(ValidateLoadOptions(options));
  return ValidateIdentity(options);
}

StatusOr<BenchReport> RunBench(const BenchOptions& options) {
  INFERD_RETURN_IF_ERROR(ValidateOptions(options));
  INFERD_ASSIGN_OR_RETURN(const std::vector<Traffic> traffic, ResolveTraffic(options));
  INFERD_ASSIGN_OR_RETURN(http::Url url, http::ParseUrl(options.url));
  const std::chrono::milliseconds timeout(options.timeout_ms);
  std::string model_path = "/v2/models/" + options.model;
  if (!options.model_version.empty()) model_path += "/versions/" + options.model_version;

  INFERD_ASSIGN_OR_RETURN(ModelMetadata metadata,
                          FetchMetadata(url, model_path, traffic.front().identity, timeout));
  INFERD_ASSIGN_OR_RETURN(Payload payload, LoadPayload(options, metadata));

  BenchReport report;
  report.options = options;
  report.model_name = metadata.name.empty() ? options.model : metadata.name;
  report.infer_target = url.base_path + model_path + "/infer";
  report.request_bytes = payload.body.size();
  INFERD_ASSIGN_OR_RETURN(LoadSpec base,
                          BaseSpec(options, url, model_path + "/infer", std::move(payload)));
  INFERD_ASSIGN_OR_RETURN(std::vector<LoadSpec> specs,
                          ClassSpecs(base, traffic, report.infer_target));

  if (!options.mix.empty()) {
    INFERD_ASSIGN_OR_RETURN(std::vector<LoadResult> results, RunLoads(specs));
    report.levels.push_back(MixLevelReport(options, traffic, results));
    return report;
  }
  LoadSpec& single = specs.front();
  std::vector<int> levels = options.rate > 0 ? std::vector<int>{0} : options.concurrency;
  for (int c : levels) {
    single.concurrency = c;
    INFERD_ASSIGN_OR_RETURN(LoadResult result, RunLoad(single));
    LevelReport level = ToLevelReport(options, result);
    level.concurrency = c;
    level.rate = options.rate;
    report.levels.push_back(std::move(level));
  }
  return report;
}

}  // namespace inferd::bench
