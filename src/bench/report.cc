// PrintReport and WriteReportJson (see bench.h).

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "bench/bench.h"

namespace inferd::bench {
namespace {

using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

std::string Fixed(double v, int precision) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

std::string ErrorsCell(const LevelReport& level) {
  std::string cell = std::to_string(level.errors);
  if (level.errors_by_kind.empty()) return cell;
  cell += " (";
  bool first = true;
  for (const auto& [kind, n] : level.errors_by_kind) {
    if (!first) cell += " ";
    first = false;
    cell += kind + ":" + std::to_string(n);
  }
  return cell + ")";
}

std::string Bytes(size_t n) {
  if (n >= (1u << 20)) return Fixed(static_cast<double>(n) / (1u << 20), 1) + " MiB";
  if (n >= (1u << 10)) return Fixed(static_cast<double>(n) / (1u << 10), 1) + " KiB";
  return std::to_string(n) + " B";
}

void Key(JsonWriter& w, const char* key) { w.Key(key); }
void String(JsonWriter& w, const std::string& s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}
// One "key": value member.
void Put(JsonWriter& w, const char* key, const std::string& v) {
  w.Key(key);
  String(w, v);
}
void Put(JsonWriter& w, const char* key, double v) {
  w.Key(key);
  w.Double(v);
}
void Put(JsonWriter& w, const char* key, int64_t v) {
  w.Key(key);
  w.Int64(v);
}

void WriteOptions(JsonWriter& w, const BenchOptions& o) {
  w.StartObject();
  Put(w, "url", o.url);
  Put(w, "model", o.model);
  Put(w, "model_version", o.model_version);
  Key(w, "concurrency");
  w.StartArray();
  for (int c : o.concurrency) w.Int(c);
  w.EndArray();
  Put(w, "rate", o.rate);
  Put(w, "arrival", o.arrival);
  Put(w, "duration_s", o.duration_s);
  Put(w, "warmup_s", o.warmup_s);
  Put(w, "payload", o.payload);
  Put(w, "input_file", o.input_file);
  Put(w, "batch_size", o.batch_size);
  Key(w, "shapes");
  w.StartArray();
  for (const std::string& s : o.shapes) String(w, s);
  w.EndArray();
  Put(w, "threads", static_cast<int64_t>(o.threads));
  Put(w, "timeout_ms", static_cast<int64_t>(o.timeout_ms));
  Put(w, "max_connections", static_cast<int64_t>(o.max_connections));
  Key(w, "seed");
  w.Uint64(o.seed);
  w.EndObject();
}

void WriteLevel(JsonWriter& w, const LevelReport& l) {
  w.StartObject();
  Put(w, "concurrency", static_cast<int64_t>(l.concurrency));
  Put(w, "rate", l.rate);
  Put(w, "window_s", l.window_s);
  Put(w, "completed", l.completed);
  Put(w, "errors", l.errors);
  Key(w, "errors_by_kind");
  w.StartObject();
  for (const auto& [kind, n] : l.errors_by_kind) Put(w, kind.c_str(), n);
  w.EndObject();
  Put(w, "throughput_rps", l.throughput_rps);
  Put(w, "throughput_items_per_s", l.throughput_items);
  Key(w, "latency_ms");
  w.StartObject();
  Put(w, "p50", l.latency.p50_ms);
  Put(w, "p90", l.latency.p90_ms);
  Put(w, "p99", l.latency.p99_ms);
  Put(w, "p99_9", l.latency.p999_ms);
  Put(w, "mean", l.latency.mean_ms);
  Put(w, "min", l.latency.min_ms);
  Put(w, "max", l.latency.max_ms);
  w.EndObject();
  Put(w, "connections", l.connections);
  Put(w, "backlog", l.backlog);
  w.EndObject();
}

}  // namespace

void PrintReport(const BenchReport& report, std::ostream& out) {
  const BenchOptions& o = report.options;
  const bool open_loop = o.rate > 0;
  out << "model " << report.model_name << " at " << o.url << " (POST " << report.infer_target
      << "), " << (o.input_file.empty() ? o.payload : "file " + o.input_file) << " request of "
      << Bytes(report.request_bytes) << ", batch " << o.batch_size << "\n"
      << (open_loop ? o.arrival + " arrivals" : std::string("closed loop")) << ", "
      << Fixed(o.duration_s, 1) << " s per level after " << Fixed(o.warmup_s, 1) << " s warm-up, "
      << o.threads << " load thread(s)\n\n";

  std::vector<std::vector<std::string>> rows;
  rows.push_back({open_loop ? "rate" : "concurrency", "requests", "req/s", "items/s", "p50 ms",
                  "p90 ms", "p99 ms", "p99.9 ms", "mean ms"});
  if (open_loop) rows.back().insert(rows.back().end(), {"conns", "backlog"});
  rows.back().push_back("errors");
  for (const LevelReport& l : report.levels) {
    rows.push_back({open_loop ? Fixed(l.rate, 1) : std::to_string(l.concurrency),
                    std::to_string(l.completed), Fixed(l.throughput_rps, 1),
                    Fixed(l.throughput_items, 1), Fixed(l.latency.p50_ms, 2),
                    Fixed(l.latency.p90_ms, 2), Fixed(l.latency.p99_ms, 2),
                    Fixed(l.latency.p999_ms, 2), Fixed(l.latency.mean_ms, 2)});
    if (open_loop) {
      rows.back().insert(rows.back().end(),
                         {std::to_string(l.connections), std::to_string(l.backlog)});
    }
    rows.back().push_back(ErrorsCell(l));
  }
  std::vector<size_t> widths(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      const bool last = i + 1 == row.size();  // errors: left-aligned
      if (i > 0) out << "  ";
      out << (last ? std::left : std::right) << std::setw(last ? 0 : static_cast<int>(widths[i]))
          << row[i];
    }
    out << std::right << "\n";
  }
}

Status WriteReportJson(const BenchReport& report, const std::string& path) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  Put(w, "model", report.model_name);
  Put(w, "infer_target", report.infer_target);
  Put(w, "request_bytes", static_cast<int64_t>(report.request_bytes));
  Put(w, "mode", std::string(report.options.rate > 0 ? "open_loop" : "closed_loop"));
  Key(w, "options");
  WriteOptions(w, report.options);
  Key(w, "levels");
  w.StartArray();
  for (const LevelReport& l : report.levels) WriteLevel(w, l);
  w.EndArray();
  w.EndObject();

  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) {
    return UnavailableError("cannot write " + path + ": " + std::strerror(errno));
  }
  file.write(sb.GetString(), static_cast<std::streamsize>(sb.GetSize()));
  file << "\n";
  file.close();
  if (!file) return UnavailableError("cannot write " + path + ": " + std::strerror(errno));
  return Status::OK();
}

}  // namespace inferd::bench
