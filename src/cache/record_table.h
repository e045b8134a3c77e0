#pragma once
// RecordTable: MemoryCache's index from a 128-bit digest to its record, an
// open-addressing hash table with linear probing.
//
// Why not std::unordered_map: a hit there is three dependent cache misses
// (bucket array, the node before, the node); here it is one slot (16
// bytes: a 64-bit hash of the digest and the record pointer, four slots to
// a cache line) and then the record itself. The hash is compared in the
// slot and the digest in the record, so a lookup dereferences nothing but
// the record it returns (but for a 2^-64 chance).
//
// The load factor stays at most 1/2 (the table doubles past it), so probe
// runs are short; erasure shifts the following run back (no tombstones).
// The hash mixes *both* halves of the digest with a per-table secret seed:
// the digest (XXH3-128 of client bytes) is not collision-resistant, and
// digests crafted to share one half must not pile into one probe run.
//
// Not thread-safe: concurrent Finds are fine, anything else needs the
// owner's exclusive lock. Records are owned by the caller.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "cache/cache_entry.h"
#include "cache/mix64.h"

namespace inferd {

template <typename Record>  // has a `Digest128 digest` member
class RecordTable {
 public:
  explicit RecordTable(uint64_t seed) : seed_(seed) { Reset(kMinSlots); }

  // The seeded 64-bit hash of a digest (also a good policy id: see
  // MemoryCache).
  uint64_t HashOf(const Digest128& d) const {
    return Mix64(d.lo ^ seed_) ^ Mix64(d.hi ^ (seed_ * 0x9E3779B97F4A7C15ull));
  }

  Record* Find(const Digest128& d) const {
    const uint64_t h = HashOf(d);
    for (size_t i = Home(h);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.record == nullptr) return nullptr;
      if (s.hash == h && s.record->digest == d) return s.record;
    }
  }

  // `r->digest` must not be present.
  void Insert(Record* r) {
    if (2 * (size_ + 1) > mask_ + 1) Grow();
    Place(HashOf(r->digest), r);
    ++size_;
  }

  // Removes and returns the record with digest `d` (nullptr if absent).
  Record* Erase(const Digest128& d) {
    const uint64_t h = HashOf(d);
    size_t i = Home(h);
    for (;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.record == nullptr) return nullptr;
      if (s.hash == h && s.record->digest == d) break;
    }
    Record* found = slots_[i].record;
    // Backward shift: move each later member of the run whose home is not
    // between the hole and itself into the hole.
    for (size_t j = (i + 1) & mask_; slots_[j].record != nullptr; j = (j + 1) & mask_) {
      const size_t home = Home(slots_[j].hash);
      const bool movable = ((j - home) & mask_) >= ((j - i) & mask_);
      if (movable) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
    --size_;
    return found;
  }

  // Calls f(record) for each record; f must not change the table.
  template <typename F>
  void ForEach(F&& f) const {
    for (size_t i = 0; i <= mask_; ++i) {
      if (slots_[i].record != nullptr) f(slots_[i].record);
    }
  }

  // The longest run of occupied slots (what one lookup may have to walk);
  // O(slots), for tests and diagnostics.
  size_t LongestRun() const {
    size_t longest = 0, run = 0;
    for (size_t i = 0; i < 2 * (mask_ + 1); ++i) {  // twice round: runs that wrap
      run = slots_[i & mask_].record != nullptr ? run + 1 : 0;
      longest = std::max(longest, std::min(run, size_));
    }
    return longest;
  }

  void Clear() { Reset(kMinSlots); }
  size_t size() const { return size_; }
  size_t slot_count() const { return mask_ + 1; }

 private:
  struct Slot {
    uint64_t hash = 0;
    Record* record = nullptr;
  };
  static constexpr size_t kMinSlots = 16;

  size_t Home(uint64_t hash) const { return static_cast<size_t>(hash >> shift_); }
  void Place(uint64_t hash, Record* r) {
    size_t i = Home(hash);
    while (slots_[i].record != nullptr) i = (i + 1) & mask_;
    slots_[i] = Slot{hash, r};
  }
  void Reset(size_t slots) {
    slots_ = std::make_unique<Slot[]>(slots);
    mask_ = slots - 1;
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(slots));
    size_ = 0;
  }
  void Grow() {
    std::unique_ptr<Slot[]> old = std::move(slots_);
    const size_t old_count = mask_ + 1;
    const size_t size = size_;
    Reset(old_count * 2);
    for (size_t i = 0; i < old_count; ++i) {
      if (old[i].record != nullptr) Place(old[i].hash, old[i].record);
    }
    size_ = size;
  }

  const uint64_t seed_;
  std::unique_ptr<Slot[]> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 0;
  size_t size_ = 0;
};

}  // namespace inferd
