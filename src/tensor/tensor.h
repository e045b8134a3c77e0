#pragma once
// Tensor: a typed, shaped view of contiguous bytes that shares ownership of
// its storage. Storage may be a buffer the tensor owns, part of an HTTP body
// (binary tensor extension: zero-copy), or a backend's output (e.g. libtorch
// storage kept alive through an opaque owner). Copying a Tensor is cheap and
// never copies the bytes. Immutable after construction; safe to share.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/data_type.h"

namespace inferd {

using Shape = std::vector<int64_t>;

// Product of dims; -1 if any dim is negative or the product overflows int64.
int64_t ElementCount(const Shape& shape);
// The bytes a tensor of fixed-size `dtype` and `shape` holds; -1 when the
// shape is invalid or the size does not fit in int64 (never wraps), and for
// BYTES, whose size depends on its elements.
int64_t FixedByteSize(DataType dtype, const Shape& shape);
// "[1,3,224,224]"
std::string ShapeToString(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // Takes ownership of `bytes`.
  static Tensor FromBytes(DataType dtype, Shape shape, std::string bytes);
  // Views `size` bytes at `data`, kept alive by `owner`.
  static Tensor View(DataType dtype, Shape shape, const uint8_t* data, size_t size,
                     std::shared_ptr<const void> owner);

  DataType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const uint8_t* data() const { return data_; }
  size_t byte_size() const { return size_; }
  std::string_view bytes() const {
    return std::string_view(reinterpret_cast<const char*>(data_), size_);
  }
  int64_t element_count() const { return ElementCount(shape_); }
  const std::shared_ptr<const void>& owner() const { return owner_; }

  // A view of `size` bytes starting at `offset`, with a new shape, sharing
  // this tensor's storage.
  Tensor Slice(size_t offset, size_t size, Shape shape) const;

 private:
  DataType dtype_ = DataType::kFp32;
  Shape shape_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::shared_ptr<const void> owner_;
};

// For BYTES tensors in binary form: checks that `bytes` is a sequence of
// exactly `count` length-prefixed elements. Returns false otherwise.
bool ValidateBytesElements(std::string_view bytes, int64_t count);

}  // namespace inferd
