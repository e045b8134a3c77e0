#pragma once
// RecentCounts: a tenant's refused and dropped requests over the last 60 s,
// by kind, for GET /v2/admin/tenants. A ring of 60 one-second buckets of
// atomics: lock-free, exact except for events racing with a bucket's reuse
// at the turn of a second (a few may land in the old second's count).

#include <array>
#include <atomic>
#include <cstdint>

#include "common/clock.h"

namespace inferd {

class RecentCounts {
 public:
  enum Kind { kRateLimited, kShed, kEvicted, kExpired, kCancelled, kQueueFull, kKinds };
  static constexpr int64_t kWindowS = 60;

  void Add(Time now, Kind kind) {
    const int64_t s = Second(now);
    Bucket& b = buckets_[static_cast<size_t>(s % kWindowS)];
    int64_t seen = b.second.load(std::memory_order_acquire);
    if (seen != s && b.second.compare_exchange_strong(seen, s, std::memory_order_acq_rel)) {
      for (auto& n : b.n) n.store(0, std::memory_order_relaxed);
    }
    b.n[kind].fetch_add(1, std::memory_order_relaxed);
  }

  std::array<int64_t, kKinds> Sum(Time now) const {
    std::array<int64_t, kKinds> out{};
    const int64_t s = Second(now);
    for (const Bucket& b : buckets_) {
      const int64_t at = b.second.load(std::memory_order_acquire);
      if (at < 0 || s - at >= kWindowS) continue;
      for (int k = 0; k < kKinds; ++k) out[k] += b.n[k].load(std::memory_order_relaxed);
    }
    return out;
  }

 private:
  static int64_t Second(Time now) {
    return std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  }
  struct Bucket {
    std::atomic<int64_t> second{-1};
    std::array<std::atomic<int64_t>, kKinds> n{};
  };
  std::array<Bucket, kWindowS> buckets_{};
};

}  // namespace inferd
