#pragma once
// Replays of a Trace (bench/trace_reader.h) for the hit-ratio simulator:
// one function per contender, all cold-start, every request counted (cold
// misses are misses).
//
// Two modes. Unit (`bytes` false): every object has size 1 and `capacity`
// counts entries. Bytes (`bytes` true, traces with sizes): an object's size
// is its size in the trace and `capacity` counts bytes; an object larger
// than the capacity is never admitted (a miss every time).
//
//   ReplayLru, ReplayS3Fifo  policy-only: the cache/eviction.h class orders
//                            nodes, the replay evicts while charge() + size
//                            > capacity, as MemoryCache does per shard.
//   ReplayOpt                Belady's MIN with bypass (see replay.cc).
//   ReplayInferd             the real MemoryCache through its public API
//                            (Get, Put, Probe): what inferd would serve.

#include <cstddef>
#include <cstdint>

#include "cache/eviction.h"
#include "cache/memory_cache.h"
#include "common/status.h"
#include "trace_reader.h"

namespace inferd {

struct Misses {
  uint64_t count = 0;  // requests that missed
  uint64_t bytes = 0;  // their object sizes (bytes mode); equals count in unit mode
};

Misses ReplayLru(const Trace& trace, uint64_t capacity, bool bytes);
// `options.capacity` is replaced by `capacity`.
Misses ReplayS3Fifo(const Trace& trace, uint64_t capacity, bool bytes,
                    S3FifoPolicy::Options options);
Misses ReplayOpt(const Trace& trace, uint64_t capacity, bool bytes);

struct InferdSetup {
  uint64_t capacity = 0;  // entries (unit mode) or bytes
  bool bytes = false;
  int shards = 16;
  // Also model the exact-repeat memo of server/inference_encoded.cc, which
  // stores a second entry per repeated request in the same L1 budget.
  bool memo = false;
  uint64_t seed = 42;  // MemoryCache::Options::seed: repeatable runs
  // Store the memo's copy with a plain Put, as the server did before
  // MemoryCache::PutCopy (to measure what PutCopy changed).
  bool memo_plain = false;
  MemoryCache::Options::PolicyTuning tuning;  // --variant
  double copy_share = -1;                     // < 0: MemoryCache's default
};

// Payload bytes of every entry in unit mode.
inline constexpr size_t kUnitPayload = 100;
// MemoryCache's charge of one unit-mode entry, as its GetStats().bytes
// reports after one Put (CacheEntry::charge() + kEntryOverhead, and
// whatever else MemoryCache counts); the same for every key, so
// max_bytes = capacity × this.
size_t UnitEntryCharge();

// Fails when MemoryCache::Create refuses the budget (too small for the
// shards).
StatusOr<Misses> ReplayInferd(const Trace& trace, const InferdSetup& setup);

}  // namespace inferd
