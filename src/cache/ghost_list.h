#pragma once
// GhostList: the ids (no values) of recently evicted entries, oldest
// forgotten first, bounded by the sum of their charges. An adaptive policy
// asks "was this id evicted lately, and from where?" (TinyLfuPolicy keeps
// one list for each side of its cache).
//
// Accounting is exact: Take removes an id's charge at once, and a re-added
// id replaces its older record, so `bytes()` is the charge of the ids that
// Contains() would find. Dead records (taken or replaced) are skipped when
// they reach the front and compacted away once they outnumber the live
// ones, so memory stays proportional to the live ids.
//
// Not thread-safe: the owner serializes every call.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>

namespace inferd {

class GhostList {
 public:
  explicit GhostList(size_t capacity) : capacity_(capacity) {}

  // Remembers `id` with `charge` (at least 1), forgetting the oldest ids
  // beyond capacity; an id larger than the capacity is only forgotten.
  void Add(uint64_t id, size_t charge);
  // Forgets `id`; returns whether it was remembered.
  bool Take(uint64_t id);
  void set_capacity(size_t capacity);

  size_t bytes() const { return bytes_; }
  size_t size() const { return index_.size(); }

 private:
  struct Record {
    uint64_t id;
    size_t charge;
    uint64_t seq;
  };
  void Trim();
  void Compact();

  size_t capacity_;
  std::deque<Record> fifo_;
  std::unordered_map<uint64_t, Record> index_;  // id -> its live record
  size_t bytes_ = 0;
  uint64_t seq_ = 0;
};

}  // namespace inferd
