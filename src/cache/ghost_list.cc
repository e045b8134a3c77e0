#include "cache/ghost_list.h"

#include <algorithm>

namespace inferd {

void GhostList::Add(uint64_t id, size_t charge) {
  Take(id);
  charge = std::max<size_t>(charge, 1);  // every id counts: none stays forever
  if (charge > capacity_) return;
  const Record r{id, charge, ++seq_};
  fifo_.push_back(r);
  index_.emplace(id, r);
  bytes_ += charge;
  Trim();
  if (fifo_.size() > 2 * index_.size() + 64) Compact();
}

bool GhostList::Take(uint64_t id) {
  auto it = index_.find(id);
  if (it == index_.end()) return false;
  bytes_ -= it->second.charge;
  index_.erase(it);
  return true;
}

void GhostList::set_capacity(size_t capacity) {
  capacity_ = capacity;
  Trim();
}

void GhostList::Trim() {
  while (bytes_ > capacity_ && !fifo_.empty()) {
    const Record& front = fifo_.front();
    auto it = index_.find(front.id);
    if (it != index_.end() && it->second.seq == front.seq) {
      bytes_ -= front.charge;
      index_.erase(it);
    }
    fifo_.pop_front();
  }
}

void GhostList::Compact() {
  std::deque<Record> live;
  for (const Record& r : fifo_) {
    auto it = index_.find(r.id);
    if (it != index_.end() && it->second.seq == r.seq) live.push_back(r);
  }
  fifo_.swap(live);
}

}  // namespace inferd
