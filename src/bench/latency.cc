#include "bench/latency.h"

#include <algorithm>
#include <cmath>

namespace inferd::bench {
namespace {

double ToMs(double nanos) { return nanos / 1e6; }

}  // namespace

int64_t PercentileOfSorted(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double n = static_cast<double>(sorted.size());
  p = std::clamp(p, 0.0, 100.0);
  // The small slack keeps e.g. 99.9% of 1000 at rank 999 despite rounding.
  const double rank = std::ceil(p / 100.0 * n - 1e-9);
  const size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

LatencySummary SummarizeLatencies(std::vector<int64_t>& nanos) {
  LatencySummary s;
  if (nanos.empty()) return s;
  std::sort(nanos.begin(), nanos.end());
  long double sum = 0;
  for (int64_t v : nanos) sum += v;
  s.count = static_cast<int64_t>(nanos.size());
  s.mean_ms = ToMs(static_cast<double>(sum / nanos.size()));
  s.min_ms = ToMs(static_cast<double>(nanos.front()));
  s.max_ms = ToMs(static_cast<double>(nanos.back()));
  s.p50_ms = ToMs(static_cast<double>(PercentileOfSorted(nanos, 50)));
  s.p90_ms = ToMs(static_cast<double>(PercentileOfSorted(nanos, 90)));
  s.p99_ms = ToMs(static_cast<double>(PercentileOfSorted(nanos, 99)));
  s.p999_ms = ToMs(static_cast<double>(PercentileOfSorted(nanos, 99.9)));
  return s;
}

}  // namespace inferd::bench
