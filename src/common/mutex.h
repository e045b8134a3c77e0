#pragma once
// Mutex, MutexLock and CondVar carrying clang thread-safety annotations, so
// that `-Wthread-safety` (clang) checks every GUARDED_BY field. On GCC the
// annotations compile away.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#if defined(__clang__)
#define INFERD_TSA(x) __attribute__((x))
#else
#define INFERD_TSA(x)
#endif

#define CAPABILITY(x) INFERD_TSA(capability(x))
#define SCOPED_CAPABILITY INFERD_TSA(scoped_lockable)
#define GUARDED_BY(x) INFERD_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) INFERD_TSA(pt_guarded_by(x))
#define REQUIRES(...) INFERD_TSA(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) INFERD_TSA(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) INFERD_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) INFERD_TSA(release_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) INFERD_TSA(acquire_shared_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) INFERD_TSA(release_shared_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) INFERD_TSA(requires_shared_capability(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS INFERD_TSA(no_thread_safety_analysis)

namespace inferd {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

// A readers-writer lock: many holders of the shared side or one of the
// exclusive side.
class CAPABILITY("shared_mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  void LockShared() ACQUIRE_SHARED() { mu_.lock_shared(); }
  void UnlockShared() RELEASE_SHARED() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
};

// Holds any capability with Lock()/Unlock() (Mutex, SharedMutex, the
// cache's ShardLock) for its scope.
template <typename M>
class SCOPED_CAPABILITY ScopedLock {
 public:
  explicit ScopedLock(M* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~ScopedLock() RELEASE() { mu_->Unlock(); }
  ScopedLock(const ScopedLock&) = delete;
  ScopedLock& operator=(const ScopedLock&) = delete;

 private:
  M* mu_;
};

using MutexLock = ScopedLock<Mutex>;
using WriterLock = ScopedLock<SharedMutex>;

// Holds the shared side of a SharedMutex for its scope.
class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex* mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_->LockShared(); }
  ~ReaderLock() RELEASE() { mu_->UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex* mu_;
};

// Condition variable used with a held Mutex.
class CondVar {
 public:
  void Wait(Mutex* mu) REQUIRES(mu) NO_THREAD_SAFETY_ANALYSIS {
    std::unique_lock<std::mutex> lk(mu->native(), std::adopt_lock);
    cv_.wait(lk);
    lk.release();
  }
  // Returns false on timeout.
  template <typename TimePoint>
  bool WaitUntil(Mutex* mu, TimePoint deadline) REQUIRES(mu) NO_THREAD_SAFETY_ANALYSIS {
    std::unique_lock<std::mutex> lk(mu->native(), std::adopt_lock);
    bool notified = cv_.wait_until(lk, deadline) == std::cv_status::no_timeout;
    lk.release();
    return notified;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace inferd
