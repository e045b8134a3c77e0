#pragma once
// Mix64: the splitmix64 finalizer, a fast bijective mix of 64 bits, shared
// by the cache's hash table, frequency sketch and tests.

#include <cstdint>

namespace inferd {

inline uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace inferd
