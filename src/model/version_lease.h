#pragma once
// VersionLease: a request's hold on a READY model version. It keeps the
// version alive and counts it in use (never unloaded for being idle, never
// evicted) until released; releasing records the version's last use.
// Made only by ModelManager, under its lock, so that an unload either sees
// the lease or happens before it (docs/design-lifecycle.md, section 4).
//
// Threading: one lease is used by one thread at a time; leases of one
// version may be released on any threads concurrently.

#include <memory>

#include "model/model_version.h"

namespace inferd {

class VersionLease {
 public:
  VersionLease() = default;
  VersionLease(VersionLease&& other) noexcept : mv_(std::move(other.mv_)) {}
  VersionLease& operator=(VersionLease&& other) noexcept;
  VersionLease(const VersionLease&) = delete;
  VersionLease& operator=(const VersionLease&) = delete;
  ~VersionLease() { Release(); }

  // Ends the hold (idempotent).
  void Release();

  ModelVersion* operator->() const { return mv_.get(); }
  ModelVersion& operator*() const { return *mv_; }
  ModelVersion* get() const { return mv_.get(); }
  const std::shared_ptr<ModelVersion>& shared() const { return mv_; }
  explicit operator bool() const { return mv_ != nullptr; }

 private:
  friend class ModelManager;
  explicit VersionLease(std::shared_ptr<ModelVersion> mv);
  std::shared_ptr<ModelVersion> mv_;
};

}  // namespace inferd
