#pragma once
// Request traces for the hit-ratio simulator (bench/hit_ratio_sim.cc):
// readers for recorded traces, the synthetic Zipf generator, and the
// backward pass that gives every request the index of its key's next
// request (what OPT needs).
//
// Formats (files already decompressed; each read whole into memory):
//   oracle  libCacheSim oracleGeneral: packed little-endian records of 24
//           bytes {uint32 timestamp, uint64 object id, uint32 object size,
//           int64 next access vtime}. The next-access field (1-based request
//           index, -1 = never) is only cross-checked against our own pass.
//   be64    a stream of big-endian int64 keys (Caffeine's scarab format)
//   be32    a stream of big-endian int32 keys (Caffeine's cache2k format)
//
// Keys are renumbered densely (0..distinct-1, in order of first request),
// so replays index plain arrays instead of hash tables.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace inferd {

enum class TraceFormat { kOracle, kBe64, kBe32 };

// Parses "oracle", "be64" or "be32"; false for anything else.
bool ParseTraceFormat(std::string_view text, TraceFormat* format);

// "Never requested again", in Trace::next.
inline constexpr uint32_t kNever = UINT32_MAX;

struct Trace {
  std::string name;
  std::vector<uint32_t> keys;    // per request: dense key
  std::vector<uint32_t> next;    // per request: index of the key's next request, or kNever
  std::vector<uint64_t> ids;     // per dense key: the id in the trace
  std::vector<uint32_t> sizes;   // per dense key: bytes (last appearance); empty: no sizes
  uint64_t distinct_bytes = 0;   // sum of sizes over distinct keys (0 without sizes)
  uint64_t requested_bytes = 0;  // sum of the sizes of all requests (0 without sizes)

  size_t requests() const { return keys.size(); }
  size_t distinct() const { return ids.size(); }
  bool has_sizes() const { return !sizes.empty(); }
  // Object size of a key: its size in the trace, or 1 when `bytes` is false.
  uint64_t SizeOf(uint32_t key, bool bytes) const { return bytes ? sizes[key] : 1; }
};

// Reads a whole trace file. Fails (with a message naming the file) when it
// cannot be read, is empty, or its size is not a multiple of the record size.
StatusOr<Trace> LoadTrace(const std::string& path, TraceFormat format, std::string name);

// The synthetic workloads kept from the first simulator (issue 3, item 8b):
// Zipf(alpha) over `keys` keys, `requests` requests; with `scans`, every
// fifth block of `scan_length` requests is a scan of never-repeated keys.
struct ZipfSpec {
  size_t requests = 2'000'000;
  size_t keys = 200'000;
  uint64_t seed = 42;
  size_t scan_length = 2000;
};
Trace MakeZipfTrace(const ZipfSpec& spec, double alpha, bool scans);

// splitmix64 finalizer (rank -> key id; key digests in the replays).
uint64_t Mix(uint64_t x);

}  // namespace inferd
