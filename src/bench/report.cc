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
#include "bench/mix.h"

namespace inferd::bench {
namespace {

using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

bool IsOpenLoop(const BenchOptions& o) { return o.rate > 0 || !o.mix.empty(); }

std::string Fixed(double v, int precision) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v;
  return s.str();
}

std::string ErrorsCell(int64_t errors, const std::map<std::string, int64_t>& by_kind) {
  std::string cell = std::to_string(errors);
  if (by_kind.empty()) return cell;
  cell += " (";
  bool first = true;
  for (const auto& [kind, n] : by_kind) {
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
  Key(w, "api_key_set");  // never the key itself
  w.Bool(!o.api_key.empty());
  Put(w, "priority", static_cast<int64_t>(o.priority));
  Key(w, "header_names");  // values may be secrets
  w.StartArray();
  for (const std::string& text : o.headers) {
    StatusOr<Header> h = ParseHeader(text);
    if (h.ok()) String(w, h->name);
  }
  w.EndArray();
  StatusOr<std::vector<MixClass>> mix = ParseMix(o.mix);
  Put(w, "mix", mix.ok() ? RedactedMix(*mix) : std::string());
  w.EndObject();
}

void WriteErrorsByKind(JsonWriter& w, const std::map<std::string, int64_t>& by_kind) {
  Key(w, "errors_by_kind");
  w.StartObject();
  for (const auto& [kind, n] : by_kind) Put(w, kind.c_str(), n);
  w.EndObject();
}

void WriteLatency(JsonWriter& w, const LatencySummary& latency) {
  Key(w, "latency_ms");
  w.StartObject();
  Put(w, "p50", latency.p50_ms);
  Put(w, "p90", latency.p90_ms);
  Put(w, "p99", latency.p99_ms);
  Put(w, "p99_9", latency.p999_ms);
  Put(w, "mean", latency.mean_ms);
  Put(w, "min", latency.min_ms);
  Put(w, "max", latency.max_ms);
  w.EndObject();
}

void WriteClass(JsonWriter& w, const ClassReport& c) {
  w.StartObject();
  Put(w, "name", c.name);
  Put(w, "rate", c.rate);
  Put(w, "priority", static_cast<int64_t>(c.priority));
  Put(w, "slo_ms", c.slo_ms);
  Put(w, "sent", c.sent);
  Put(w, "completed", c.completed);
  Put(w, "errors", c.errors);
  WriteErrorsByKind(w, c.errors_by_kind);
  Put(w, "throughput_rps", c.throughput_rps);
  Put(w, "goodput_rps", c.goodput_rps);
  Put(w, "served_fraction", c.served_fraction);
  WriteLatency(w, c.latency);
  Put(w, "connections", c.connections);
  Put(w, "backlog", c.backlog);
  w.EndObject();
}

void WriteLevel(JsonWriter& w, const LevelReport& l) {
  w.StartObject();
  Put(w, "concurrency", static_cast<int64_t>(l.concurrency));
  Put(w, "rate", l.rate);
  Put(w, "window_s", l.window_s);
  Put(w, "completed", l.completed);
  Put(w, "errors", l.errors);
  WriteErrorsByKind(w, l.errors_by_kind);
  Put(w, "throughput_rps", l.throughput_rps);
  Put(w, "throughput_items_per_s", l.throughput_items);
  WriteLatency(w, l.latency);
  Put(w, "connections", l.connections);
  Put(w, "backlog", l.backlog);
  Key(w, "classes");
  w.StartArray();
  for (const ClassReport& c : l.classes) WriteClass(w, c);
  w.EndArray();
  w.EndObject();
}

// Prints `rows` (the first is the heading) right-aligned in columns, the
// last column (errors) and, when `names_first`, the first left-aligned.
void PrintTable(const std::vector<std::vector<std::string>>& rows, bool names_first,
                std::ostream& out) {
  std::vector<size_t> widths(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      const bool last = i + 1 == row.size();
      const bool left = last || (names_first && i == 0);
      if (i > 0) out << "  ";
      out << (left ? std::left : std::right) << std::setw(last ? 0 : static_cast<int>(widths[i]))
          << row[i];
    }
    out << std::right << "\n";
  }
}

// The classes of a --mix level, one row each.
void PrintClasses(const LevelReport& l, std::ostream& out) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"class", "prio", "rate", "sent", "requests", "req/s", "slo ms", "goodput/s",
                  "served", "p50 ms", "p99 ms", "conns", "backlog", "errors"});
  for (const ClassReport& c : l.classes) {
    rows.push_back({c.name, c.priority > 0 ? std::to_string(c.priority) : "-", Fixed(c.rate, 1),
                    std::to_string(c.sent), std::to_string(c.completed), Fixed(c.throughput_rps, 1),
                    c.slo_ms > 0 ? Fixed(c.slo_ms, 0) : "-", Fixed(c.goodput_rps, 1),
                    Fixed(100 * c.served_fraction, 1) + "%", Fixed(c.latency.p50_ms, 2),
                    Fixed(c.latency.p99_ms, 2), std::to_string(c.connections),
                    std::to_string(c.backlog), ErrorsCell(c.errors, c.errors_by_kind)});
  }
  out << "\n";
  PrintTable(rows, /*names_first=*/true, out);
}

}  // namespace

void PrintReport(const BenchReport& report, std::ostream& out) {
  const BenchOptions& o = report.options;
  const bool open_loop = IsOpenLoop(o);
  out << "model " << report.model_name << " at " << o.url << " (POST " << report.infer_target
      << "), " << (o.input_file.empty() ? o.payload : "file " + o.input_file) << " request of "
      << Bytes(report.request_bytes) << ", batch " << o.batch_size << "\n"
      << (open_loop ? o.arrival + " arrivals" : std::string("closed loop")) << ", "
      << Fixed(o.duration_s, 1) << " s per level after " << Fixed(o.warmup_s, 1) << " s warm-up, "
      << o.threads << " load thread(s)" << (o.mix.empty() ? "" : ", classes from --mix") << "\n\n";

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
    rows.back().push_back(ErrorsCell(l.errors, l.errors_by_kind));
  }
  PrintTable(rows, /*names_first=*/false, out);
  for (const LevelReport& l : report.levels) {
    if (!l.classes.empty()) PrintClasses(l, out);
  }
}

Status WriteReportJson(const BenchReport& report, const std::string& path) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  Put(w, "model", report.model_name);
  Put(w, "infer_target", report.infer_target);
  Put(w, "request_bytes", static_cast<int64_t>(report.request_bytes));
  Put(w, "mode", std::string(IsOpenLoop(report.options) ? "open_loop" : "closed_loop"));
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
