#include "cache/eviction.h"

#include <algorithm>
#include <cassert>

namespace inferd {

void NodeList::PushFront(EvictionNode* n) {
  n->prev = nullptr;
  n->next = head_;
  if (head_ != nullptr) {
    head_->prev = n;
  } else {
    tail_ = n;
  }
  head_ = n;
  bytes_ += n->charge;
  ++count_;
}

void NodeList::Unlink(EvictionNode* n) {
  if (n->prev != nullptr) {
    n->prev->next = n->next;
  } else {
    head_ = n->next;
  }
  if (n->next != nullptr) {
    n->next->prev = n->prev;
  } else {
    tail_ = n->prev;
  }
  n->prev = n->next = nullptr;
  bytes_ -= n->charge;
  --count_;
}

S3FifoPolicy::S3FifoPolicy(const Options& options)
    : options_(options),
      small_target_(std::max<size_t>(
          1, static_cast<size_t>(static_cast<double>(options.capacity) * options.small_fraction))),
      ghost_capacity_(
          static_cast<size_t>(static_cast<double>(options.capacity) * options.ghost_fraction)) {}

void S3FifoPolicy::Insert(EvictionNode* n) {
  n->freq.store(0, std::memory_order_relaxed);
  if (TakeGhost(n->id)) {
    n->queue = kMain;
    main_.PushFront(n);
  } else {
    n->queue = kSmall;
    small_.PushFront(n);
  }
}

void S3FifoPolicy::Remove(EvictionNode* n, bool remember) {
  assert(n->queue != kNone);
  (n->queue == kSmall ? small_ : main_).Unlink(n);
  n->queue = kNone;
  if (remember) AddGhost(n);
}

EvictionNode* S3FifoPolicy::EvictOne() {
  // Terminates: each S step moves a node out of S; each M step either
  // evicts or lowers a counter (at most 3 per node).
  while (!small_.empty() || !main_.empty()) {
    if (!small_.empty() && (small_.bytes() >= small_target_ || main_.empty())) {
      EvictionNode* t = small_.back();
      small_.Unlink(t);
      if (t->freq.load(std::memory_order_relaxed) >= options_.promote_threshold) {
        t->freq.store(0, std::memory_order_relaxed);
        t->queue = kMain;
        main_.PushFront(t);
        continue;
      }
      t->queue = kNone;
      AddGhost(t);
      return t;
    }
    EvictionNode* t = main_.back();
    main_.Unlink(t);
    uint8_t f = t->freq.load(std::memory_order_relaxed);
    if (f > 0) {
      t->freq.store(f - 1, std::memory_order_relaxed);
      main_.PushFront(t);
      continue;
    }
    t->queue = kNone;
    return t;
  }
  return nullptr;
}

void S3FifoPolicy::AddGhost(const EvictionNode* n) {
  if (ghost_capacity_ == 0) return;
  uint64_t seq = ++ghost_seq_;
  ghost_fifo_.push_back({n->id, n->charge, seq});
  ghost_index_[n->id] = seq;
  ghost_bytes_ += n->charge;
  while (ghost_bytes_ > ghost_capacity_ && !ghost_fifo_.empty()) {
    const Ghost& g = ghost_fifo_.front();
    auto it = ghost_index_.find(g.id);
    if (it != ghost_index_.end() && it->second == g.seq) ghost_index_.erase(it);
    ghost_bytes_ -= g.charge;
    ghost_fifo_.pop_front();
  }
}

bool S3FifoPolicy::TakeGhost(uint64_t id) {
  auto it = ghost_index_.find(id);
  if (it == ghost_index_.end()) return false;
  // The FIFO record stays (and keeps its bytes) until it reaches the front.
  ghost_index_.erase(it);
  return true;
}

EvictionNode* LruPolicy::EvictOne() {
  EvictionNode* t = list_.back();
  if (t != nullptr) list_.Unlink(t);
  return t;
}

}  // namespace inferd
