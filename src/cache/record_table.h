#pragma once
// RecordTable: MemoryCache's index from a 128-bit digest to its record, an
// open-addressing hash table with linear probing.
//
// Why not std::unordered_map: a hit there is three dependent cache misses
// (bucket array, the node before, the node); here it is one slot (16
// bytes: the digest's low half and the record pointer, four slots to a
// cache line) and then the record itself. The low half is compared in the
// slot, the high half in the record, so a lookup dereferences nothing but
// the record it returns.
//
// The load factor stays at most 1/2 (the table doubles past it), so probe
// runs are short; erasure shifts the following run back (no tombstones).
// Slots are hashed with a per-table seed, so crafted digests with equal low
// halves do not pile into one run.
//
// Not thread-safe: concurrent Finds are fine, anything else needs the
// owner's exclusive lock. Records are owned by the caller.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "cache/cache_entry.h"

namespace inferd {

template <typename Record>  // has a `Digest128 digest` member
class RecordTable {
 public:
  explicit RecordTable(uint64_t seed) : seed_(seed) { Reset(kMinSlots); }

  Record* Find(const Digest128& d) const {
    for (size_t i = Home(d.lo);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.record == nullptr) return nullptr;
      if (s.lo == d.lo && s.record->digest.hi == d.hi) return s.record;
    }
  }

  // `r->digest` must not be present.
  void Insert(Record* r) {
    if (2 * (size_ + 1) > mask_ + 1) Grow();
    Place(r);
    ++size_;
  }

  // Removes and returns the record with digest `d` (nullptr if absent).
  Record* Erase(const Digest128& d) {
    size_t i = Home(d.lo);
    for (;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.record == nullptr) return nullptr;
      if (s.lo == d.lo && s.record->digest.hi == d.hi) break;
    }
    Record* found = slots_[i].record;
    // Backward shift: move each later member of the run whose home is not
    // between the hole and itself into the hole.
    for (size_t j = (i + 1) & mask_; slots_[j].record != nullptr; j = (j + 1) & mask_) {
      const size_t home = Home(slots_[j].lo);
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

  void Clear() { Reset(kMinSlots); }
  size_t size() const { return size_; }
  size_t slot_count() const { return mask_ + 1; }

 private:
  struct Slot {
    uint64_t lo = 0;
    Record* record = nullptr;
  };
  static constexpr size_t kMinSlots = 16;

  size_t Home(uint64_t lo) const {
    const uint64_t x = (lo ^ seed_) * 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(x >> shift_);
  }
  void Place(Record* r) {
    size_t i = Home(r->digest.lo);
    while (slots_[i].record != nullptr) i = (i + 1) & mask_;
    slots_[i] = Slot{r->digest.lo, r};
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
      if (old[i].record != nullptr) Place(old[i].record);
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
