#pragma once
// Latency statistics for the load generator: exact percentiles over the
// recorded samples (nearest-rank method), plus mean, min and max.

#include <cstdint>
#include <vector>

namespace inferd::bench {

// Summary of a set of latency samples, in milliseconds. All zero when empty.
struct LatencySummary {
  int64_t count = 0;
  double mean_ms = 0;
  double min_ms = 0;
  double max_ms = 0;
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double p999_ms = 0;
};

// Nearest-rank percentile of ascending `sorted`: the smallest sample such
// that at least `p` percent of the samples are <= it. `p` in [0, 100]; p == 0
// gives the minimum. Returns 0 for an empty input.
int64_t PercentileOfSorted(const std::vector<int64_t>& sorted, double p);

// Sorts `nanos` (latencies in nanoseconds) in place and summarizes them.
LatencySummary SummarizeLatencies(std::vector<int64_t>& nanos);

}  // namespace inferd::bench
