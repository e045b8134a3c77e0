#pragma once
// FUZZ_CHECK: an invariant of a fuzz target. A violation aborts, which
// libFuzzer (and the corpus replay) reports as a crash with the input.
#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
