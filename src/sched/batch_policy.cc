#include "sched/batch_policy.h"

#include <algorithm>

namespace inferd {

BatchChoice ChooseBatch(const std::deque<std::unique_ptr<Task>>& queue, Time now,
                        const BatchPolicy& policy, int idle_workers, bool flush) {
  std::vector<const Task*> ordered;
  ordered.reserve(queue.size());
  for (const auto& t : queue) ordered.push_back(t.get());
  return ChooseBatch(ordered, now, policy, idle_workers, flush);
}

BatchChoice ChooseBatch(const std::vector<const Task*>& queue, Time now, const BatchPolicy& policy,
                        int idle_workers, bool flush) {
  BatchChoice choice;
  if (queue.empty()) return choice;
  if (!policy.batching) {
    choice.picked.push_back(0);
    return choice;
  }
  const std::string& signature = queue.front()->shape_signature();
  int64_t cap = policy.max_batch_size;
  int64_t queued = 0;  // items of the oldest task's shape (counted when sharing)
  if (idle_workers > 1) {
    for (const Task* t : queue) {
      if (t->shape_signature() == signature) queued += t->batch_size();
    }
    cap = std::min(cap, std::max<int64_t>(1, (queued + idle_workers - 1) / idle_workers));
  }
  int64_t total = 0;
  size_t preferred_prefix = 0;  // picked tasks forming the largest preferred size
  const auto& pref = policy.preferred_batch_sizes;
  for (size_t i = 0; i < queue.size() && total < cap; ++i) {
    const Task& t = *queue[i];
    if (t.shape_signature() != signature) continue;
    // The first task always fits: Enqueue bounds it by max_batch_size.
    if (!choice.picked.empty() && total + t.batch_size() > cap) break;
    total += t.batch_size();
    choice.picked.push_back(i);
    if (std::find(pref.begin(), pref.end(), total) != pref.end()) {
      preferred_prefix = choice.picked.size();
    }
  }
  Time oldest = Time::max();
  for (const Task* t : queue) oldest = std::min(oldest, t->timings().enqueued);
  Time due = oldest + policy.max_queue_delay;
  if (total >= cap || now >= due || flush) {
    choice.share_left = cap < policy.max_batch_size && total < queued;
    return choice;
  }
  if (preferred_prefix > 0) {
    choice.picked.resize(preferred_prefix);
    return choice;
  }
  choice.picked.clear();
  choice.wake_at = due;
  return choice;
}

}  // namespace inferd
