#pragma once
// Unloader: the one thread that destroys unloaded model versions. A
// version's destruction drains its queue and frees its weights (tens of
// MiB, then malloc_trim), so no request, I/O or executor thread pays for it,
// wherever the version's last reference drops.
//
// Threading: Post from any thread, the unloader's own included; Stop once.

#include <deque>
#include <functional>
#include <thread>

#include "common/mutex.h"

namespace inferd {

class Unloader {
 public:
  Unloader();
  ~Unloader() { Stop(); }
  Unloader(const Unloader&) = delete;
  Unloader& operator=(const Unloader&) = delete;

  // Runs `fn` on the unloader thread, after what was posted before. False
  // once stopped: the caller runs it itself.
  bool Post(std::function<void()> fn) EXCLUDES(mu_);
  // Runs everything posted (and posted meanwhile), then ends the thread.
  void Stop() EXCLUDES(mu_);

 private:
  void Run() EXCLUDES(mu_);

  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> jobs_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  bool stopped_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace inferd
