// Hit-ratio simulator (issue 3, item 8b): replays synthetic traces through
// the serving eviction policy (S3FifoPolicy, the very class MemoryCache uses)
// and through LruPolicy, at cache sizes of 1%, 5% and 10% of the distinct
// keys of each trace, and prints a Markdown table.
//
// Workloads (deterministic for a given --seed):
//   zipf-0.8        Zipf(0.8) over --keys keys
//   zipf-1.0        Zipf(1.0) over --keys keys
//   zipf-1.0+scans  Zipf(1.0), with every fifth block of --scan-length
//                   requests replaced by a scan of never-repeated keys
//                   (20% of requests are one-off keys)
// Every object has size 1, so the capacity is in entries and the hit ratio
// is by count; it is measured over the whole trace (cold start included).
//
//   hit_ratio_sim [--requests N] [--keys N] [--seed S] [--scan-length N]
//                 [--small-fraction F] [--ghost-fraction F]
//                 [--promote-threshold N] [--json FILE]
//
// Exit status: 0 when S3-FIFO beats LRU on every row, 2 otherwise.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/eviction.h"

namespace inferd {
namespace {

struct Config {
  size_t requests = 2'000'000;
  size_t keys = 200'000;
  uint64_t seed = 42;
  size_t scan_length = 2000;
  S3FifoPolicy::Options s3fifo;  // capacity set per row
  std::string json;
};

uint64_t Mix(uint64_t x) {  // splitmix64 finalizer: rank -> key id
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Samples ranks 0..n-1 with P(r) proportional to 1 / (r + 1)^alpha.
class ZipfSampler {
 public:
  ZipfSampler(size_t n, double alpha) : cdf_(n) {
    double sum = 0;
    for (size_t r = 0; r < n; ++r) cdf_[r] = (sum += std::pow(static_cast<double>(r + 1), -alpha));
    for (double& c : cdf_) c /= sum;
  }
  template <typename Rng>
  size_t operator()(Rng& rng) {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return std::min<size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin(),
                            cdf_.size() - 1);
  }

 private:
  std::vector<double> cdf_;
};

struct Trace {
  std::string name;
  std::vector<uint64_t> ids;
  size_t distinct = 0;
};

Trace MakeTrace(const Config& c, double alpha, bool scans) {
  Trace t;
  t.name = "zipf-" + std::string(alpha == 1.0 ? "1.0" : "0.8") + (scans ? "+scans" : "");
  ZipfSampler zipf(c.keys, alpha);
  std::mt19937_64 rng(c.seed ^ static_cast<uint64_t>(alpha * 1000) ^ (scans ? 0x5CA9 : 0));
  t.ids.reserve(c.requests);
  uint64_t next_scan_id = 0;
  const uint64_t scan_tag = 1ull << 63;  // scan ids never equal a Zipf id's Mix
  for (size_t i = 0; i < c.requests; ++i) {
    bool in_scan = scans && (i / c.scan_length) % 5 == 4;
    t.ids.push_back(in_scan ? (scan_tag | next_scan_id++) : (Mix(zipf(rng)) & ~scan_tag));
  }
  std::vector<uint64_t> sorted = t.ids;
  std::sort(sorted.begin(), sorted.end());
  t.distinct = static_cast<size_t>(std::unique(sorted.begin(), sorted.end()) - sorted.begin());
  return t;
}

// Replays `trace` through `policy` with room for `capacity` unit-size
// entries; returns the hit ratio.
template <EvictionPolicy Policy>
double Replay(const std::vector<uint64_t>& trace, size_t capacity, Policy& policy) {
  std::unordered_map<uint64_t, EvictionNode> resident;
  resident.reserve(capacity * 2);
  uint64_t hits = 0;
  for (uint64_t id : trace) {
    auto it = resident.find(id);
    if (it != resident.end()) {
      policy.OnHit(&it->second);
      ++hits;
      continue;
    }
    while (policy.size() >= capacity) {
      EvictionNode* victim = policy.EvictOne();
      resident.erase(victim->id);
    }
    EvictionNode& n = resident.try_emplace(id).first->second;
    n.id = id;
    n.charge = 1;
    policy.Insert(&n);
  }
  return static_cast<double>(hits) / static_cast<double>(trace.size());
}

struct Row {
  std::string workload;
  double fraction;
  size_t capacity;
  size_t distinct;
  double lru;
  double s3fifo;
};

bool ParseArgs(int argc, char** argv, Config* c) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--help" || a == "-h") return false;
    if ((v = value()) == nullptr) return false;
    if (a == "--requests") {
      c->requests = std::strtoull(v, nullptr, 10);
    } else if (a == "--keys") {
      c->keys = std::strtoull(v, nullptr, 10);
    } else if (a == "--seed") {
      c->seed = std::strtoull(v, nullptr, 10);
    } else if (a == "--scan-length") {
      c->scan_length = std::strtoull(v, nullptr, 10);
    } else if (a == "--small-fraction") {
      c->s3fifo.small_fraction = std::strtod(v, nullptr);
    } else if (a == "--ghost-fraction") {
      c->s3fifo.ghost_fraction = std::strtod(v, nullptr);
    } else if (a == "--promote-threshold") {
      c->s3fifo.promote_threshold = static_cast<uint8_t>(std::strtoul(v, nullptr, 10));
    } else if (a == "--json") {
      c->json = v;
    } else {
      return false;
    }
  }
  return c->requests > 0 && c->keys > 0 && c->scan_length > 0 && c->s3fifo.promote_threshold >= 1;
}

void WriteJson(const Config& c, const std::vector<Row>& rows) {
  std::ofstream out(c.json);
  out << "{\n  \"requests\": " << c.requests << ",\n  \"keys\": " << c.keys
      << ",\n  \"seed\": " << c.seed << ",\n  \"scan_length\": " << c.scan_length
      << ",\n  \"small_fraction\": " << c.s3fifo.small_fraction
      << ",\n  \"ghost_fraction\": " << c.s3fifo.ghost_fraction
      << ",\n  \"promote_threshold\": " << int{c.s3fifo.promote_threshold} << ",\n  \"rows\": [\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    out << "    {\"workload\": \"" << r.workload << "\", \"size_fraction\": " << r.fraction
        << ", \"capacity\": " << r.capacity << ", \"distinct_keys\": " << r.distinct
        << ", \"lru_hit_ratio\": " << r.lru << ", \"s3fifo_hit_ratio\": " << r.s3fifo << "}"
        << (i + 1 < rows.size() ? ",\n" : "\n");
  }
  out << "  ]\n}\n";
}

int Main(int argc, char** argv) {
  Config c;
  if (!ParseArgs(argc, argv, &c)) {
    std::fprintf(stderr,
                 "usage: hit_ratio_sim [--requests N] [--keys N] [--seed S] [--scan-length N]\n"
                 "  [--small-fraction F] [--ghost-fraction F] [--promote-threshold N]"
                 " [--json FILE]\n");
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  std::vector<Row> rows;
  const struct {
    double alpha;
    bool scans;
  } workloads[] = {{0.8, false}, {1.0, false}, {1.0, true}};
  for (const auto& w : workloads) {
    Trace t = MakeTrace(c, w.alpha, w.scans);
    for (double fraction : {0.01, 0.05, 0.10}) {
      size_t capacity = std::max<size_t>(10, static_cast<size_t>(fraction * t.distinct));
      LruPolicy lru;
      S3FifoPolicy::Options o = c.s3fifo;
      o.capacity = capacity;
      S3FifoPolicy s3(o);
      rows.push_back({t.name, fraction, capacity, t.distinct, Replay(t.ids, capacity, lru),
                      Replay(t.ids, capacity, s3)});
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::printf(
      "Requests per trace: %zu, Zipf keys: %zu, seed %llu; S3-FIFO small %.2f, ghost "
      "%.2f, promote at freq >= %d; %.1f s\n\n",
      c.requests, c.keys, static_cast<unsigned long long>(c.seed), c.s3fifo.small_fraction,
      c.s3fifo.ghost_fraction, int{c.s3fifo.promote_threshold}, seconds);
  std::printf(
      "| workload | size (%% of distinct keys) | entries | LRU hit ratio | S3-FIFO hit "
      "ratio | difference |\n|---|---:|---:|---:|---:|---:|\n");
  bool all_better = true;
  for (const Row& r : rows) {
    all_better = all_better && r.s3fifo > r.lru;
    std::printf("| %s | %.0f%% | %zu | %.2f%% | %.2f%% | %+.2f pp |\n", r.workload.c_str(),
                r.fraction * 100, r.capacity, r.lru * 100, r.s3fifo * 100,
                (r.s3fifo - r.lru) * 100);
  }
  std::printf("\nS3-FIFO beats LRU on every row: %s\n", all_better ? "yes" : "NO");
  if (!c.json.empty()) WriteJson(c, rows);
  return all_better ? 0 : 2;
}

}  // namespace
}  // namespace inferd

int main(int argc, char** argv) { return inferd::Main(argc, argv); }
