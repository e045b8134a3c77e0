#pragma once
// Eviction policies over intrusive nodes, shared by MemoryCache and by the
// hit-ratio simulator (bench/hit_ratio_sim.cc), so the policy that is
// benchmarked is exactly the policy that serves.
//
// A policy orders resident nodes and picks victims; it owns no entries. The
// owner (a cache shard, the simulator) embeds an EvictionNode in each entry,
// sets `id` and `charge`, and calls:
//   Insert(n)      a new resident node (n->charge fixed while resident)
//   OnHit(n)       a lookup found n
//   Remove(n, r)   n leaves for another reason (erase, expiry, replacement)
//   EvictOne()     unlinks and returns the next victim (nullptr when empty)
// MemoryCache inserts first and then evicts while its bytes exceed its
// budget (the new node itself may be the victim: admission refused).
//
// The serving policy is TinyLfuPolicy (cache/tinylfu_policy.h), an
// adaptive W-TinyLFU. This file keeps what it builds on (EvictionNode,
// NodeList) and two reference policies for the simulator:
//
// LruPolicy: the textbook reference. Its OnHit moves the node in a list,
// so it needs exclusive access.
//
// S3FifoPolicy (Yang et al., SOSP 2023): the serving policy until issue 8,
// kept unchanged as the simulator's "S3-FIFO (old)" column: small FIFO S
// (~10% of capacity) for new ids; main FIFO M with a 2-bit hit counter and
// reinsertion; ghost FIFO G of ids evicted from S, which send a returning
// id straight to M. Retired because on real traces it lost to LRU by up to
// 19% (docs/benchmarks.md). Its known defects are kept, not fixed, so the
// column shows what served: TakeGhost leaves a taken record's bytes counted
// until it reaches the front (so G holds fewer ids than configured), and
// MemoryCache used to evict before the ghost lookup of a Put.
//
// Threading: policies are not thread-safe; the owner serializes Insert,
// Remove and EvictOne. OnHit of S3FifoPolicy and TinyLfuPolicy only updates
// the node's atomic counter and may run concurrently with other OnHit
// calls (never with the mutators).

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>

namespace inferd {

// Per-entry policy state, embedded in the owner's entry (by inheritance or
// as a member). Not copyable: lists point at it.
struct EvictionNode {
  EvictionNode() = default;
  EvictionNode(const EvictionNode&) = delete;
  EvictionNode& operator=(const EvictionNode&) = delete;

  uint64_t id = 0;               // identity for the ghost queue (e.g. digest.lo)
  size_t charge = 0;             // bytes (or 1 per entry in the simulator)
  std::atomic<uint8_t> freq{0};  // hits not yet seen by the policy (saturating)
  uint8_t queue = 0;             // owned by the policy: which list holds it
  uint8_t home = 0;              // owned by the policy: the list it left (demotion)
  EvictionNode* prev = nullptr;  // owned by the policy
  EvictionNode* next = nullptr;
};

// A doubly linked FIFO of nodes with a byte total. Front = newest.
class NodeList {
 public:
  void PushFront(EvictionNode* n);
  void Unlink(EvictionNode* n);
  EvictionNode* back() const { return tail_; }
  bool empty() const { return head_ == nullptr; }
  size_t bytes() const { return bytes_; }
  size_t count() const { return count_; }

 private:
  EvictionNode* head_ = nullptr;
  EvictionNode* tail_ = nullptr;
  size_t bytes_ = 0;
  size_t count_ = 0;
};

// What MemoryCache and the simulator require of a policy.
template <typename P>
concept EvictionPolicy = requires(P p, EvictionNode* n) {
  p.Insert(n);
  p.OnHit(n);
  p.Remove(n, true);
  { p.EvictOne() } -> std::same_as<EvictionNode*>;
  { p.charge() } -> std::convertible_to<size_t>;
  { p.size() } -> std::convertible_to<size_t>;
};

// See the file comment. Invariant: charge() == sum of resident charges ==
// small bytes + main bytes; ghost bytes <= ghost capacity (+ one entry).
class S3FifoPolicy {
 public:
  struct Options {
    size_t capacity = 0;            // bytes the owner will keep resident
    double small_fraction = 0.1;    // S target, as a fraction of capacity
    double ghost_fraction = 1.0;    // G bytes, as a fraction of capacity
    uint8_t promote_threshold = 1;  // S tail with freq >= this moves to M
  };
  explicit S3FifoPolicy(const Options& options);
  S3FifoPolicy(const S3FifoPolicy&) = delete;
  S3FifoPolicy& operator=(const S3FifoPolicy&) = delete;

  void Insert(EvictionNode* n);
  // Lock-free; safe concurrently with other OnHit calls. Skips the store
  // once saturated, so a hot entry's cache line stays shared between cores.
  static void OnHit(EvictionNode* n) {
    uint8_t f = n->freq.load(std::memory_order_relaxed);
    if (f < 3) n->freq.store(f + 1, std::memory_order_relaxed);
  }
  // `remember`: put the id in the ghost queue, so that re-inserting it
  // (e.g. a refreshed entry) goes straight to the main queue.
  void Remove(EvictionNode* n, bool remember = false);
  EvictionNode* EvictOne();

  size_t charge() const { return small_.bytes() + main_.bytes(); }
  size_t size() const { return small_.count() + main_.count(); }
  size_t ghost_size() const { return ghost_fifo_.size(); }

 private:
  enum Queue : uint8_t { kNone = 0, kSmall = 1, kMain = 2 };
  struct Ghost {
    uint64_t id;
    size_t charge;
    uint64_t seq;
  };
  void AddGhost(const EvictionNode* n);
  bool TakeGhost(uint64_t id);  // true if id was in G (and removes it)

  const Options options_;
  const size_t small_target_;
  const size_t ghost_capacity_;
  NodeList small_;
  NodeList main_;
  // G as a FIFO plus an index id -> sequence of its newest record; stale
  // FIFO records (id re-ghosted or taken) are skipped when popped.
  std::deque<Ghost> ghost_fifo_;
  std::unordered_map<uint64_t, uint64_t> ghost_index_;
  size_t ghost_bytes_ = 0;
  uint64_t ghost_seq_ = 0;
};

// Least recently used, the reference policy. OnHit mutates the list.
class LruPolicy {
 public:
  LruPolicy() = default;
  LruPolicy(const LruPolicy&) = delete;
  LruPolicy& operator=(const LruPolicy&) = delete;

  void Insert(EvictionNode* n) { list_.PushFront(n); }
  void OnHit(EvictionNode* n) {
    list_.Unlink(n);
    list_.PushFront(n);
  }
  void Remove(EvictionNode* n, bool /*remember*/ = false) { list_.Unlink(n); }
  EvictionNode* EvictOne();

  size_t charge() const { return list_.bytes(); }
  size_t size() const { return list_.count(); }

 private:
  NodeList list_;
};

static_assert(EvictionPolicy<S3FifoPolicy>);
static_assert(EvictionPolicy<LruPolicy>);

}  // namespace inferd
