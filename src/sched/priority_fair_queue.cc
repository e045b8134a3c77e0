#include "sched/priority_fair_queue.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace inferd {

PriorityFairQueue::PriorityFairQueue(Options options)
    : options_(std::move(options)),
      levels_(static_cast<size_t>(std::clamp(options_.levels, 1, kMaxLevels))) {}

size_t PriorityFairQueue::level_size(int level) const {
  if (level < 1 || level > levels()) return 0;
  return levels_[static_cast<size_t>(level - 1)].tasks.size();
}

uint64_t& PriorityFairQueue::FinishOf(Level& level, uint32_t tenant) {
  if (tenant >= level.finish.size()) level.finish.resize(tenant + 1, 0);
  return level.finish[tenant];
}

Status PriorityFairQueue::Push(std::unique_ptr<Task>& task) {
  QueueKey qk = task->queue_key();
  qk.level = std::clamp(qk.level, 1, levels());
  qk.weight = std::max<uint32_t>(1, qk.weight);
  task->set_queue_key(qk);
  const size_t li = static_cast<size_t>(qk.level - 1);
  if (size_ >= options_.max_size) {
    return ResourceExhaustedError("queue is full (" + std::to_string(options_.max_size) +
                                  " requests)");
  }
  if (li < options_.max_level_size.size() && options_.max_level_size[li] > 0 &&
      levels_[li].tasks.size() >= options_.max_level_size[li]) {
    return ResourceExhaustedError("the queue of priority " + std::to_string(qk.level) +
                                  " is full (" + std::to_string(options_.max_level_size[li]) +
                                  " requests)");
  }
  Level& level = levels_[li];
  uint64_t& finish = FinishOf(level, qk.tenant);
  const uint64_t start = std::max(level.virtual_time, finish);
  const uint64_t cost =
      static_cast<uint64_t>(std::max<int64_t>(1, task->batch_size())) * kTagScale / qk.weight;
  finish = start + std::max<uint64_t>(1, cost);
  level.tasks.emplace(Key{false, start, seq_++}, Entry{std::move(task), finish});
  ++size_;
  return Status::OK();
}

int PriorityFairQueue::ShareLevel() const {
  if (options_.lower_level_share <= 0 || levels() < 2) return 0;
  // share >= 0.001 (checked by the batcher): period <= 1000.
  const auto period =
      static_cast<uint64_t>(std::ceil(1.0 / std::max(options_.lower_level_share, 0.001)));
  if (period < 2 || batches_ % period != period - 1) return 0;
  int top = 0;
  for (int l = 1; l <= levels() && top == 0; ++l) {
    if (!levels_[static_cast<size_t>(l - 1)].tasks.empty()) top = l;
  }
  int chosen = 0;
  for (int l = top + 1; top > 0 && l <= levels(); ++l) {
    const Level& level = levels_[static_cast<size_t>(l - 1)];
    if (level.tasks.empty()) continue;
    if (chosen == 0 || level.last_served < levels_[static_cast<size_t>(chosen - 1)].last_served)
      chosen = l;
  }
  return chosen;
}

void PriorityFairQueue::View(size_t max, std::vector<const Task*>* tasks,
                             std::vector<Ref>* refs) const {
  tasks->clear();
  refs->clear();
  auto add_level = [&](int l) {
    for (const auto& [key, entry] : levels_[static_cast<size_t>(l - 1)].tasks) {
      if (tasks->size() >= max) return;
      tasks->push_back(entry.task.get());
      refs->push_back(Ref{l, key});
    }
  };
  const int first = ShareLevel();
  if (first > 0) add_level(first);
  for (int l = 1; l <= levels() && tasks->size() < max; ++l) {
    if (l != first) add_level(l);
  }
}

void PriorityFairQueue::Take(const std::vector<Ref>& refs, const std::vector<size_t>& picked,
                             TaskBatch* out) {
  if (picked.empty()) return;
  ++batches_;
  for (size_t i : picked) {
    const Ref& ref = refs[i];
    Level& level = levels_[static_cast<size_t>(ref.level - 1)];
    auto it = level.tasks.find(ref.key);
    if (it == level.tasks.end()) continue;
    level.virtual_time = std::max(level.virtual_time, ref.key.tag);
    level.last_served = batches_;
    out->push_back(std::move(it->second.task));
    level.tasks.erase(it);
    --size_;
    Settle(level);
  }
}

void PriorityFairQueue::Forget(Level& level, const Key& key, const Entry& e) {
  uint64_t& finish = FinishOf(level, e.task->queue_key().tenant);
  if (finish == e.finish) finish = key.tag;
}

void PriorityFairQueue::Settle(Level& level) {
  if (!level.tasks.empty()) return;
  for (uint64_t& f : level.finish) f = std::min(f, level.virtual_time);
}

Time PriorityFairQueue::TakeDropped(Time now, TaskBatch* dropped) {
  Time next = Time::max();
  std::vector<std::pair<Key, Entry>> delayed;
  for (Level& level : levels_) {
    for (auto it = level.tasks.begin(); it != level.tasks.end();) {
      Task& t = *it->second.task;
      if (!t.DropReason(now).ok()) {
        Forget(level, it->first, it->second);
        dropped->push_back(std::move(it->second.task));
        it = level.tasks.erase(it);
        --size_;
        continue;
      }
      next = std::min(next, t.deadline());
      if (!it->first.delayed) {
        if (t.queue_timeout() <= now) {
          Key k = it->first;
          k.delayed = true;
          delayed.emplace_back(k, std::move(it->second));
          it = level.tasks.erase(it);
          continue;
        }
        next = std::min(next, t.queue_timeout());
      }
      ++it;
    }
    for (auto& [key, entry] : delayed) level.tasks.emplace(key, std::move(entry));
    delayed.clear();
    Settle(level);
  }
  return next;
}

std::unique_ptr<Task> PriorityFairQueue::EvictWorseThan(const QueueKey& key) {
  for (int l = levels(); l >= 1; --l) {
    Level& level = levels_[static_cast<size_t>(l - 1)];
    if (level.tasks.empty()) continue;
    auto last = std::prev(level.tasks.end());
    const int newcomer = std::clamp(key.level, 1, levels());
    bool worse = l > newcomer;
    if (l == newcomer) {
      const uint64_t would_start =
          std::max(level.virtual_time,
                   key.tenant < level.finish.size() ? level.finish[key.tenant] : uint64_t{0});
      worse = last->first.delayed || last->first.tag > would_start;
    }
    if (!worse) return nullptr;
    Forget(level, last->first, last->second);
    std::unique_ptr<Task> victim = std::move(last->second.task);
    level.tasks.erase(last);
    --size_;
    Settle(level);
    return victim;
  }
  return nullptr;
}

void PriorityFairQueue::CountByTenant(std::vector<int64_t>* out) const {
  for (const Level& level : levels_) {
    for (const auto& [key, entry] : level.tasks) {
      const uint32_t t = entry.task->queue_key().tenant;
      if (t >= out->size()) out->resize(t + 1, 0);
      ++(*out)[t];
    }
  }
}

}  // namespace inferd
