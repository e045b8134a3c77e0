#pragma once
// FieldBytes: the bytes of a response's header fields ("Name: value\r\n"
// lines), a buffer that grows without zero-filling what it adds and whose
// first block (Block bytes) is recycled from response to response on the
// same thread. Extend() is the whole cost of adding a field when the room is
// there: a compare and an add (a boost::container::vector's resize with
// default_init took about 40 instructions per field, docs/benchmarks.md).
//
// Threading: none (one response's).

#include <cstddef>
#include <cstring>
#include <utility>

#include "common/recycling.h"

namespace inferd::http {

template <size_t Block>
class FieldBytes {
 public:
  FieldBytes() = default;
  FieldBytes(const FieldBytes& other) {
    if (other.size_ != 0) std::memcpy(Extend(other.size_), other.data_, other.size_);
  }
  FieldBytes(FieldBytes&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  FieldBytes& operator=(FieldBytes other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
    return *this;
  }
  ~FieldBytes() { Free(data_, capacity_); }

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  size_t room() const { return capacity_ - size_; }

  // Adds `n` bytes at the end, left for the caller to write, and returns
  // where they start. Growing moves the bytes: views into them end.
  char* Extend(size_t n) {
    if (capacity_ - size_ < n) Grow(size_ + n);
    char* p = data_ + size_;
    size_ += n;
    return p;
  }

  // Removes [begin, end).
  void Erase(size_t begin, size_t end) {
    std::memmove(data_ + begin, data_ + end, size_ - end);
    size_ -= end - begin;
  }

 private:
  using Alloc = RecyclingAllocator<char, Block>;

  static void Free(char* p, size_t capacity) {
    if (p != nullptr) Alloc().deallocate(p, capacity);
  }

  void Grow(size_t needed) {
    size_t capacity = capacity_ == 0 ? Block : 2 * capacity_;
    while (capacity < needed) capacity *= 2;
    char* p = Alloc().allocate(capacity);
    if (size_ != 0) std::memcpy(p, data_, size_);
    Free(data_, capacity_);
    data_ = p;
    capacity_ = capacity;
  }

  char* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace inferd::http
