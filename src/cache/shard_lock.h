#pragma once
// ShardLock: a reader-writer lock for read-mostly data whose readers write
// no shared cache line, plus the per-reader state MemoryCache keeps beside
// it (hit counters, the buffer of touched records).
//
// A reader registers in *its thread's slot* (threads take slots round
// robin, kSlots of them, one cache line of counters each), so two threads
// reading the same shard touch different lines: with std::shared_mutex
// they would both write its reader count, and that line would bounce
// between their cores on every hit. A writer raises `writing_`, then waits
// until every slot is empty; a reader that sees `writing_` backs out and
// registers under the writer mutex instead, so readers cannot starve a
// writer nor the reverse. (The "big reader" lock of the Linux kernel and
// folly's SharedMutex use the same idea.)
//
// Memory order: the reader's increment and the writer's flag are both
// sequentially consistent (Dekker): either the writer sees the reader's
// count, or the reader sees the flag.
//
// Threads take slots round robin for their lifetime (a slot is not reused
// when its thread exits), so threads beyond kSlots, or live threads after
// many have come and gone, may share a slot: still correct (slot counts are
// atomic read-modify-writes), with the lines shared again, and the touch
// buffer of a shared slot may lose or repeat records (it is lossy anyway;
// every record in it is resident, since writers drain before removing).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

#include "cache/eviction.h"
#include "common/mutex.h"

namespace inferd {

class CAPABILITY("mutex") ShardLock {
 public:
  static constexpr unsigned kSlots = 8;
  static constexpr unsigned kTouchCapacity = 64;

  // One reader slot: its count and the counters of the reads made through
  // it (all relaxed; summed by whoever wants totals).
  struct alignas(64) Slot {
    std::atomic<uint32_t> readers{0};
    std::atomic<uint32_t> touched_count{0};
    std::atomic<uint64_t> hits{0}, stale_hits{0}, misses{0}, collisions{0};
    // Records hit under the shared lock, in order, for the writer to
    // replay (policy Touch). Lossy: full means not recorded.
    alignas(64) std::atomic<EvictionNode*> touched[kTouchCapacity];
  };

  ShardLock() = default;
  ShardLock(const ShardLock&) = delete;
  ShardLock& operator=(const ShardLock&) = delete;

  // This thread's slot.
  Slot& ReaderSlot() {
    static std::atomic<unsigned> next{0};
    thread_local const unsigned index = next.fetch_add(1, std::memory_order_relaxed) % kSlots;
    return slots_[index];
  }

  void LockShared(Slot& slot) ACQUIRE_SHARED() {
    slot.readers.fetch_add(1, std::memory_order_seq_cst);
    if (!writing_.load(std::memory_order_seq_cst)) return;
    slot.readers.fetch_sub(1, std::memory_order_release);
    std::lock_guard<std::mutex> l(writer_);  // no writer inside while held
    slot.readers.fetch_add(1, std::memory_order_relaxed);
  }
  void UnlockShared(Slot& slot) RELEASE_SHARED() {
    slot.readers.fetch_sub(1, std::memory_order_release);
  }

  void Lock() ACQUIRE() {
    writer_.lock();
    writing_.store(true, std::memory_order_seq_cst);
    for (Slot& s : slots_) {
      for (unsigned spins = 0; s.readers.load(std::memory_order_seq_cst) != 0; ++spins) {
        if (spins > 64) std::this_thread::yield();
      }
    }
  }
  void Unlock() RELEASE() {
    writing_.store(false, std::memory_order_release);
    writer_.unlock();
  }

  // Under Lock(): policy.Touch(node) for every touched record, oldest first
  // per slot, and empties the buffers. (A policy, not a callback: a lambda
  // that touches members guarded by this lock is not analysed as holding it.)
  template <typename Policy>
  void DrainTouchedInto(Policy& policy) REQUIRES(this) {
    for (Slot& s : slots_) {
      const uint32_t n = s.touched_count.load(std::memory_order_relaxed);
      for (uint32_t i = 0; i < n; ++i) policy.Touch(s.touched[i].load(std::memory_order_relaxed));
      s.touched_count.store(0, std::memory_order_relaxed);
    }
  }

  const Slot* slots() const { return slots_; }

 private:
  std::mutex writer_;
  std::atomic<bool> writing_{false};
  Slot slots_[kSlots];
};

// Records `n` in the reader's buffer if there is room; under LockShared.
inline void RecordTouch(ShardLock::Slot& slot, EvictionNode* n) {
  const uint32_t i = slot.touched_count.load(std::memory_order_relaxed);
  if (i >= ShardLock::kTouchCapacity) return;
  slot.touched[i].store(n, std::memory_order_relaxed);
  slot.touched_count.store(i + 1, std::memory_order_relaxed);
}

using ShardWriterLock = ScopedLock<ShardLock>;

class SCOPED_CAPABILITY ShardReaderLock {
 public:
  ShardReaderLock(ShardLock* mu, ShardLock::Slot* slot) ACQUIRE_SHARED(mu) : mu_(mu), slot_(slot) {
    mu_->LockShared(*slot_);
  }
  ~ShardReaderLock() RELEASE() { mu_->UnlockShared(*slot_); }
  ShardReaderLock(const ShardReaderLock&) = delete;
  ShardReaderLock& operator=(const ShardReaderLock&) = delete;

 private:
  ShardLock* mu_;
  ShardLock::Slot* slot_;
};

}  // namespace inferd
