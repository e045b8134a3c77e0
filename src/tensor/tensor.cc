#include "tensor/tensor.h"

#include <cstring>

namespace inferd {

int64_t ElementCount(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > INT64_MAX / d) return -1;
    n *= d;
  }
  return n;
}

int64_t FixedByteSize(DataType dtype, const Shape& shape) {
  int64_t n = ElementCount(shape);
  int64_t width = static_cast<int64_t>(DataTypeSize(dtype));
  if (n < 0 || dtype == DataType::kBytes || n > INT64_MAX / width) return -1;
  return n * width;
}

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Tensor Tensor::FromBytes(DataType dtype, Shape shape, std::string bytes) {
  auto owned = std::make_shared<const std::string>(std::move(bytes));
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = reinterpret_cast<const uint8_t*>(owned->data());
  t.size_ = owned->size();
  t.owner_ = std::move(owned);
  return t;
}

Tensor Tensor::View(DataType dtype, Shape shape, const uint8_t* data, size_t size,
                    std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  t.size_ = size;
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::Slice(size_t offset, size_t size, Shape shape) const {
  return View(dtype_, std::move(shape), data_ + offset, size, owner_);
}

bool ValidateBytesElements(std::string_view bytes, int64_t count) {
  size_t pos = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (bytes.size() - pos < 4) return false;
    uint32_t len;
    std::memcpy(&len, bytes.data() + pos, 4);  // little-endian hosts only (x86, arm64)
    pos += 4;
    if (bytes.size() - pos < len) return false;
    pos += len;
  }
  return pos == bytes.size();
}

}  // namespace inferd
