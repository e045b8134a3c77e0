// The --check-libcachesim part of bench/hit_ratio_sim: our replays of
// cloudPhysicsIO against the miss counts libCacheSim publishes.

#include "libcachesim_check.h"

#include <cstdio>
#include <sstream>
#include <vector>

#include "replay.h"

namespace inferd {
namespace {

// libCacheSim's test/test_evictionAlgo.c replays cloudPhysicsIO (oracleGeneral)
// at cache sizes k × 128 MiB, k = 1..8, and asserts these counts.
//
// LRU matches exactly, with nothing special: what had to agree with
// libCacheSim (checked in its cache.c / LRU.c) is
//   - the cache size counts object sizes only: libCacheSim charges per-object
//     metadata only when asked (obj_md_size is 0 by default);
//   - MiB is 2^20, and "evict from the LRU end while occupied + size > cache
//     size" (a miss inserts after evicting);
//   - an object larger than the whole cache is not admitted but still counts
//     as a miss with its bytes (cache_can_insert); it never happens here (the
//     largest object is 69,632 bytes);
//   - sizes: the uint32 field is the size as is; there are no size-0 objects
//     in this trace, and every object keeps one size throughout (oracleGeneral
//     stores the size of its last appearance), so the requested bytes agree
//     (4,368,040,448) whichever appearance one reads.
//
// S3-FIFO is expected to differ. The published "S3-FIFO" numbers come from
// libCacheSim's S3FIFO.c (move-to-main-threshold=2, small 0.10, ghost 0.90),
// which adds a warm-up rule to the original algorithm: until its first
// eviction, a newcomer that finds S full goes straight to M, so a cache that
// fills slowly (the large sizes here) starts with an M of unproven objects;
// that is most of the gap (ours +26% misses at 1 GiB). Its original version,
// S3FIFOv0.c (also published, also compared below), has no such rule and is
// what our S3FifoPolicy implements: with the same parameters it matches
// exactly at 640 MiB and 1 GiB, within 4 misses at 512-896 MiB, +0.2% at
// 128-256 MiB and +2.3% at 384 MiB. What still
// differs from S3FIFOv0: it evicts from M whenever M exceeds its 90% share
// (ours evicts from S whenever S holds >= 10%), which differs after
// promotions; it refuses objects at least as large as S (10% of the cache),
// ours admits anything up to the capacity; a ghost hit removes the ghost
// record at once, while our taken ghost records keep their bytes until they
// reach the FIFO's front (a slightly shorter effective ghost). Its counter is
// not clamped in S (the same thing for a threshold of 2).
//
// OPT is expected to differ too: libCacheSim's Belady always inserts the
// newcomer and evicts the furthest-next-access residents until it fits (the
// newcomer may be the next victim); ours bypasses the newcomer when it is
// needed no sooner than the residents it would displace, which spares those.
// At 1 GiB both reach the floor (48,974 = only cold misses).

struct Published {
  const char* policy;
  uint64_t count[8];
  uint64_t bytes[8];
};
constexpr uint64_t kTheirRequests = 113872, kTheirRequestBytes = 4368040448;
constexpr Published kLru = {"LRU",
                            {93374, 89783, 83572, 81722, 72494, 72104, 71972, 71704},
                            {4214303232, 4061242368, 3778040320, 3660569600, 3100927488, 3078128640,
                             3075403776, 3061662720}};
constexpr Published kS3Fifo = {"S3-FIFO",
                               {90117, 80915, 75060, 72191, 69815, 65542, 60799, 56045},
                               {4058576896, 3573827584, 3244417024, 3061737984, 2898109952,
                                2628363776, 2425027072, 2327934464}};
constexpr Published kS3FifoV0 = {"S3-FIFOv0",
                                 {89307, 82387, 77041, 76791, 71300, 70343, 70455, 70355},
                                 {4040718336, 3703628800, 3353047552, 3282235904, 3038256128,
                                  2980646912, 2984458752, 2979649536}};
constexpr Published kBelady = {"Belady",
                               {79256, 70724, 65481, 61594, 59645, 57599, 50873, 48974},
                               {3472532480, 2995165696, 2726689792, 2537648128, 2403427840,
                                2269212672, 2134992896, 2029769728}};

// Prints one comparison table; appends JSON records to *json. Returns
// whether every count and byte total matched.
bool Compare(const char* title, const Published& theirs, const std::vector<Misses>& ours,
             const std::vector<Misses>* extra, const char* extra_name, std::ostringstream* json) {
  std::printf(
      "\n%s\n\n| cache | misses (ours) | libCacheSim %s | diff | miss bytes (ours) | "
      "libCacheSim | diff |%s\n|---:|---:|---:|---:|---:|---:|---:|%s\n",
      title, theirs.policy, extra ? (std::string(" ") + extra_name + " |").c_str() : "",
      extra ? "---:|" : "");
  bool match = true;
  for (int k = 0; k < 8; ++k) {
    const Misses& m = ours[k];
    match = match && m.count == theirs.count[k] && m.bytes == theirs.bytes[k];
    auto diff = [](uint64_t a, uint64_t b) {
      return (static_cast<double>(a) - static_cast<double>(b)) / static_cast<double>(b) * 100;
    };
    std::printf("| %d MiB | %llu | %llu | %+.2f%% | %llu | %llu | %+.2f%% |", (k + 1) * 128,
                static_cast<unsigned long long>(m.count),
                static_cast<unsigned long long>(theirs.count[k]), diff(m.count, theirs.count[k]),
                static_cast<unsigned long long>(m.bytes),
                static_cast<unsigned long long>(theirs.bytes[k]), diff(m.bytes, theirs.bytes[k]));
    if (extra) {
      std::printf(" %llu / %llu |", static_cast<unsigned long long>((*extra)[k].count),
                  static_cast<unsigned long long>((*extra)[k].bytes));
    }
    std::printf("\n");
    *json << "    {\"policy\": \"" << title << "\", \"cache_mib\": " << (k + 1) * 128
          << ", \"misses\": " << m.count << ", \"theirs\": " << theirs.count[k]
          << ", \"miss_bytes\": " << m.bytes << ", \"theirs_bytes\": " << theirs.bytes[k] << "},\n";
  }
  return match;
}

}  // namespace

bool CheckLibCacheSim(const Trace& t, const S3FifoPolicy::Options& old_s3fifo,
                      std::string* json_records) {
  std::vector<Misses> lru, s3_lcs, s3_default, opt;
  S3FifoPolicy::Options lcs;  // configured like libCacheSim's test
  lcs.small_fraction = 0.1;
  lcs.ghost_fraction = 0.9;
  lcs.promote_threshold = 2;
  for (uint64_t k = 1; k <= 8; ++k) {
    const uint64_t capacity = k * 128 * (uint64_t{1} << 20);
    lru.push_back(ReplayLru(t, capacity, true));
    s3_lcs.push_back(ReplayS3Fifo(t, capacity, true, lcs));
    s3_default.push_back(ReplayS3Fifo(t, capacity, true, old_s3fifo));
    opt.push_back(ReplayOpt(t, capacity, true));
  }
  const bool totals = t.requests() == kTheirRequests && t.requested_bytes == kTheirRequestBytes;
  std::printf(
      "\n### libCacheSim cross-check: %s, bytes mode, caches of k × 128 MiB\n\n"
      "Requests %zu (libCacheSim %llu), requested bytes %llu (libCacheSim %llu): %s.\n",
      t.name.c_str(), t.requests(), static_cast<unsigned long long>(kTheirRequests),
      static_cast<unsigned long long>(t.requested_bytes),
      static_cast<unsigned long long>(kTheirRequestBytes), totals ? "match" : "MISMATCH");
  std::ostringstream json;
  const bool lru_ok = Compare("LRU (policy-only)", kLru, lru, nullptr, nullptr, &json);
  std::printf("\nLRU matches libCacheSim exactly: %s\n", lru_ok ? "yes" : "NO");
  Compare("S3-FIFO (our S3FifoPolicy: small 0.1, ghost 0.9, promote at 2, as libCacheSim's test)",
          kS3Fifo, s3_lcs, &s3_default, "S3-FIFO (old) (0.1, 1.0, 1): misses / bytes", &json);
  Compare("S3-FIFO (the same replay of ours) vs libCacheSim's original S3-FIFO (S3FIFOv0.c)",
          kS3FifoV0, s3_lcs, nullptr, nullptr, &json);
  Compare("OPT (ours, with bypass) vs libCacheSim Belady", kBelady, opt, nullptr, nullptr, &json);
  std::printf("\nS3-FIFO and OPT differ by design (see the comment in libcachesim_check.cc).\n");
  *json_records = json.str();
  if (!json_records->empty()) json_records->erase(json_records->size() - 2, 1);  // the last comma
  return lru_ok && totals;
}

}  // namespace inferd
