#pragma once
// PriorityFairQueue: the dynamic batcher's queue (docs/design-admission.md
// sections 5-7). Tasks wait in priority levels (1 is the highest); within
// a level, tenants share the service by weight through start-time fair
// queueing (SFQ); lower levels are never starved, by a guaranteed share.
//
//  - Service order (View): level 1 first, then 2, ... Within a level, by
//    SFQ start tag: a task of tenant i with weight w and cost c items gets
//    S = max(V, F[i]) and moves F[i] to S + c/w, where V is the largest
//    start tag served so far in the level. A tenant that floods runs its
//    tags ahead of V; a polite tenant's next task starts at V and goes to
//    the front.
//  - Guaranteed share: with share s > 0, every ceil(1/s)-th batch starts
//    at the non-empty lower level served least recently, so a level below
//    the highest busy one waits at most ceil(1/s) * (levels - 1) batches
//    (a test proves the bound, and that s = 0 starves). Chosen over aging:
//    it caps what lower levels take from the top, so the high class's
//    latency stays predictable, and the tags of different levels never
//    need to be compared.
//  - Timeout action "delay" (Triton's DELAY): a task past its queue
//    timeout moves behind every task of its level that is not.
//  - Overload (EvictWorseThan): the worst-ranked task is the lowest
//    level's last one; it is pushed out for a newcomer that ranks above it.
//
// One level and one tenant is FIFO. Not thread-safe: the batcher's lock
// guards it.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "sched/task.h"

namespace inferd {

class PriorityFairQueue {
 public:
  static constexpr int kMaxLevels = 16;
  struct Options {
    int levels = 1;                  // 1..kMaxLevels
    double lower_level_share = 0.1;  // 0, or 0.001..0.5; 0: strict priority (may starve)
    size_t max_size = 1024;          // tasks over all levels
    // Per level (index level - 1); absent or 0: only max_size bounds it.
    std::vector<size_t> max_level_size;
  };
  // Service order within a level: undelayed before delayed, then by start
  // tag, then by arrival.
  struct Key {
    bool delayed = false;
    uint64_t tag = 0;
    uint64_t seq = 0;
    bool operator<(const Key& o) const {
      if (delayed != o.delayed) return !delayed;
      if (tag != o.tag) return tag < o.tag;
      return seq < o.seq;
    }
  };
  struct Ref {
    int level = 1;
    Key key;
  };

  explicit PriorityFairQueue(Options options);

  // Queues `task` at its queue_key() (level clamped to 1..levels).
  // ResourceExhausted when the queue or the level is full; the caller then
  // still owns the task.
  Status Push(std::unique_ptr<Task>& task);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t level_size(int level) const;
  int levels() const { return static_cast<int>(levels_.size()); }

  // The first `max` tasks in service order, and where each is.
  void View(size_t max, std::vector<const Task*>* tasks, std::vector<Ref>* refs) const;
  // Moves the tasks at refs[picked[0]], refs[picked[1]], ... into *out, in
  // that order, and counts one batch.
  void Take(const std::vector<Ref>& refs, const std::vector<size_t>& picked, TaskBatch* out);

  // Moves the tasks that may no longer run (cancelled, or past their
  // deadline) to *dropped, moves tasks past their queue timeout behind
  // their level, and returns the next time either can happen again.
  Time TakeDropped(Time now, TaskBatch* dropped);

  // Removes and returns the worst-ranked task if it ranks below a
  // newcomer with `key`: a lower level, or the same level with a task that
  // is delayed or would be served after the newcomer. Else null.
  std::unique_ptr<Task> EvictWorseThan(const QueueKey& key);

  // Queued tasks per tenant id (out grows to the largest id seen).
  void CountByTenant(std::vector<int64_t>* out) const;

 private:
  static constexpr uint64_t kTagScale = uint64_t{1} << 20;
  struct Entry {
    std::unique_ptr<Task> task;
    uint64_t finish = 0;  // the tenant's finish tag after this task
  };
  struct Level {
    std::map<Key, Entry> tasks;
    uint64_t virtual_time = 0;     // V: the largest start tag served
    std::vector<uint64_t> finish;  // F per tenant id
    uint64_t last_served = 0;      // batch count when it was last served
  };
  uint64_t& FinishOf(Level& level, uint32_t tenant);
  // The tenant's finish tag moves back if `e` was its last task, so that
  // work never served is not charged.
  void Forget(Level& level, const Key& key, const Entry& e);
  // A level becoming empty forgets what tenants were ahead (F <= V).
  void Settle(Level& level);
  // The lower level that this batch serves first (guaranteed share), or 0.
  int ShareLevel() const;

  const Options options_;
  std::vector<Level> levels_;
  size_t size_ = 0;
  uint64_t batches_ = 0;
  uint64_t seq_ = 0;
};

}  // namespace inferd
