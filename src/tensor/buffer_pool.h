#pragma once
// BufferPool: reusable byte buffers for batch assembly, so that forming a
// batch does not allocate per request. Acquire() hands out a buffer of at
// least the asked size; it returns to the pool when the last shared_ptr to it
// is dropped. The pool keeps at most `max_free` idle buffers.
//
// Threading: Acquire and the release path are safe from any thread. A buffer
// released after its pool is gone is simply freed.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/mutex.h"

namespace inferd {

class BufferPool {
 public:
  struct Options {
    size_t max_free = 8;  // idle buffers kept for reuse
  };
  explicit BufferPool(Options options);
  BufferPool() : BufferPool(Options{}) {}

  // A buffer whose size() is exactly `size` (capacity may be larger).
  std::shared_ptr<std::vector<uint8_t>> Acquire(size_t size);

  // Buffers handed out that had to be newly allocated (for tests and stats).
  int64_t allocations() const;

  // What the pool holds now: idle buffers and those handed out (bytes are
  // capacities).
  struct Stats {
    int64_t idle = 0;
    int64_t idle_bytes = 0;
    int64_t in_use = 0;
    int64_t in_use_bytes = 0;
  };
  Stats stats() const;

 private:
  struct State {
    Mutex mu;
    std::vector<std::unique_ptr<std::vector<uint8_t>>> free GUARDED_BY(mu);
    int64_t allocations GUARDED_BY(mu) = 0;
    int64_t in_use GUARDED_BY(mu) = 0;
    int64_t in_use_bytes GUARDED_BY(mu) = 0;
    size_t max_free = 8;
  };
  std::shared_ptr<State> state_;
};

}  // namespace inferd
