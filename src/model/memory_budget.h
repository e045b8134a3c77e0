#pragma once
// MemoryBudget: the pure arithmetic of the model memory budget
// (--model-memory-budget; docs/design-lifecycle.md section 6): whether a
// load of `need` bytes may start now, must wait for memory being freed, can
// start once idle versions are evicted (which, least recently used first),
// or cannot fit at all. No threads, no clock: ModelManager calls it under
// its lock with what is resident.

#include <cstdint>
#include <vector>

namespace inferd {

struct BudgetResident {
  uint64_t id = 0;       // the caller's handle
  int64_t bytes = 0;     // what it is charged
  int64_t last_use = 0;  // any monotonic scale; smaller: used longer ago
  bool idle = false;     // no request holds it
  bool pinned = false;   // never evicted
};

struct BudgetPlan {
  enum class Action {
    kStart,     // fits now
    kWait,      // fits once memory already being freed is (unloading versions)
    kEvict,     // fits once `evict` are unloaded (then wait for them)
    kWaitIdle,  // fits only by evicting versions in use or loading: wait until they are idle
    kRefuse,    // never fits: pinned versions and the budget leave too little
  };
  Action action = Action::kStart;
  std::vector<uint64_t> evict;  // kEvict: least recently used first
};

// `used`: every charge (resident, loading, unloading); `freeing`: the part
// of `used` held by versions being destroyed; `loading`: the part reserved
// by other loads of unpinned models in progress (resident, then evictable,
// once they end). `may_evict` false (explicit model control): kEvict and
// kWaitIdle become kRefuse (kWait stays: it evicts nothing).
BudgetPlan PlanLoad(int64_t budget, int64_t used, int64_t freeing, int64_t loading, int64_t need,
                    std::vector<BudgetResident> residents, bool may_evict);

}  // namespace inferd
