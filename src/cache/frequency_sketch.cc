#include "cache/frequency_sketch.h"

#include "cache/mix64.h"

#include <algorithm>
#include <bit>

namespace inferd {
FrequencySketch::FrequencySketch(size_t expected_ids, uint64_t seed, const Tuning& tuning)
    : seed_(seed), tuning_(tuning) {
  EnsureCapacity(expected_ids);
}

void FrequencySketch::EnsureCapacity(size_t expected_ids) {
  // One word (16 counters) per expected id, at least 8 blocks of 8 words.
  sample_size_ = std::max(sample_size_, tuning_.sample_per_id * std::max<size_t>(expected_ids, 1));
  const size_t words = std::bit_ceil(std::max<size_t>(expected_ids, 64));
  if (words <= table_.size()) return;
  // An id's block is the low bits of its hash; one more bit splits each
  // old block into two new ones. Copying every old block to both keeps
  // every estimate as it was (the counters within a block depend on the
  // high bits only), so growing forgets nothing.
  std::vector<uint64_t> grown(words);
  if (!table_.empty()) {
    for (size_t w = 0; w < words; ++w) grown[w] = table_[w & (table_.size() - 1)];
  }
  table_.swap(grown);
  block_mask_ = (words >> 3) - 1;
}

// Depth i uses word block + 2i + (bit 0 of its byte of the counter hash) and
// the counter given by the next four bits, as in Caffeine's blocked sketch.
FrequencySketch::Counters FrequencySketch::Locate(uint64_t id) const {
  const uint64_t h = Mix64(id ^ seed_);
  const size_t block = BlockOf(h);
  const auto counter_hash = static_cast<uint32_t>(h >> 32);
  Counters c;
  for (unsigned i = 0; i < 4; ++i) {
    const uint32_t b = counter_hash >> (i << 3);
    c.word[i] = block + (i << 1) + (b & 1);
    c.shift[i] = ((b >> 1) & 15) << 2;
  }
  return c;
}

unsigned FrequencySketch::Min(const Counters& c) const {
  unsigned m = 15;
  for (unsigned i = 0; i < 4; ++i) {
    m = std::min(m, static_cast<unsigned>(table_[c.word[i]] >> c.shift[i]) & 15);
  }
  return m;
}

// Conservative update (Estan & Varghese, SIGCOMM 2002): only the counters
// below the new estimate rise, to it, so ids that share a counter with a
// popular one are overestimated less than with a plain count-min.
void FrequencySketch::Increment(uint64_t id, unsigned times) {
  const Counters c = Locate(id);
  const unsigned target = std::min(15u, Min(c) + times);
  bool added = false;
  for (unsigned i = 0; i < 4; ++i) {
    uint64_t& word = table_[c.word[i]];
    const unsigned count = static_cast<unsigned>(word >> c.shift[i]) & 15;
    // Plain count-min: every counter rises by `times` (up to 15).
    const unsigned next = tuning_.conservative ? target : std::min(15u, count + times);
    if (count >= next) continue;
    word += static_cast<uint64_t>(next - count) << c.shift[i];
    added = true;
  }
  if (added) {
    additions_ += times;
    if (additions_ >= sample_size_) Reset();
  }
}

unsigned FrequencySketch::Frequency(uint64_t id) const { return Min(Locate(id)); }

void FrequencySketch::Reset() {
  for (uint64_t& w : table_) w = (w >> 1) & kResetMask;
  additions_ /= 2;
  ++resets_;
}

}  // namespace inferd
