#pragma once
// hit_ratio_sim --check-libcachesim: replays cloudPhysicsIO (oracleGeneral,
// bytes) at caches of k × 128 MiB, k = 1..8, through our LRU, S3-FIFO and
// OPT, and compares with libCacheSim's published miss counts and bytes
// (test/test_evictionAlgo.c). Prints Markdown tables.

#include <string>

#include "cache/eviction.h"
#include "trace_reader.h"

namespace inferd {

// `old_s3fifo`: the "S3-FIFO (old)" configuration, shown beside ours set as
// libCacheSim's test sets it. Sets *json_records to the rows as JSON objects
// (comma-separated). Returns whether LRU and the request totals match
// libCacheSim exactly.
bool CheckLibCacheSim(const Trace& t, const S3FifoPolicy::Options& old_s3fifo,
                      std::string* json_records);

}  // namespace inferd
