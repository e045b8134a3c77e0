#include "common/memory_trim.h"

#include <malloc.h>

#include <mutex>

#if defined(__SANITIZE_ADDRESS__)
#define INFERD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define INFERD_ASAN 1
#endif
#endif

namespace inferd {

void ReleaseFreeMemory() {
#ifndef INFERD_ASAN
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  malloc_trim(0);
#endif
}

}  // namespace inferd
