#include "model/version_lease.h"

namespace inferd {

VersionLease::VersionLease(std::shared_ptr<ModelVersion> mv) : mv_(std::move(mv)) {
  mv_->usage().leases.fetch_add(1, std::memory_order_relaxed);
}

VersionLease& VersionLease::operator=(VersionLease&& other) noexcept {
  if (this != &other) {
    Release();
    mv_ = std::move(other.mv_);
  }
  return *this;
}

void VersionLease::Release() {
  if (!mv_) return;
  ModelVersion::Usage& u = mv_->usage();
  // Kept to the second (idle unloading): the coarse clock, read once per request.
  u.last_use_ns.store(mv_->clock()->CoarseNow().time_since_epoch().count(),
                      std::memory_order_relaxed);
  if (u.leases.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
      u.notify_idle.load(std::memory_order_acquire) && u.on_idle) {
    u.on_idle();
  }
  mv_.reset();
}

}  // namespace inferd
