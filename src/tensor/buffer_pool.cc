#include "tensor/buffer_pool.h"

namespace inferd {

BufferPool::BufferPool(Options options) : state_(std::make_shared<State>()) {
  state_->max_free = options.max_free;
}

std::shared_ptr<std::vector<uint8_t>> BufferPool::Acquire(size_t size) {
  std::unique_ptr<std::vector<uint8_t>> buf;
  {
    MutexLock l(&state_->mu);
    // Prefer the smallest idle buffer that already has the capacity.
    size_t best = state_->free.size();
    for (size_t i = 0; i < state_->free.size(); ++i) {
      if (state_->free[i]->capacity() >= size &&
          (best == state_->free.size() ||
           state_->free[i]->capacity() < state_->free[best]->capacity())) {
        best = i;
      }
    }
    if (best == state_->free.size() && !state_->free.empty()) best = 0;  // grow one
    if (best < state_->free.size()) {
      buf = std::move(state_->free[best]);
      state_->free.erase(state_->free.begin() + static_cast<long>(best));
    }
    if (!buf || buf->capacity() < size) ++state_->allocations;
  }
  if (!buf) buf = std::make_unique<std::vector<uint8_t>>();
  buf->resize(size);
  const auto bytes = static_cast<int64_t>(buf->capacity());
  {
    MutexLock l(&state_->mu);
    ++state_->in_use;
    state_->in_use_bytes += bytes;
  }
  std::weak_ptr<State> weak = state_;
  return std::shared_ptr<std::vector<uint8_t>>(buf.release(),
                                               [weak, bytes](std::vector<uint8_t>* b) {
                                                 if (auto state = weak.lock()) {
                                                   MutexLock l(&state->mu);
                                                   --state->in_use;
                                                   state->in_use_bytes -= bytes;
                                                   if (state->free.size() < state->max_free) {
                                                     state->free.emplace_back(b);
                                                     return;
                                                   }
                                                 }
                                                 delete b;
                                               });
}

BufferPool::Stats BufferPool::stats() const {
  Stats s;
  MutexLock l(&state_->mu);
  s.idle = static_cast<int64_t>(state_->free.size());
  for (const auto& b : state_->free) s.idle_bytes += static_cast<int64_t>(b->capacity());
  s.in_use = state_->in_use;
  s.in_use_bytes = state_->in_use_bytes;
  return s;
}

int64_t BufferPool::allocations() const {
  MutexLock l(&state_->mu);
  return state_->allocations;
}

}  // namespace inferd
