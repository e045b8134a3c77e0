#pragma once
// TinyLfuPolicy: the serving eviction policy of MemoryCache, an adaptive
// W-TinyLFU after Caffeine (Einziger, Eytan, Friedman & Manes, "Adaptive
// Software Cache Management", Middleware 2018), with its hits recorded
// without a lock.
//
// Structure (all sizes in bytes of charge):
//   - window W: new ids enter here (1% of the capacity at first);
//   - main = probation P + protected R (R at most 80% of main): ids that
//     won admission;
//   - a FrequencySketch of recent sightings of every id, resident or not.
// When W is over its share, its least recent node is the *candidate*: it
// joins P outright while main has room; otherwise it is compared with P's
// least recent node, the *victim*, and the one the sketch has seen less
// often is evicted. A one-off key thus never displaces a popular one, and a
// recency burst still gets its chance in W.
//
// Adaptation (the ghosts' verdicts): W's share moves by ARC's rule (Megiddo
// & Modha, FAST 2003). Two ghost lists remember the ids lately evicted from
// each side, each bounded by 10% of the capacity in charge: an id that
// returns from the window's ghosts (a rejected candidate, or W's tail when
// main is empty) would have hit with a larger W, so W grows by its charge;
// one that returns from main's ghosts shrinks W. The step is scaled by the
// ratio of the other list's size to this one's, as in ARC. A recency-biased
// trace thus drives W towards the whole cache (plain LRU), a
// frequency-biased one towards 0 (TinyLFU over an SLRU). Caffeine's hill
// climber, which compares the hit ratios of successive samples, was tried
// first and rejected: on the real traces the sample-to-sample hit ratio
// swings by tens of points with the workload's phases, so the climber
// wandered instead of converging (on orm-busy it stayed well above LRU).
// The small ghosts (10%, not ARC's 100%) make the verdicts *marginal*:
// whether a little more W or a little more main would have hit.
//
// Hits without a lock: OnHit only adds to the node's saturating 4-bit hit
// count (a relaxed atomic; no store once saturated, so a hot node's line
// stays shared between cores). The policy applies those hits when it next
// looks at the node, under the owner's exclusive lock, as Caffeine replays
// its read buffer: the counts go into the sketch, a W or R node with hits
// gets a second chance at the head of its queue (the queues are thus
// CLOCK approximations of LRU), and a P node with hits moves to R.
//
// Hash flooding: a candidate whose count is not above the victim's is
// rejected, except that a candidate with a count of at least 6 is admitted
// with probability 1/128, so crafted collisions in the sketch cannot pin
// a victim forever (Caffeine's defence).
//
// Threading: not thread-safe except OnHit (see eviction.h).

#include <cstddef>
#include <cstdint>

#include "cache/eviction.h"
#include "cache/frequency_sketch.h"
#include "cache/ghost_list.h"

namespace inferd {

class TinyLfuPolicy {
 public:
  struct Options {
    size_t capacity = 0;           // bytes the owner will keep resident
    double initial_window = 0.01;  // W's first share of the capacity
    bool adaptive = true;          // move W's share by the ghosts' verdicts
    double ghost_fraction = 0.1;   // each ghost list, of the capacity
    uint64_t seed = 0x5EED;        // keys the sketch; the admission lottery
    SketchTuning sketch;
  };
  explicit TinyLfuPolicy(const Options& options);
  TinyLfuPolicy(const TinyLfuPolicy&) = delete;
  TinyLfuPolicy& operator=(const TinyLfuPolicy&) = delete;

  // A node's pending hits saturate here (OnHit skips the store after).
  static constexpr uint8_t kMaxPendingHits = 15;

  void Insert(EvictionNode* n);
  // Returns whether this is n's first hit since the policy last saw it
  // (MemoryCache then records n for Touch).
  static bool OnHit(EvictionNode* n) {
    uint8_t f = n->freq.load(std::memory_order_relaxed);
    if (f < kMaxPendingHits) n->freq.store(f + 1, std::memory_order_relaxed);
    return f == 0;
  }
  // Applies a hit now, in order (the owner holds its exclusive lock): the
  // node moves to the head of its queue (a P node to R's head) and its hit
  // counts go into the sketch. MemoryCache calls it for the hits it
  // buffered under the shared lock.
  void Touch(EvictionNode* n);
  // Marks n as the first to go when room is needed: its owner knows a copy
  // of it is stored elsewhere (MemoryCache::PutCopy). A later Touch (a hit)
  // takes it back to the segment it left, as a hit there.
  void Demote(EvictionNode* n);
  // Undoes Demote (the copy was not stored after all): back to the head of
  // the segment it left.
  void Restore(EvictionNode* n);
  // The sketch's estimate for n (its pending hits included).
  unsigned Frequency(EvictionNode* n);
  // Adds `times` sightings of n to the sketch: it inherits the standing of
  // the entry it copies (MemoryCache::PutCopy).
  void Inherit(EvictionNode* n, unsigned times);
  // `remember` is meaningless here: the sketch remembers every id.
  void Remove(EvictionNode* n, bool remember = false);
  EvictionNode* EvictOne();

  size_t charge() const {
    return demoted_.bytes() + window_.bytes() + probation_.bytes() + protected_.bytes();
  }
  size_t size() const {
    return demoted_.count() + window_.count() + probation_.count() + protected_.count();
  }
  size_t window_max() const { return window_max_; }
  size_t window_bytes() const { return window_.bytes(); }
  size_t protected_bytes() const { return protected_.bytes(); }
  const FrequencySketch& sketch() const { return sketch_; }

 private:
  enum Queue : uint8_t { kNone = 0, kWindow = 1, kProbation = 2, kProtected = 3, kDemoted = 4 };
  NodeList& ListOf(uint8_t queue);
  // Moves n's pending hits into the sketch; returns whether it had any.
  bool Fold(EvictionNode* n);
  // Demotes R's overflow to P, giving R nodes with hits a second chance.
  void BalanceProtected();
  // P's least recent node without pending hits (those move to R first), or
  // R's when P is empty; still linked. nullptr if main is empty.
  EvictionNode* MainVictim();
  bool Admit(EvictionNode* candidate, EvictionNode* victim);
  void Unlink(EvictionNode* n);
  void SetWindow(size_t window_max);
  // Which side `n` leaves from; the adaptation learns when it comes back.
  EvictionNode* Evicted(EvictionNode* n, bool from_main);
  void Adapt(const EvictionNode* n);

  const Options options_;
  NodeList window_, probation_, protected_;
  NodeList demoted_;  // evicted before anything else, oldest first
  size_t window_max_ = 0;
  size_t protected_max_ = 0;
  FrequencySketch sketch_;
  GhostList ghost_window_;  // recently evicted from W's side (candidates)
  GhostList ghost_main_;    // recently evicted from main (victims)
  uint64_t lottery_;
};

static_assert(EvictionPolicy<TinyLfuPolicy>);

}  // namespace inferd
