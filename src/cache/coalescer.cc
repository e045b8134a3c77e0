#include "cache/coalescer.h"

namespace inferd {

Coalescer::Coalescer(Clock* clock) : clock_(clock ? clock : Clock::System()) {
  deadline_thread_ = std::thread([this] { DeadlineLoop(); });
}

Coalescer::~Coalescer() {
  std::vector<Waiter> orphans;
  {
    MutexLock l(&mu_);
    stopping_ = true;
    for (auto& [d, flights] : flights_) {
      for (auto& f : flights) {
        for (auto& w : f.waiters) orphans.push_back(std::move(w.fn));
      }
    }
    flights_.clear();
  }
  cv_.SignalAll();
  deadline_thread_.join();
  for (auto& fn : orphans) fn(UnavailableError("the server is shutting down"));
}

bool Coalescer::Join(const CacheKey& key, Time deadline, Waiter waiter) {
  MutexLock l(&mu_);
  auto& flights = flights_[key.digest];
  for (auto& f : flights) {
    if (f.check != key.check) continue;
    uint64_t id = next_id_++;
    f.waiters.push_back({id, deadline, std::move(waiter)});
    deadlines_.emplace(deadline, std::make_pair(key.digest, id));
    ++waiting_;
    cv_.SignalAll();
    return false;
  }
  flights.push_back({key.check, {}});
  return true;
}

void Coalescer::Complete(const CacheKey& key, Result result) {
  std::vector<Waiter> to_call;
  {
    MutexLock l(&mu_);
    auto it = flights_.find(key.digest);
    if (it == flights_.end()) return;
    auto& flights = it->second;
    for (size_t i = 0; i < flights.size(); ++i) {
      if (flights[i].check != key.check) continue;
      for (auto& w : flights[i].waiters) to_call.push_back(std::move(w.fn));
      flights.erase(flights.begin() + static_cast<long>(i));
      break;
    }
    if (flights.empty()) flights_.erase(it);
    waiting_ -= static_cast<int64_t>(to_call.size());
    coalesced_ += static_cast<int64_t>(to_call.size());
    // Their deadline records stay in deadlines_ and are skipped when due.
  }
  for (auto& fn : to_call) fn(result);
}

void Coalescer::DeadlineLoop() {
  MutexLock l(&mu_);
  while (!stopping_) {
    if (deadlines_.empty()) {
      cv_.Wait(&mu_);
      continue;
    }
    Time first = deadlines_.begin()->first;
    if (clock_->Now() < first) {
      clock_->WaitUntil(&cv_, &mu_, first);
      continue;
    }
    auto [digest, id] = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    Waiter expired;
    auto it = flights_.find(digest);
    if (it != flights_.end()) {
      for (auto& f : it->second) {
        for (size_t i = 0; i < f.waiters.size(); ++i) {
          if (f.waiters[i].id != id) continue;
          expired = std::move(f.waiters[i].fn);
          f.waiters.erase(f.waiters.begin() + static_cast<long>(i));
          break;
        }
        if (expired) break;
      }
    }
    if (!expired) continue;  // already answered by its leader
    --waiting_;
    mu_.Unlock();
    expired(DeadlineExceededError("timed out waiting for an identical request in flight"));
    mu_.Lock();
  }
}

int64_t Coalescer::waiting() {
  MutexLock l(&mu_);
  return waiting_;
}

int64_t Coalescer::coalesced_total() {
  MutexLock l(&mu_);
  return coalesced_;
}

}  // namespace inferd
