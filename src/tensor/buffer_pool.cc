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
  std::weak_ptr<State> weak = state_;
  return std::shared_ptr<std::vector<uint8_t>>(buf.release(), [weak](std::vector<uint8_t>* b) {
    if (auto state = weak.lock()) {
      MutexLock l(&state->mu);
      if (state->free.size() < state->max_free) {
        state->free.emplace_back(b);
        return;
      }
    }
    delete b;
  });
}

int64_t BufferPool::allocations() const {
  MutexLock l(&state_->mu);
  return state_->allocations;
}

}  // namespace inferd
