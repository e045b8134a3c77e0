#pragma once
// Coalescer: identical requests in flight at the same time run once. The
// first request for a key becomes the leader and executes; the others join
// as waiters and receive the leader's result (an error too: errors reach
// every waiter and are never cached). Each waiter has its own deadline; one
// whose deadline passes first is answered with DeadlineExceeded, without
// affecting the leader or the other waiters.
//
// Keys match on the digest and the full check, like the caches.
//
// Threading: all methods are safe from any thread. Callbacks run on the
// thread that calls Complete() (or on the deadline thread for timeouts),
// never under the coalescer's lock.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/cache_entry.h"
#include "common/clock.h"
#include "common/mutex.h"

namespace inferd {

class Coalescer {
 public:
  using Result = StatusOr<std::shared_ptr<const CacheEntry>>;
  using Waiter = std::function<void(Result)>;

  explicit Coalescer(Clock* clock = nullptr);
  ~Coalescer();  // answers remaining waiters with Unavailable

  // Returns true when the caller leads (it must call Complete(key, ...)
  // exactly once). Otherwise `waiter` is registered and will be called
  // exactly once: with the leader's result or, at `deadline`, with
  // DeadlineExceeded.
  bool Join(const CacheKey& key, Time deadline, Waiter waiter) EXCLUDES(mu_);
  void Complete(const CacheKey& key, Result result) EXCLUDES(mu_);

  int64_t waiting() EXCLUDES(mu_);          // waiters currently registered
  int64_t coalesced_total() EXCLUDES(mu_);  // waiters ever answered by a leader

 private:
  struct WaiterRec {
    uint64_t id;
    Time deadline;
    Waiter fn;
  };
  struct Flight {
    std::string check;
    std::vector<WaiterRec> waiters;
  };
  struct DigestHash {
    size_t operator()(const Digest128& d) const { return static_cast<size_t>(d.lo ^ (d.hi * 31)); }
  };
  void DeadlineLoop() EXCLUDES(mu_);

  Clock* const clock_;
  Mutex mu_;
  CondVar cv_;
  std::unordered_map<Digest128, std::vector<Flight>, DigestHash> flights_ GUARDED_BY(mu_);
  std::multimap<Time, std::pair<Digest128, uint64_t>> deadlines_ GUARDED_BY(mu_);
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  int64_t waiting_ GUARDED_BY(mu_) = 0;
  int64_t coalesced_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread deadline_thread_;
};

}  // namespace inferd
