#pragma once
// WriteBehindQueue: the bounded write-behind queue of the lower cache tiers
// (DiskCache, RedisCache). Put never waits for I/O: it appends the entry
// here, and one writer thread hands the queued entries, oldest first, to the
// tier's batch writer in batches of at most Options::max_batch items
// (and about Options::max_batch_bytes of payload).
//
// Guarantees:
//   - Push never blocks on I/O (only on the queue mutex, held for O(1) work).
//     A full queue, or one that is shut down, refuses the item: Push
//     returns false and the item is counted in `dropped`.
//   - Items reach the batch writer in Push order, each exactly once, unless
//     DropIf removes them first.
//   - DropIf is ordered against the writer: it first waits for the batch in
//     flight (if any) to be written, then removes the matching queued items,
//     then runs its `then` callback (the tier's own erase of stored entries)
//     before the writer may take another batch. So an item pushed before
//     DropIf is either written before `then` runs, or never written: no write
//     queued before an erase survives it.
//   - Flush returns once every item pushed before the call was written
//     (returned from the batch writer) or removed by DropIf.
//   - Shutdown (also run by the destructor) refuses new items, lets the
//     writer drain the queue, even while paused, and joins it.
//
// Locks: write_mu_ is held by the writer while it takes and writes a batch,
// and by DropIf for its whole duration; mu_ guards the queue and the
// counters. Order: write_mu_ before mu_. The batch writer and `then` run
// under write_mu_ only: they may take the tier's own locks (which come after
// write_mu_ in the tier's lock order) and may Push, but must not call DropIf,
// Flush, PauseForTesting or Shutdown (they would deadlock). DropIf's
// predicate runs under both and must not call into the queue at all.
//
// Threading: every method is safe from any thread.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache_entry.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "common/status.h"

namespace inferd {

// One queued write: an entry and the key it is stored under.
struct PendingWrite {
  CacheKey key;
  std::shared_ptr<const CacheEntry> entry;
};

class WriteBehindQueue {
 public:
  struct Options {
    // Items waiting for the writer; beyond it Push drops; >= 1.
    size_t capacity = 1024;
    // Most items handed to the batch writer at once; >= 1.
    size_t max_batch = 64;
    // A batch is also cut once its entries' payloads reach this many bytes
    // (a batch holds at least one item); 0: no byte limit.
    size_t max_batch_bytes = 0;
    // Names the queue in log messages (e.g. "disk cache").
    std::string name = "write-behind queue";
  };
  // Called on the writer thread with 1..max_batch items, oldest first,
  // without the queue mutex (see the lock notes above). Failures are the
  // tier's business: the items count as written once it returns.
  using BatchWriter = std::function<void(const std::vector<PendingWrite>& batch)>;
  using Predicate = std::function<bool(const PendingWrite& item)>;

  struct Stats {
    uint64_t enqueued = 0;  // items accepted by Push
    uint64_t dropped = 0;   // items refused by Push (queue full or shut down)
    uint64_t written = 0;   // items handed to the batch writer, which returned
    uint64_t removed = 0;   // items removed by DropIf
    uint64_t queued = 0;    // items waiting now
  };

  // InvalidArgument when capacity or max_batch is 0 or `writer` is empty.
  // Starts the writer thread.
  static StatusOr<std::unique_ptr<WriteBehindQueue>> Create(const Options& options,
                                                            BatchWriter writer);
  // Shutdown().
  ~WriteBehindQueue();
  WriteBehindQueue(const WriteBehindQueue&) = delete;
  WriteBehindQueue& operator=(const WriteBehindQueue&) = delete;

  // Never blocks on I/O: queues `item`, or drops it (false) when the queue
  // is full or shut down.
  bool Push(PendingWrite item) EXCLUDES(mu_);
  // Removes the queued items matching `pred` and returns how many; ordered
  // against the writer as described above, `then` (optional) running while
  // the writer is still held off.
  size_t DropIf(const Predicate& pred, const std::function<void()>& then = nullptr)
      EXCLUDES(write_mu_, mu_);
  // Waits until every item pushed before the call is written or removed.
  // Must not be called while paused (it would wait for ever).
  void Flush() EXCLUDES(mu_);
  // Refuses new items, drains the queue (even while paused), joins the
  // writer. Idempotent.
  void Shutdown() EXCLUDES(mu_);

  Stats GetStats() EXCLUDES(mu_);
  const Options& options() const { return options_; }

  // Test hook: while paused the writer takes nothing from the queue. When
  // pausing, returns once the batch in flight (if any) is written, so the
  // writer is idle from then on. Shutdown drains the queue even if paused.
  void PauseForTesting(bool paused) EXCLUDES(write_mu_, mu_);

 private:
  WriteBehindQueue(const Options& options, BatchWriter writer);
  void WriterLoop() EXCLUDES(write_mu_, mu_);
  // Moves up to max_batch items to *batch unless paused (and not stopping).
  void TakeBatch(std::vector<PendingWrite>* batch) EXCLUDES(mu_);

  const Options options_;
  const BatchWriter writer_fn_;

  // Held while a batch is taken and written, and by DropIf (see above).
  // Order: write_mu_ before mu_.
  Mutex write_mu_;
  Mutex mu_;          // the queue and the counters below
  CondVar queue_cv_;  // work for the writer, or stopping
  CondVar done_cv_;   // done_ advanced
  std::deque<PendingWrite> queue_ GUARDED_BY(mu_);
  uint64_t enqueued_ GUARDED_BY(mu_) = 0;  // items accepted
  uint64_t done_ GUARDED_BY(mu_) = 0;      // of those, written or removed
  uint64_t dropped_ GUARDED_BY(mu_) = 0;
  uint64_t written_ GUARDED_BY(mu_) = 0;
  uint64_t removed_ GUARDED_BY(mu_) = 0;
  bool paused_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;

  Mutex join_mu_;  // serializes Shutdown's join
  RateLimitedLog drop_log_;
  std::thread writer_;  // started by Create, once the object is built
};

}  // namespace inferd
