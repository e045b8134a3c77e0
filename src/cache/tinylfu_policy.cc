#include "cache/tinylfu_policy.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace inferd {
namespace {

constexpr double kProtectedShare = 0.8;    // R's share of main
constexpr unsigned kHashDosThreshold = 6;  // see the lottery in Admit

size_t GhostCapacity(const TinyLfuPolicy::Options& o) {
  return static_cast<size_t>(o.ghost_fraction * static_cast<double>(o.capacity));
}

}  // namespace

TinyLfuPolicy::TinyLfuPolicy(const Options& options)
    : options_(options),
      sketch_(0, options.seed, options.sketch),
      ghost_window_(GhostCapacity(options)),
      ghost_main_(GhostCapacity(options)),
      lottery_(options.seed | 1) {
  const auto cap = static_cast<double>(options.capacity);
  SetWindow(options.capacity - static_cast<size_t>(std::floor((1 - options.initial_window) * cap)));
}

NodeList& TinyLfuPolicy::ListOf(uint8_t queue) {
  assert(queue != kNone);
  switch (queue) {
    case kWindow:
      return window_;
    case kProbation:
      return probation_;
    case kProtected:
      return protected_;
    default:
      return demoted_;
  }
}

void TinyLfuPolicy::Unlink(EvictionNode* n) {
  ListOf(n->queue).Unlink(n);
  n->queue = kNone;
}

void TinyLfuPolicy::Insert(EvictionNode* n) {
  sketch_.EnsureCapacity(size() + 1);
  sketch_.Increment(n->id);
  if (options_.adaptive) Adapt(n);
  n->freq.store(0, std::memory_order_relaxed);
  n->queue = kWindow;
  window_.PushFront(n);
}

void TinyLfuPolicy::Remove(EvictionNode* n, bool /*remember*/) {
  Fold(n);  // its hits still count if it comes back
  Unlink(n);
}

void TinyLfuPolicy::Demote(EvictionNode* n) {
  if (n->queue == kNone || n->queue == kDemoted) return;
  Fold(n);
  n->home = n->queue;
  Unlink(n);
  n->queue = kDemoted;
  demoted_.PushFront(n);
}

void TinyLfuPolicy::Restore(EvictionNode* n) {
  if (n->queue != kDemoted) return;
  demoted_.Unlink(n);
  n->queue = n->home;
  ListOf(n->queue).PushFront(n);
  if (n->queue == kProtected) BalanceProtected();
}

unsigned TinyLfuPolicy::Frequency(EvictionNode* n) {
  Fold(n);
  return sketch_.Frequency(n->id);
}

void TinyLfuPolicy::Inherit(EvictionNode* n, unsigned times) {
  if (times > 0) sketch_.Increment(n->id, times);
}

void TinyLfuPolicy::Touch(EvictionNode* n) {
  if (n->queue == kNone) return;
  Fold(n);
  Restore(n);  // a demoted node is hit: back where it was, then as below
  if (n->queue == kProbation) {
    probation_.Unlink(n);
    n->queue = kProtected;
    protected_.PushFront(n);
    BalanceProtected();
    return;
  }
  NodeList& list = ListOf(n->queue);
  list.Unlink(n);
  list.PushFront(n);
}

bool TinyLfuPolicy::Fold(EvictionNode* n) {
  const uint8_t hits = n->freq.load(std::memory_order_relaxed);
  if (hits == 0) return false;
  n->freq.store(0, std::memory_order_relaxed);
  sketch_.Increment(n->id, hits);
  return true;
}

void TinyLfuPolicy::BalanceProtected() {
  // Terminates: a node goes back to R's head only after Fold cleared it.
  while (protected_.bytes() > protected_max_) {
    EvictionNode* t = protected_.back();
    protected_.Unlink(t);
    if (Fold(t)) {
      protected_.PushFront(t);
      continue;
    }
    t->queue = kProbation;
    probation_.PushFront(t);
  }
}

EvictionNode* TinyLfuPolicy::MainVictim() {
  for (;;) {
    if (!probation_.empty()) {
      EvictionNode* t = probation_.back();
      if (!Fold(t)) return t;
      probation_.Unlink(t);  // a hit in P: promote to R
      t->queue = kProtected;
      protected_.PushFront(t);
      BalanceProtected();
      continue;
    }
    if (protected_.empty()) return nullptr;
    EvictionNode* t = protected_.back();
    if (!Fold(t)) return t;
    protected_.Unlink(t);
    protected_.PushFront(t);
  }
}

bool TinyLfuPolicy::Admit(EvictionNode* candidate, EvictionNode* victim) {
  const unsigned c = sketch_.Frequency(candidate->id);
  const unsigned v = sketch_.Frequency(victim->id);
  if (c > v) return true;
  if (c < kHashDosThreshold) return false;
  lottery_ ^= lottery_ << 13;  // xorshift64
  lottery_ ^= lottery_ >> 7;
  lottery_ ^= lottery_ << 17;
  return (lottery_ & 127) == 0;
}

EvictionNode* TinyLfuPolicy::EvictOne() {
  if (!demoted_.empty()) {  // not the policy's choice: no ghost
    EvictionNode* d = demoted_.back();
    Fold(d);
    Unlink(d);
    return d;
  }
  for (;;) {
    if (!window_.empty() && window_.bytes() > window_max_) {
      EvictionNode* c = window_.back();
      window_.Unlink(c);
      if (Fold(c)) {  // used while in W: a second chance there
        window_.PushFront(c);
        continue;
      }
      const size_t main_bytes = probation_.bytes() + protected_.bytes();
      if (main_bytes + c->charge <= options_.capacity - window_max_) {
        c->queue = kProbation;  // main has room: no contest
        probation_.PushFront(c);
        continue;
      }
      EvictionNode* v = MainVictim();
      if (v != nullptr && Admit(c, v)) {
        Unlink(v);
        c->queue = kProbation;
        probation_.PushFront(c);
        return Evicted(v, true);
      }
      c->queue = kNone;
      return Evicted(c, false);
    }
    if (EvictionNode* v = MainVictim()) {
      Unlink(v);
      return Evicted(v, true);
    }
    if (window_.empty()) return nullptr;
    EvictionNode* t = window_.back();
    Unlink(t);
    return Evicted(t, false);
  }
}

EvictionNode* TinyLfuPolicy::Evicted(EvictionNode* n, bool from_main) {
  if (options_.adaptive) (from_main ? ghost_main_ : ghost_window_).Add(n->id, n->charge);
  return n;
}

// ARC's rule (Megiddo & Modha, FAST 2003) applied to W's share: an id
// evicted from W's side that comes back says W was too small; one evicted
// from main says main was. The step grows with the other list's ghosts.
void TinyLfuPolicy::Adapt(const EvictionNode* n) {
  const auto ratio = [](size_t a, size_t b) {
    return b == 0 ? 1.0 : std::max(1.0, static_cast<double>(a) / static_cast<double>(b));
  };
  if (ghost_window_.Take(n->id)) {
    const double step =
        static_cast<double>(n->charge) * ratio(ghost_main_.bytes(), ghost_window_.bytes());
    SetWindow(window_max_ + static_cast<size_t>(step));
  } else if (ghost_main_.Take(n->id)) {
    const double step =
        static_cast<double>(n->charge) * ratio(ghost_window_.bytes(), ghost_main_.bytes());
    SetWindow(window_max_ - std::min(window_max_, static_cast<size_t>(step)));
  }
}

void TinyLfuPolicy::SetWindow(size_t window_max) {
  window_max_ = std::min(window_max, options_.capacity);
  protected_max_ =
      static_cast<size_t>(kProtectedShare * static_cast<double>(options_.capacity - window_max_));
  BalanceProtected();
}

}  // namespace inferd
