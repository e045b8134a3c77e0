// Hit-ratio simulator (issue 3, item 8b; issue 8, item 2): replays a
// trace through LRU, through the real MemoryCache (what inferd serves),
// through the old S3-FIFO policy on its own and through OPT, at cache sizes
// given as fractions of the trace's distinct keys, and prints a Markdown
// table of miss ratios per trace.
//
//   hit_ratio_sim [--trace FILE --format oracle|be64|be32] [--name NAME]
//                 [--sizes 0.001,0.01,0.05,0.1] [--shards N] [--memo]
//                 [--bytes] [--check-libcachesim] [--json FILE]
//                 [--requests N] [--keys N] [--seed S] [--scan-length N]
//
// Without --trace: the synthetic workloads zipf-0.8, zipf-1.0 and
// zipf-1.0+scans (bench/trace_reader.h; --requests, --keys, --seed and
// --scan-length shape them). Unit mode (default): every object has the same
// size and a row's capacity is C = round(fraction × distinct keys) entries;
// rows with C < 64 are computed but excepted (†). --bytes (oracle traces):
// sizes are bytes and the capacity is fraction × the bytes of the distinct
// objects. --memo adds the column "inferd+memo": MemoryCache with the
// exact-repeat memo sharing its budget. --check-libcachesim: compare our
// byte-mode LRU, S3-FIFO and OPT with libCacheSim's published numbers for
// cloudPhysicsIO (nothing else runs). The contenders: bench/replay.h.
//
// Exit status: 0 on success (the ratios pass or fail in the docs, not
// here); 1 on a usage or I/O error, or when --check-libcachesim finds that
// LRU does not match libCacheSim exactly.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "cache/eviction.h"
#include "cache/memory_cache.h"
#include "libcachesim_check.h"
#include "replay.h"
#include "trace_reader.h"

namespace inferd {
namespace {

struct Config {
  std::string trace_path;
  std::string format_name;
  TraceFormat format = TraceFormat::kOracle;
  std::string name;
  std::vector<double> sizes = {0.001, 0.01, 0.05, 0.1};
  int shards = 16;
  uint64_t cache_seed = 42;  // MemoryCache::Options::seed
  bool memo = false;
  bool memo_plain = false;         // the memo's copy stored with Put (before PutCopy)
  std::string variant = "served";  // --variant: the inferd column's policy tuning
  double copy_share = -1;          // --copy-share: MemoryCache::Options::copy_share (< 0: default)
  MemoryCache::Options::PolicyTuning tuning;
  bool bytes = false;
  bool check = false;
  std::string json;
  ZipfSpec zipf;
};

constexpr uint64_t kMinEntries = 64;  // smaller caches are excepted by the goal

// "S3-FIFO (old)": S3FifoPolicy as it served before issue 8 (its defaults
// then, spelled out so a change of defaults cannot move this column).
S3FifoPolicy::Options OldS3Fifo() {
  S3FifoPolicy::Options o;
  o.small_fraction = 0.1;
  o.ghost_fraction = 1.0;
  o.promote_threshold = 1;
  return o;
}

struct Row {
  std::string trace;
  double fraction = 0;
  uint64_t capacity = 0;  // entries, or bytes in bytes mode
  uint64_t entries = 0;   // capacity in entries (bytes mode: / mean object size)
  bool excepted = false;
  size_t distinct = 0;
  size_t requests = 0;
  uint64_t requested_bytes = 0;  // = requests in unit mode
  Misses lru, s3fifo, opt;
  std::optional<Misses> inferd, memo;  // empty when MemoryCache refused the budget
};

std::string Ratio(std::optional<Misses> m, uint64_t total, bool bytes) {
  if (!m) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4f",
                static_cast<double>(bytes ? m->bytes : m->count) / static_cast<double>(total));
  return buf;
}

// (inferd - lru) / lru, by count or by bytes; nullopt when undefined.
std::optional<double> Relative(const Row& r, bool bytes) {
  if (!r.inferd) return std::nullopt;
  const double lru = static_cast<double>(bytes ? r.lru.bytes : r.lru.count);
  const double inferd = static_cast<double>(bytes ? r.inferd->bytes : r.inferd->count);
  if (lru == 0) return std::nullopt;
  return (inferd - lru) / lru;
}

std::string SizeLabel(const Row& r) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g%%%s", r.fraction * 100, r.excepted ? "†" : "");
  return buf;
}

// The summary line over the non-excepted rows: the worst (largest) excess
// of inferd's miss ratio over LRU's, and the median reduction.
void PrintSummary(const std::vector<Row>& rows, bool bytes, const char* what) {
  std::vector<double> rel;
  const Row* worst = nullptr;
  for (const Row& r : rows) {
    auto v = Relative(r, bytes);
    if (r.excepted || !v) continue;
    rel.push_back(*v);
    if (worst == nullptr || *v > *Relative(*worst, bytes)) worst = &r;
  }
  if (rel.empty()) {
    std::printf("\ninferd vs LRU (%s): no non-excepted rows.\n", what);
    return;
  }
  std::sort(rel.begin(), rel.end());
  const size_t n = rel.size();
  const double median = n % 2 ? rel[n / 2] : (rel[n / 2 - 1] + rel[n / 2]) / 2;
  std::printf(
      "\ninferd vs LRU (%s), %zu non-excepted rows: worst excess %+.2f%% (%s at %g%%), median "
      "reduction %.2f%%.\n",
      what, n, *Relative(*worst, bytes) * 100, worst->trace.c_str(), worst->fraction * 100,
      -median * 100);
}

void PrintTable(const std::vector<Row>& rows, const Config& c, bool bytes) {
  std::printf("| size | %s | LRU | inferd |%s S3-FIFO (old) | OPT | inferd vs LRU |\n",
              c.bytes ? "capacity (~entries)" : "entries", c.memo ? " inferd+memo |" : "");
  std::printf("|---:|---:|---:|---:|%s---:|---:|---:|\n", c.memo ? "---:|" : "");
  for (const Row& r : rows) {
    const uint64_t total = bytes ? r.requested_bytes : r.requests;
    char cap[64];
    if (c.bytes) {
      std::snprintf(cap, sizeof(cap), "%.1f MiB (%llu)", static_cast<double>(r.capacity) / 1048576,
                    static_cast<unsigned long long>(r.entries));
    } else {
      std::snprintf(cap, sizeof(cap), "%llu", static_cast<unsigned long long>(r.capacity));
    }
    auto rel = Relative(r, bytes);
    char change[32] = "n/a";
    if (rel) std::snprintf(change, sizeof(change), "%+.2f%%", *rel * 100);
    std::string memo;
    if (c.memo) memo.append(" ").append(Ratio(r.memo, total, bytes)).append(" |");
    std::printf("| %s | %s | %s | %s |%s %s | %s | %s |\n", SizeLabel(r).c_str(), cap,
                Ratio(r.lru, total, bytes).c_str(), Ratio(r.inferd, total, bytes).c_str(),
                memo.c_str(), Ratio(r.s3fifo, total, bytes).c_str(),
                Ratio(r.opt, total, bytes).c_str(), change);
  }
  bool any_excepted = false;
  for (const Row& r : rows) any_excepted = any_excepted || r.excepted;
  if (any_excepted) {
    std::printf("\n† excepted: fewer than %llu entries%s (computed, but the goal excepts them).\n",
                static_cast<unsigned long long>(kMinEntries),
                c.bytes ? " of the mean object size" : "");
  }
}

std::vector<Row> RunTrace(const Trace& t, const Config& c) {
  auto start = std::chrono::steady_clock::now();
  std::vector<Row> rows;
  const uint64_t total = c.bytes ? t.distinct_bytes : t.distinct();
  const double mean_size =
      c.bytes ? static_cast<double>(t.distinct_bytes) / static_cast<double>(t.distinct()) : 1.0;
  for (double fraction : c.sizes) {
    Row r;
    r.trace = t.name;
    r.fraction = fraction;
    r.capacity = std::max<uint64_t>(1, std::llround(fraction * static_cast<double>(total)));
    r.entries = static_cast<uint64_t>(std::llround(static_cast<double>(r.capacity) / mean_size));
    r.excepted = r.entries < kMinEntries;
    r.distinct = t.distinct();
    r.requests = t.requests();
    r.requested_bytes = c.bytes ? t.requested_bytes : t.requests();
    r.lru = ReplayLru(t, r.capacity, c.bytes);
    r.s3fifo = ReplayS3Fifo(t, r.capacity, c.bytes, OldS3Fifo());
    r.opt = ReplayOpt(t, r.capacity, c.bytes);
    InferdSetup setup{r.capacity,   c.bytes,      c.shards, false,
                      c.cache_seed, c.memo_plain, c.tuning, c.copy_share};
    for (bool memo : {false, true}) {
      if (memo && !c.memo) break;
      setup.memo = memo;
      StatusOr<Misses> m = ReplayInferd(t, setup);
      if (!m.ok()) {
        std::fprintf(stderr, "%s at %g: inferd%s: %s\n", t.name.c_str(), fraction,
                     memo ? "+memo" : "", m.status().ToString().c_str());
        continue;
      }
      (memo ? r.memo : r.inferd) = *m;
    }
    rows.push_back(std::move(r));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::printf("\n### %s\n\n%zu requests, %zu distinct keys; ", t.name.c_str(), t.requests(),
              t.distinct());
  if (c.bytes) {
    std::printf(
        "bytes mode: %llu requested bytes, %llu distinct bytes; capacity = size × distinct "
        "bytes. inferd: MemoryCache with max_bytes = capacity, so its per-entry overhead "
        "(kEntryOverhead = %zu bytes, plus the entry's fields) is charged inside the budget; ",
        static_cast<unsigned long long>(t.requested_bytes),
        static_cast<unsigned long long>(t.distinct_bytes), MemoryCache::kEntryOverhead);
  } else {
    std::printf(
        "unit size: capacity = size × distinct keys entries; inferd: MemoryCache with "
        "max_bytes = entries × %zu (one entry's charge); ",
        UnitEntryCharge());
  }
  const std::string variant =
      c.variant == "served" ? "" : "; inferd: policy variant `" + c.variant + "`";
  std::printf("Options.shards = %d%s%s; cold start, all requests counted; %.1f s.\n\n", c.shards,
              variant.c_str(),
              !c.memo ? ""
              : c.memo_plain
                  ? "; inferd+memo: the exact-repeat memo shares the L1 budget, its copies"
                    " stored with a plain Put (as before PutCopy)"
                  : "; inferd+memo: the exact-repeat memo shares the L1 budget",
              seconds);
  if (c.bytes) std::printf("Object miss ratio:\n\n");
  PrintTable(rows, c, false);
  PrintSummary(rows, false, c.bytes ? "objects" : "miss ratio");
  if (c.bytes) {
    std::printf("\nByte miss ratio (missed bytes / requested bytes):\n\n");
    PrintTable(rows, c, true);
    PrintSummary(rows, true, "bytes");
  }
  std::fflush(stdout);
  return rows;
}

void JsonMisses(std::ostream& out, const char* name, std::optional<Misses> m, const Row& r) {
  out << ", \"" << name << "\": ";
  if (!m) {
    out << "null";
    return;
  }
  out << "{\"misses\": " << m->count
      << ", \"miss_ratio\": " << static_cast<double>(m->count) / static_cast<double>(r.requests)
      << ", \"miss_bytes\": " << m->bytes << ", \"byte_miss_ratio\": "
      << static_cast<double>(m->bytes) / static_cast<double>(r.requested_bytes) << "}";
}

bool WriteJson(const Config& c, const std::vector<Row>& rows, const std::string& check) {
  std::ofstream out(c.json);
  out.precision(6);
  out << "{\n  \"mode\": \"" << (c.bytes || c.check ? "bytes" : "unit")
      << "\",\n  \"shards\": " << c.shards << ",\n  \"memo\": " << (c.memo ? "true" : "false")
      << ",\n  \"memo_plain\": " << (c.memo_plain ? "true" : "false") << ",\n  \"variant\": \""
      << c.variant << "\""
      << ",\n  \"unit_entry_charge\": " << UnitEntryCharge()
      << ",\n  \"entry_overhead\": " << MemoryCache::kEntryOverhead << ",\n  \"rows\": [\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    out << "    {\"trace\": \"" << r.trace << "\", \"fraction\": " << r.fraction
        << ", \"capacity\": " << r.capacity << ", \"capacity_unit\": \""
        << (c.bytes ? "bytes" : "entries") << "\", \"entries\": " << r.entries
        << ", \"excepted\": " << (r.excepted ? "true" : "false") << ", \"distinct\": " << r.distinct
        << ", \"requests\": " << r.requests << ", \"requested_bytes\": " << r.requested_bytes;
    JsonMisses(out, "lru", r.lru, r);
    JsonMisses(out, "inferd", r.inferd, r);
    if (c.memo) JsonMisses(out, "inferd_memo", r.memo, r);
    JsonMisses(out, "s3fifo_old", r.s3fifo, r);
    JsonMisses(out, "opt", r.opt, r);
    out << "}" << (i + 1 < rows.size() ? ",\n" : "\n");
  }
  out << "  ]" << (check.empty() ? "" : ",\n  \"libcachesim_check\": [\n" + check + "  ]")
      << "\n}\n";
  out.close();
  if (!out) std::fprintf(stderr, "%s: cannot write\n", c.json.c_str());
  return static_cast<bool>(out);
}

// ---- --check-libcachesim (libcachesim_check.cc) -------------------------

int RunLibCacheSimCheck(const Trace& t, const Config& c) {
  std::string records;
  const bool match = CheckLibCacheSim(t, OldS3Fifo(), &records);
  if (!c.json.empty() && !WriteJson(c, {}, records)) return 1;
  return match ? 0 : 1;
}

// ---- arguments ------------------------------------------------------------

bool ParseSizes(const std::string& text, std::vector<double>* sizes) {
  sizes->clear();
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    double f = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(f > 0 && f <= 1)) return false;
    sizes->push_back(f);
  }
  return !sizes->empty();
}

// The served policy and the alternatives it was chosen against.
bool ParseVariant(const std::string& name, MemoryCache::Options::PolicyTuning* t) {
  *t = {};
  if (name == "served") return true;
  if (name == "static-window") {  // no adaptation: the window stays at 1%
    t->adaptive_window = false;
  } else if (name == "caffeine-sketch") {  // plain count-min, halved every 10 x ids
    t->conservative_sketch = false;
    t->sketch_sample_per_id = 10;
  } else if (name == "arc-ghosts") {  // ghost lists as large as the cache, as in ARC
    t->ghost_fraction = 1.0;
  } else {
    return false;
  }
  return true;
}

bool ParseArgs(int argc, char** argv, Config* c) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--memo-plain") {
      c->memo = c->memo_plain = true;
      continue;
    }
    if (a == "--memo") {
      c->memo = true;
      continue;
    }
    if (a == "--bytes") {
      c->bytes = true;
      continue;
    }
    if (a == "--check-libcachesim") {
      c->check = true;
      continue;
    }
    if (a == "--help" || a == "-h" || i + 1 >= argc) return false;
    const std::string v = argv[++i];
    auto number = [&](auto* out) {
      char* end = nullptr;
      unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(n);
      return !v.empty() && *end == '\0';
    };
    bool ok = true;
    if (a == "--trace") {
      c->trace_path = v;
    } else if (a == "--format") {
      c->format_name = v;
      ok = ParseTraceFormat(v, &c->format);
    } else if (a == "--name") {
      c->name = v;
    } else if (a == "--sizes") {
      ok = ParseSizes(v, &c->sizes);
    } else if (a == "--shards") {
      ok = number(&c->shards) && c->shards >= 1 && c->shards <= 1024;
    } else if (a == "--json") {
      c->json = v;
    } else if (a == "--requests") {
      ok = number(&c->zipf.requests) && c->zipf.requests > 0;
    } else if (a == "--keys") {
      ok = number(&c->zipf.keys) && c->zipf.keys > 0;
    } else if (a == "--seed") {
      ok = number(&c->zipf.seed);
    } else if (a == "--copy-share") {
      char* end = nullptr;
      c->copy_share = std::strtod(v.c_str(), &end);
      ok = !v.empty() && *end == '\0' && c->copy_share >= 0 && c->copy_share <= 1;
    } else if (a == "--variant") {
      c->variant = v;
      ok = ParseVariant(v, &c->tuning);
    } else if (a == "--cache-seed") {
      ok = number(&c->cache_seed) && c->cache_seed != 0;
    } else if (a == "--scan-length") {
      ok = number(&c->zipf.scan_length) && c->zipf.scan_length > 0;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad argument: %s %s\n", a.c_str(), v.c_str());
      return false;
    }
  }
  if (c->trace_path.empty() != c->format_name.empty()) {
    std::fprintf(stderr, "--trace and --format go together\n");
    return false;
  }
  const bool oracle = !c->trace_path.empty() && c->format == TraceFormat::kOracle;
  if ((c->bytes || c->check) && !oracle) {
    std::fprintf(stderr, "--bytes and --check-libcachesim need an oracle trace (sizes)\n");
    return false;
  }
  return true;
}

int Main(int argc, char** argv) {
  Config c;
  if (!ParseArgs(argc, argv, &c)) {
    std::fprintf(stderr,
                 "usage: hit_ratio_sim [--trace FILE --format oracle|be64|be32] [--name NAME]\n"
                 "  [--sizes 0.001,0.01,0.05,0.1] [--shards N] [--memo] [--bytes]\n"
                 "  [--memo-plain] [--check-libcachesim] [--cache-seed N] [--json FILE]\n"
                 "  [--variant served|static-window|caffeine-sketch|arc-ghosts] [--copy-share F]\n"
                 "  synthetic (no --trace): [--requests N] [--keys N] [--seed S]"
                 " [--scan-length N]\n");
    return 1;
  }
  std::vector<Trace> traces;
  if (c.trace_path.empty()) {
    for (auto [alpha, scans] : {std::pair{0.8, false}, {1.0, false}, {1.0, true}}) {
      traces.push_back(MakeZipfTrace(c.zipf, alpha, scans));
    }
  } else {
    std::string name = c.name;
    if (name.empty()) name = c.trace_path.substr(c.trace_path.find_last_of('/') + 1);
    StatusOr<Trace> t = LoadTrace(c.trace_path, c.format, name);
    if (!t.ok()) {
      std::fprintf(stderr, "%s\n", t.status().message().c_str());
      return 1;
    }
    traces.push_back(std::move(t).value());
  }
  if (c.check) return RunLibCacheSimCheck(traces[0], c);

  std::vector<Row> all;
  for (const Trace& t : traces) {
    std::vector<Row> rows = RunTrace(t, c);
    all.insert(all.end(), rows.begin(), rows.end());
  }
  if (traces.size() > 1) PrintSummary(all, false, "all traces of this run");
  if (!c.json.empty() && !WriteJson(c, all, "")) return 1;
  return 0;
}

}  // namespace
}  // namespace inferd

int main(int argc, char** argv) { return inferd::Main(argc, argv); }
