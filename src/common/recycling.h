#pragma once
// Per-thread recycling of one block per type, for objects made and dropped
// once per request on the same thread (a memo hit's exchange, its pending
// answer): the next one takes the block the last one left, instead of a
// malloc and a free (about 150 instructions a pair, docs/benchmarks.md).
// A block freed on another thread is kept by that thread, or freed when its
// slot is full; each thread frees what it keeps when it exits. Under
// AddressSanitizer nothing is kept, so that a use after free is still seen.
// Blocks go back with the unsized global operator delete (clang 14 has the
// sized one only with -fsized-deallocation).
//
//   class Exchange : public Recycled<Exchange> { ... };     // operator new/delete
//   std::allocate_shared<T>(RecyclingAllocator<T>(), ...)   // one block: object + counts
//   std::vector<char, RecyclingAllocator<char, 256>>          // its blocks of 256 bytes

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace inferd {
namespace recycling_internal {

#if defined(__SANITIZE_ADDRESS__)
#define INFERD_RECYCLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define INFERD_RECYCLE 0
#endif
#endif
#ifndef INFERD_RECYCLE
#define INFERD_RECYCLE 1
#endif

// The calling thread's slot for the blocks of `Size` bytes of `Tag` (one
// slot per user: two users of one size would take each other's block). Trivial, so
// reaching it costs no guard; the Closer, armed when the slot first keeps a
// block, frees it when the thread exits and closes the slot, so that a
// block freed later in the thread's exit is not kept (and leaked).
template <typename Tag, size_t Size>
struct Slot {
  void* block = nullptr;
  bool armed = false;
  bool closed = false;
};

template <typename Tag, size_t Size>
Slot<Tag, Size>& MySlot() {
  static thread_local Slot<Tag, Size> slot;
  return slot;
}

template <typename Tag, size_t Size>
struct Closer {
  ~Closer() {
    Slot<Tag, Size>& slot = MySlot<Tag, Size>();
    ::operator delete(slot.block);
    slot.block = nullptr;
    slot.closed = true;
  }
};

template <typename Tag, size_t Size>
void* Take() {
#if INFERD_RECYCLE
  Slot<Tag, Size>& slot = MySlot<Tag, Size>();
  if (slot.block != nullptr) return std::exchange(slot.block, nullptr);
#endif
  return ::operator new(Size);
}

template <typename Tag, size_t Size>
void Give(void* block) noexcept {
#if INFERD_RECYCLE
  Slot<Tag, Size>& slot = MySlot<Tag, Size>();
  if (slot.block == nullptr && !slot.closed) {
    if (!slot.armed) {
      static thread_local Closer<Tag, Size> closer;
      (void)closer;
      slot.armed = true;
    }
    slot.block = block;
    return;
  }
#endif
  ::operator delete(block);
}

}  // namespace recycling_internal

// Base of a class whose objects are recycled: `new T` and `delete` (also
// through a base with a virtual destructor) use the calling thread's slot.
// Blocks of other sizes (a derived class) go to the global operator new.
template <typename T>
class Recycled {
 public:
  static void* operator new(size_t n) {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "over-aligned types not kept");
    if (n != sizeof(T)) return ::operator new(n);
    return recycling_internal::Take<T, sizeof(T)>();
  }
  static void operator delete(void* p, size_t n) noexcept {
    if (n != sizeof(T)) {
      ::operator delete(p);
      return;
    }
    recycling_internal::Give<T, sizeof(T)>(p);
  }
};

// An allocator that recycles blocks of `Keep` objects (the one object
// of std::allocate_shared; the usual first block of a buffer that grows, such
// as a response's fields); other sizes go to the global operator new.
template <typename T, size_t Keep = 1>
class RecyclingAllocator {
 public:
  using value_type = T;
  using is_always_equal = std::true_type;  // stateless: any one frees what another made
  using propagate_on_container_move_assignment = std::true_type;
  template <typename U>
  struct rebind {
    using other = RecyclingAllocator<U, Keep>;
  };
  RecyclingAllocator() = default;
  template <typename U>
  RecyclingAllocator(const RecyclingAllocator<U, Keep>&) {}  // NOLINT: rebinding is implicit

  T* allocate(size_t n) {
    static_assert(alignof(T) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "over-aligned types not kept");
    if (n != Keep) return static_cast<T*>(::operator new(n * sizeof(T)));
    return static_cast<T*>(recycling_internal::Take<T, Keep * sizeof(T)>());
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n != Keep) {
      ::operator delete(p);
      return;
    }
    recycling_internal::Give<T, Keep * sizeof(T)>(p);
  }
  template <typename U>
  bool operator==(const RecyclingAllocator<U, Keep>&) const {
    return true;
  }
  template <typename U>
  bool operator!=(const RecyclingAllocator<U, Keep>&) const {
    return false;
  }
};

}  // namespace inferd
