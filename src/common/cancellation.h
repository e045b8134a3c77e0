#pragma once
// Cancellation: a one-way flag that a request's owner raises (the client
// went away, the deadline passed) and that every stage holding the request
// observes, by polling (cancelled()) or by a callback (OnCancel). The first
// Cancel() wins and fixes the reason; later calls do nothing.
//
// Threading: every method is safe from any thread. Callbacks run on the
// thread that calls Cancel(), outside the lock, or at once inside OnCancel()
// when the flag is already up; they must not block.

#include <atomic>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"

namespace inferd {

class Cancellation {
 public:
  using Callback = std::function<void(const Status& reason)>;

  Cancellation() = default;
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  // Raises the flag with `reason` (not OK) and runs the registered callbacks.
  // Returns false if the flag was up already.
  bool Cancel(Status reason) EXCLUDES(mu_);
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // OK while not cancelled.
  Status reason() const EXCLUDES(mu_);

  // Registers `fn`; if the flag is up already, runs it now and returns 0.
  // Otherwise returns an id for Remove().
  uint64_t OnCancel(Callback fn) EXCLUDES(mu_);
  // Unregisters. A Cancel() that has already begun may still run the
  // callback, even after Remove returns: callbacks hold what they touch by
  // shared_ptr or by a lifetime that outlives the Cancellation. Removing 0
  // or an unknown id does nothing.
  void Remove(uint64_t id) EXCLUDES(mu_);

 private:
  std::atomic<bool> cancelled_{false};
  mutable Mutex mu_;
  Status reason_ GUARDED_BY(mu_);
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  std::vector<std::pair<uint64_t, Callback>> callbacks_ GUARDED_BY(mu_);
};

}  // namespace inferd
