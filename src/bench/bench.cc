#include "bench/bench.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "bench/load_generator.h"
#include "bench/payload.h"
#include "http/client.h"

namespace inferd::bench {
namespace {

Status ValidateOptions(const BenchOptions& o) {
  if (o.model.empty()) return InvalidArgumentError("--model is required");
  if (!std::isfinite(o.rate) || o.rate < 0) return InvalidArgumentError("--rate must be >= 0");
  if (o.rate == 0) {
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

Status HttpError(const std::string& what, const http::Response& r) {
  std::string message =
      what + ": HTTP " + std::to_string(r.result_int()) + ": " + Truncate(r.body(), 300);
  return r.result() == http::Status::not_found ? NotFoundError(message)
                                               : FailedPreconditionError(message);
}

StatusOr<ModelMetadata> FetchMetadata(const http::Url& url, const std::string& model_path,
                                      std::chrono::milliseconds timeout) {
  const http::Request req = http::MakeRequest(url, http::Verb::get, model_path);
  StatusOr<http::Response> r = http::FetchOnce(url, req, timeout);
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

}  // namespace

StatusOr<BenchReport> RunBench(const BenchOptions& options) {
  INFERD_RETURN_IF_ERROR(ValidateOptions(options));
  INFERD_ASSIGN_OR_RETURN(http::Url url, http::ParseUrl(options.url));
  const std::chrono::milliseconds timeout(options.timeout_ms);
  std::string model_path = "/v2/models/" + options.model;
  if (!options.model_version.empty()) model_path += "/versions/" + options.model_version;

  INFERD_ASSIGN_OR_RETURN(ModelMetadata metadata, FetchMetadata(url, model_path, timeout));
  INFERD_ASSIGN_OR_RETURN(Payload payload, LoadPayload(options, metadata));

  BenchReport report;
  report.options = options;
  report.model_name = metadata.name.empty() ? options.model : metadata.name;
  report.infer_target = url.base_path + model_path + "/infer";
  report.request_bytes = payload.body.size();

  LoadSpec spec;
  spec.url = url;
  spec.request = http::MakeRequest(url, http::Verb::post, model_path + "/infer",
                                   std::move(payload.body), payload.content_type);
  if (payload.header_length > 0) {
    spec.request.set("Inference-Header-Content-Length", std::to_string(payload.header_length));
  }
  // One probe, so that a request the server rejects fails here with its message.
  StatusOr<http::Response> probe = http::FetchOnce(url, spec.request, timeout);
  if (!probe.ok()) return probe.status().WithContext("POST " + report.infer_target);
  if (probe->result() != http::Status::ok) {
    return HttpError("POST " + report.infer_target, *probe);
  }

  spec.threads = options.threads;
  spec.warmup = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(options.warmup_s));
  spec.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(options.duration_s));
  spec.timeout = timeout;
  spec.rate = options.rate;
  spec.poisson = options.arrival == "poisson";
  spec.max_connections = options.max_connections;
  spec.seed = options.seed;
  if (options.unique_fraction > 0) {
    if (payload.header_length == 0) {
      return InvalidArgumentError("--unique-fraction needs --payload binary");
    }
    if (report.request_bytes < payload.header_length + LoadSpec::kUniqueMarkBytes) {
      return InvalidArgumentError("--unique-fraction needs at least " +
                                  std::to_string(LoadSpec::kUniqueMarkBytes) +
                                  " bytes of tensor data to mark requests unique");
    }
    spec.unique_fraction = options.unique_fraction;
    spec.unique_offset = payload.header_length;
  }

  std::vector<int> levels = options.rate > 0 ? std::vector<int>{0} : options.concurrency;
  for (int c : levels) {
    spec.concurrency = c;
    INFERD_ASSIGN_OR_RETURN(LoadResult result, RunLoad(spec));
    LevelReport level = ToLevelReport(options, result);
    level.concurrency = c;
    level.rate = options.rate;
    report.levels.push_back(std::move(level));
  }
  return report;
}

}  // namespace inferd::bench
