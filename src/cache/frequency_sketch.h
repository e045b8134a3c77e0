#pragma once
// FrequencySketch: an approximate, aging count of how often each id was
// seen recently, for TinyLFU admission (Einziger, Friedman & Manes, "TinyLFU:
// A Highly Efficient Cache Admission Policy", ACM ToS 2017).
//
// A count-min sketch of 4-bit counters (saturating at 15), depth 4, packed
// sixteen to a 64-bit word; the four counters of one id lie in one 64-byte
// block of eight words, so an increment or estimate touches one cache line.
// Width: the next power of two of the expected number of ids (at least 64
// words), so that the counters are not shared by too many ids.
//
// Increments are conservative (only the counters below the new estimate
// rise), which keeps ids that share counters with a popular one from
// looking popular themselves.
//
// Aging ("reset"): after `sample_size` increments (20 x the largest number
// of expected ids so far; Caffeine halves after 10 x, which measured worse
// with conservative increments, docs/benchmarks.md),
// every counter is halved, so what was popular long ago fades and the
// sketch follows a changing workload.
//
// Not thread-safe: the owner serializes every call.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace inferd {

// The defaults serve; the alternatives exist to measure them
// (bench/hit_ratio_sim --variant).
struct SketchTuning {
  bool conservative = true;   // false: every counter rises (Caffeine)
  size_t sample_per_id = 20;  // increments between halvings, per id (Caffeine: 10)
};

class FrequencySketch {
 public:
  using Tuning = SketchTuning;

  // `expected_ids`: how many ids the owner keeps resident; see
  // EnsureCapacity. `seed` keys the hash, so that which ids share counters
  // cannot be predicted from outside.
  explicit FrequencySketch(size_t expected_ids = 0, uint64_t seed = 0, const Tuning& tuning = {});

  // Grows the table (it never shrinks) when `expected_ids` outgrew it,
  // keeping every estimate.
  void EnsureCapacity(size_t expected_ids);

  // Adds `times` (>= 1) sightings of `id`; saturates at 15.
  void Increment(uint64_t id, unsigned times = 1);
  // The estimated count of `id` in [0, 15]: the minimum of its counters.
  unsigned Frequency(uint64_t id) const;

  size_t sample_size() const { return sample_size_; }
  size_t resets() const { return resets_; }

 private:
  static constexpr uint64_t kResetMask = 0x7777777777777777ull;
  struct Counters {  // where an id's four counters are
    size_t word[4];
    unsigned shift[4];
  };
  Counters Locate(uint64_t id) const;
  unsigned Min(const Counters& c) const;
  void Reset();
  // The block (8 words) of `id`, and its four counter positions.
  size_t BlockOf(uint64_t h) const { return (h & block_mask_) << 3; }

  const uint64_t seed_;
  const Tuning tuning_;
  std::vector<uint64_t> table_;
  size_t block_mask_ = 0;
  size_t sample_size_ = 0;
  size_t additions_ = 0;
  size_t resets_ = 0;
};

}  // namespace inferd
