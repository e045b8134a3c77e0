#include "model/memory_budget.h"

#include <algorithm>

namespace inferd {

BudgetPlan PlanLoad(int64_t budget, int64_t used, int64_t freeing, int64_t loading, int64_t need,
                    std::vector<BudgetResident> residents, bool may_evict) {
  BudgetPlan plan;
  if (budget <= 0 || need <= budget - used) return plan;  // kStart
  int64_t room = budget - used + freeing;
  if (need <= room) {  // waiting for memory being freed evicts nothing
    plan.action = BudgetPlan::Action::kWait;
    return plan;
  }
  if (!may_evict) {
    plan.action = BudgetPlan::Action::kRefuse;
    return plan;
  }
  std::sort(residents.begin(), residents.end(),
            [](const BudgetResident& a, const BudgetResident& b) {
              return a.last_use != b.last_use ? a.last_use < b.last_use : a.id < b.id;
            });
  for (const BudgetResident& r : residents) {
    if (!r.idle || r.pinned || room >= need) continue;
    plan.evict.push_back(r.id);
    room += r.bytes;
  }
  if (room >= need) {
    plan.action = BudgetPlan::Action::kEvict;
    return plan;
  }
  plan.evict.clear();
  // Busy (unpinned) versions become idle eventually, and so do those
  // being loaded.
  int64_t ever = budget - used + freeing + loading;
  for (const BudgetResident& r : residents) {
    if (!r.pinned) ever += r.bytes;
  }
  plan.action = ever >= need ? BudgetPlan::Action::kWaitIdle : BudgetPlan::Action::kRefuse;
  return plan;
}

}  // namespace inferd
