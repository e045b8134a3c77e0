#pragma once
// ChooseBatch: the dynamic batcher's decision, as a pure function of the
// queue, the time and the number of idle workers, so that it can be tested
// exactly.
//
// Rule, over the queued tasks in service order (FIFO, or the priority and
// fair-share order of sched/priority_fair_queue.h):
//  - a batch holds tasks with the first task's shape signature only, in
//    service order, up to a cap of max_batch_size items;
//  - when several workers are idle, the caller's cap is its fair share of
//    the queued items of that shape (rounded up), so idle instances start at
//    once on smaller batches instead of one instance running a large batch
//    while the others wait; on CPU, two instances at batch b outrun one at 2b;
//  - a batch that reaches its cap is dispatched at once; so is the longest
//    prefix reaching a preferred batch size; otherwise the batch waits until
//    the oldest task it sees has waited max_queue_delay (or `flush` is set);
//  - a batch cut at a fair share says so (share_left), so that the caller
//    lets the other idle workers dispatch the rest without waiting;
//  - with batching off, each task is a batch of its own.

#include <deque>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "sched/task.h"

namespace inferd {

struct BatchPolicy {
  bool batching = false;
  int64_t max_batch_size = 1;
  Duration max_queue_delay{};
  std::vector<int64_t> preferred_batch_sizes;
};

struct BatchChoice {
  std::vector<size_t> picked;  // queue positions to take now; empty: wait
  Time wake_at = Time::max();  // when waiting: when a batch falls due (max: on arrivals only)
  // The batch was cut at the caller's fair share and tasks of its shape
  // remain: the other idle workers should take their shares now too, not
  // wait for the delay (they see one idle worker fewer, hence a larger cap).
  bool share_left = false;
};

// `ordered`: the queued tasks in service order (or a prefix of them);
// `picked` indexes it. `idle_workers` counts the workers free to run a
// batch now, the caller included (>= 1). `flush` dispatches without
// waiting for the delay.
BatchChoice ChooseBatch(const std::vector<const Task*>& ordered, Time now,
                        const BatchPolicy& policy, int idle_workers, bool flush);
// The same over a FIFO queue.
BatchChoice ChooseBatch(const std::deque<std::unique_ptr<Task>>& queue, Time now,
                        const BatchPolicy& policy, int idle_workers, bool flush);

}  // namespace inferd
