#include "tensor/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "tensor/buffer_pool.h"
#include "tensor/data_type.h"

namespace inferd {
namespace {

// ---------------------------------------------------------------- DataType

struct TypeInfo {
  DataType type;
  const char* name;
  size_t size;
};

constexpr TypeInfo kTypes[] = {
    {DataType::kBool, "BOOL", 1},     {DataType::kUint8, "UINT8", 1},
    {DataType::kUint16, "UINT16", 2}, {DataType::kUint32, "UINT32", 4},
    {DataType::kUint64, "UINT64", 8}, {DataType::kInt8, "INT8", 1},
    {DataType::kInt16, "INT16", 2},   {DataType::kInt32, "INT32", 4},
    {DataType::kInt64, "INT64", 8},   {DataType::kFp16, "FP16", 2},
    {DataType::kFp32, "FP32", 4},     {DataType::kFp64, "FP64", 8},
    {DataType::kBytes, "BYTES", 0},
};

TEST(DataTypeTest, NamesRoundTripAndSizes) {
  for (const auto& t : kTypes) {
    EXPECT_EQ(DataTypeName(t.type), t.name);
    auto parsed = DataTypeFromName(t.name);
    ASSERT_TRUE(parsed.has_value()) << t.name;
    EXPECT_EQ(*parsed, t.type) << t.name;
    EXPECT_EQ(DataTypeSize(t.type), t.size) << t.name;
  }
}

TEST(DataTypeTest, UnknownNames) {
  EXPECT_FALSE(DataTypeFromName("").has_value());
  EXPECT_FALSE(DataTypeFromName("fp32").has_value());  // names are case-sensitive
  EXPECT_FALSE(DataTypeFromName("FLOAT32").has_value());
  EXPECT_FALSE(DataTypeFromName("BF16").has_value());
  EXPECT_FALSE(DataTypeFromName("FP32 ").has_value());
}

// ---------------------------------------------------------------- FP16

uint32_t FloatBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return x;
}

bool IsHalfNan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

TEST(Fp16Test, ExactValues) {
  struct Case {
    float f;
    uint16_t h;
  };
  const Case cases[] = {
      {0.0f, 0x0000},
      {1.0f, 0x3c00},
      {-1.0f, 0xbc00},
      {2.0f, 0x4000},
      {-2.0f, 0xc000},
      {0.5f, 0x3800},
      {1.5f, 0x3e00},
      {0.333251953125f, 0x3555},        // nearest half to 1/3
      {65504.0f, 0x7bff},               // largest finite half
      {std::ldexp(1.0f, -14), 0x0400},  // smallest normal
      {1.0f + std::ldexp(1.0f, -10), 0x3c01},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(FloatToHalf(c.f), c.h) << c.f;
    EXPECT_EQ(HalfToFloat(c.h), c.f) << c.h;
  }
}

TEST(Fp16Test, SignedZero) {
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  float nz = HalfToFloat(0x8000);
  EXPECT_EQ(nz, 0.0f);
  EXPECT_TRUE(std::signbit(nz));
  EXPECT_FALSE(std::signbit(HalfToFloat(0x0000)));
}

TEST(Fp16Test, RoundsToNearestEven) {
  const float ulp = std::ldexp(1.0f, -10);  // half ulp spacing in [1, 2)
  // Exactly halfway between 0x3c00 and 0x3c01: ties to even (0x3c00).
  EXPECT_EQ(FloatToHalf(1.0f + ulp / 2), 0x3c00);
  // Exactly halfway between 0x3c01 and 0x3c02: ties to even (0x3c02).
  EXPECT_EQ(FloatToHalf(1.0f + 3 * ulp / 2), 0x3c02);
  // Just above / below halfway.
  EXPECT_EQ(FloatToHalf(1.0f + ulp / 2 + std::ldexp(1.0f, -20)), 0x3c01);
  EXPECT_EQ(FloatToHalf(1.0f + ulp / 2 - std::ldexp(1.0f, -20)), 0x3c00);
  EXPECT_EQ(FloatToHalf(-(1.0f + 3 * ulp / 2)), 0xbc02);
  // Rounding carries into the exponent.
  EXPECT_EQ(FloatToHalf(2.0f - std::ldexp(1.0f, -12)), 0x4000);
}

TEST(Fp16Test, OverflowGoesToInfinity) {
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);  // below the halfway point to 65536
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // halfway: rounds to even, which is inf
  EXPECT_EQ(FloatToHalf(1e6f), 0x7c00);
  EXPECT_EQ(FloatToHalf(-1e6f), 0xfc00);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::max()), 0x7c00);
}

TEST(Fp16Test, Subnormals) {
  const float tiny = std::ldexp(1.0f, -24);  // smallest half subnormal
  EXPECT_EQ(FloatToHalf(tiny), 0x0001);
  EXPECT_EQ(HalfToFloat(0x0001), tiny);
  EXPECT_EQ(FloatToHalf(-tiny), 0x8001);
  EXPECT_EQ(HalfToFloat(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.0f, -24)), 0x03ff);
  EXPECT_EQ(HalfToFloat(0x0200), std::ldexp(1.0f, -15));
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -15)), 0x0200);
  // Half of the smallest subnormal ties to even: zero.
  EXPECT_EQ(FloatToHalf(tiny / 2), 0x0000);
  // Just above it rounds up.
  EXPECT_EQ(FloatToHalf(tiny / 2 * 1.0001f), 0x0001);
  // 1.5 and 2.5 subnormal ulps tie to 2.
  EXPECT_EQ(FloatToHalf(tiny * 1.5f), 0x0002);
  EXPECT_EQ(FloatToHalf(tiny * 2.5f), 0x0002);
  // Far below the range: signed zero.
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(FloatToHalf(-std::ldexp(1.0f, -30)), 0x8000);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
  // Largest subnormal rounding up becomes the smallest normal.
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.75f, -24)), 0x0400);
}

TEST(Fp16Test, InfinityAndNan) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(FloatToHalf(inf), 0x7c00);
  EXPECT_EQ(FloatToHalf(-inf), 0xfc00);
  EXPECT_EQ(HalfToFloat(0x7c00), inf);
  EXPECT_EQ(HalfToFloat(0xfc00), -inf);
  EXPECT_TRUE(IsHalfNan(FloatToHalf(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(IsHalfNan(FloatToHalf(-std::numeric_limits<float>::quiet_NaN())));
  // A NaN whose payload sits only in the low float bits must stay a NaN.
  uint32_t low_payload = 0x7f800001u;
  float snan;
  std::memcpy(&snan, &low_payload, 4);
  EXPECT_TRUE(IsHalfNan(FloatToHalf(snan)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7c01)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0xfe00)));
}

TEST(Fp16Test, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    uint16_t half = static_cast<uint16_t>(h);
    float f = HalfToFloat(half);
    if (IsHalfNan(half)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
      ASSERT_TRUE(IsHalfNan(FloatToHalf(f))) << std::hex << h;
      continue;
    }
    ASSERT_EQ(FloatToHalf(f), half) << std::hex << h << " float bits " << FloatBits(f);
  }
}

TEST(Fp16Test, HalfToFloatIsMonotonic) {
  // Positive finite halves in order give strictly increasing floats.
  float prev = HalfToFloat(0);
  for (uint16_t h = 1; h < 0x7c00; ++h) {
    float f = HalfToFloat(h);
    ASSERT_GT(f, prev) << std::hex << h;
    prev = f;
  }
}

// ---------------------------------------------------------------- Shape

TEST(ShapeTest, ElementCount) {
  EXPECT_EQ(ElementCount({}), 1);
  EXPECT_EQ(ElementCount({5}), 5);
  EXPECT_EQ(ElementCount({2, 3, 4}), 24);
  EXPECT_EQ(ElementCount({1, 3, 224, 224}), 150528);
  EXPECT_EQ(ElementCount({0}), 0);
  EXPECT_EQ(ElementCount({3, 0, 5}), 0);
}

TEST(ShapeTest, ElementCountNegativeIsMinusOne) {
  EXPECT_EQ(ElementCount({-1}), -1);
  EXPECT_EQ(ElementCount({2, -1, 3}), -1);
  EXPECT_EQ(ElementCount({0, -1}), -1);
}

TEST(ShapeTest, ElementCountOverflowIsMinusOne) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(ElementCount({max}), max);
  EXPECT_EQ(ElementCount({max, 1}), max);
  EXPECT_EQ(ElementCount({max, 2}), -1);
  EXPECT_EQ(ElementCount({int64_t{1} << 32, int64_t{1} << 32}), -1);
  EXPECT_EQ(ElementCount({int64_t{1} << 62, 2}), -1);
  EXPECT_EQ(ElementCount({int64_t{1} << 31, int64_t{1} << 31}), int64_t{1} << 62);
  // A zero dimension after an overflow does not hide the overflow...
  EXPECT_EQ(ElementCount({max, 2, 0}), -1);
  // ...but a zero before it makes the count zero.
  EXPECT_EQ(ElementCount({0, max, 2}), 0);
}

TEST(ShapeTest, ShapeToString) {
  EXPECT_EQ(ShapeToString({}), "[]");
  EXPECT_EQ(ShapeToString({7}), "[7]");
  EXPECT_EQ(ShapeToString({1, 3, 224, 224}), "[1,3,224,224]");
  EXPECT_EQ(ShapeToString({-1, 4}), "[-1,4]");
}

// ---------------------------------------------------------------- Tensor

std::string FloatBytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

TEST(TensorTest, DefaultIsEmpty) {
  Tensor t;
  EXPECT_EQ(t.data(), nullptr);
  EXPECT_EQ(t.byte_size(), 0u);
  EXPECT_TRUE(t.shape().empty());
  EXPECT_EQ(t.owner(), nullptr);
}

TEST(TensorTest, FromBytesOwnsTheBytes) {
  std::string bytes = FloatBytes({1, 2, 3, 4, 5, 6});
  Tensor t = Tensor::FromBytes(DataType::kFp32, {2, 3}, bytes);
  EXPECT_EQ(t.dtype(), DataType::kFp32);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.element_count(), 6);
  EXPECT_EQ(t.byte_size(), 24u);
  EXPECT_EQ(t.bytes(), bytes);
  EXPECT_NE(t.owner(), nullptr);
  float third;
  std::memcpy(&third, t.data() + 8, 4);
  EXPECT_EQ(third, 3.0f);
}

TEST(TensorTest, CopiesShareStorage) {
  Tensor t = Tensor::FromBytes(DataType::kUint8, {4}, "abcd");
  Tensor copy = t;
  EXPECT_EQ(copy.data(), t.data());
  EXPECT_EQ(copy.owner(), t.owner());
  EXPECT_EQ(t.owner().use_count(), 2);
}

TEST(TensorTest, ViewKeepsOwnerAlive) {
  auto storage = std::make_shared<std::vector<uint8_t>>(std::vector<uint8_t>{1, 2, 3, 4});
  std::weak_ptr<std::vector<uint8_t>> weak = storage;
  const uint8_t* data = storage->data();
  Tensor v = Tensor::View(DataType::kUint8, {4}, data, 4, storage);
  storage.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(v.data(), data);
  EXPECT_EQ(v.byte_size(), 4u);
  EXPECT_EQ(v.data()[3], 4);
  v = Tensor();
  EXPECT_TRUE(weak.expired());
}

TEST(TensorTest, SliceSharesStorage) {
  Tensor t = Tensor::FromBytes(DataType::kFp32, {3, 2}, FloatBytes({1, 2, 3, 4, 5, 6}));
  std::weak_ptr<const void> weak = t.owner();
  Tensor row = t.Slice(2 * sizeof(float), 2 * sizeof(float), {1, 2});
  EXPECT_EQ(row.dtype(), DataType::kFp32);
  EXPECT_EQ(row.shape(), (Shape{1, 2}));
  EXPECT_EQ(row.data(), t.data() + 8);
  EXPECT_EQ(row.byte_size(), 8u);
  EXPECT_EQ(row.owner(), t.owner());
  EXPECT_EQ(row.bytes(), FloatBytes({3, 4}));

  // The slice alone keeps the original storage alive.
  t = Tensor();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(row.bytes(), FloatBytes({3, 4}));
  Tensor inner = row.Slice(4, 4, {1});
  EXPECT_EQ(inner.bytes(), FloatBytes({4}));
  row = Tensor();
  EXPECT_FALSE(weak.expired());
  inner = Tensor();
  EXPECT_TRUE(weak.expired());
}

// ---------------------------------------------------------------- BYTES

std::string LengthPrefixed(const std::vector<std::string>& elements) {
  std::string out;
  for (const auto& e : elements) {
    uint32_t len = static_cast<uint32_t>(e.size());
    out.append(reinterpret_cast<const char*>(&len), 4);
    out += e;
  }
  return out;
}

TEST(ValidateBytesElementsTest, AcceptsExactSequences) {
  EXPECT_TRUE(ValidateBytesElements("", 0));
  EXPECT_TRUE(ValidateBytesElements(LengthPrefixed({"hello"}), 1));
  EXPECT_TRUE(ValidateBytesElements(LengthPrefixed({"a", "", "xyz"}), 3));
  EXPECT_TRUE(ValidateBytesElements(LengthPrefixed({""}), 1));
  EXPECT_TRUE(ValidateBytesElements(LengthPrefixed({std::string("\0\1\2", 3)}), 1));
}

TEST(ValidateBytesElementsTest, RejectsWrongCountsAndTruncation) {
  std::string two = LengthPrefixed({"ab", "cde"});
  EXPECT_FALSE(ValidateBytesElements(two, 1));                            // left-over bytes
  EXPECT_FALSE(ValidateBytesElements(two, 3));                            // too few elements
  EXPECT_FALSE(ValidateBytesElements(two.substr(0, two.size() - 1), 2));  // truncated payload
  EXPECT_FALSE(ValidateBytesElements(two.substr(0, 2), 1));               // truncated length prefix
  EXPECT_FALSE(ValidateBytesElements("x", 0));
  // A length prefix pointing far past the end.
  std::string huge =
      "\xff\xff\xff\xff"
      "ab";
  EXPECT_FALSE(ValidateBytesElements(huge, 1));
}

// ---------------------------------------------------------------- BufferPool

TEST(BufferPoolTest, AcquireGivesExactSize) {
  BufferPool pool;
  auto a = pool.Acquire(100);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->size(), 100u);
  auto b = pool.Acquire(0);
  EXPECT_EQ(b->size(), 0u);
  EXPECT_NE(a.get(), b.get());
}

TEST(BufferPoolTest, ReusesReleasedBuffer) {
  BufferPool pool;
  const std::vector<uint8_t>* first;
  {
    auto a = pool.Acquire(1024);
    first = a.get();
    EXPECT_EQ(pool.allocations(), 1);
  }
  auto b = pool.Acquire(512);  // smaller fits in the released buffer
  EXPECT_EQ(b.get(), first);
  EXPECT_EQ(b->size(), 512u);
  EXPECT_GE(b->capacity(), 1024u);
  EXPECT_EQ(pool.allocations(), 1);
}

TEST(BufferPoolTest, SteadyStateDoesNotAllocate) {
  BufferPool pool;
  auto cycle = [&pool] {
    std::vector<std::shared_ptr<std::vector<uint8_t>>> held;
    for (size_t size : {4096u, 1000u, 64u, 4096u}) held.push_back(pool.Acquire(size));
  };
  cycle();
  const int64_t after_warmup = pool.allocations();
  EXPECT_EQ(after_warmup, 4);
  for (int i = 0; i < 100; ++i) cycle();
  EXPECT_EQ(pool.allocations(), after_warmup);
}

TEST(BufferPoolTest, PrefersTheSmallestBufferThatFits) {
  BufferPool pool;
  const std::vector<uint8_t>* small;
  const std::vector<uint8_t>* large;
  {
    auto s = pool.Acquire(100);
    auto l = pool.Acquire(10000);
    small = s.get();
    large = l.get();
  }
  auto a = pool.Acquire(50);
  EXPECT_EQ(a.get(), small);
  auto b = pool.Acquire(5000);
  EXPECT_EQ(b.get(), large);
  EXPECT_EQ(pool.allocations(), 2);
}

TEST(BufferPoolTest, GrowingAnIdleBufferCountsAsAllocation) {
  BufferPool pool;
  { auto a = pool.Acquire(16); }
  EXPECT_EQ(pool.allocations(), 1);
  auto b = pool.Acquire(1 << 20);
  EXPECT_EQ(b->size(), size_t{1} << 20);
  EXPECT_EQ(pool.allocations(), 2);
}

TEST(BufferPoolTest, KeepsAtMostMaxFreeIdleBuffers) {
  BufferPool pool(BufferPool::Options{.max_free = 1});
  {
    auto a = pool.Acquire(8);
    auto b = pool.Acquire(8);
    auto c = pool.Acquire(8);
  }
  EXPECT_EQ(pool.allocations(), 3);
  {
    auto a = pool.Acquire(8);  // the one idle buffer
    auto b = pool.Acquire(8);
    auto c = pool.Acquire(8);
  }
  EXPECT_EQ(pool.allocations(), 5);
}

TEST(BufferPoolTest, BufferOutlivesPool) {
  std::shared_ptr<std::vector<uint8_t>> buf;
  {
    BufferPool pool;
    buf = pool.Acquire(32);
    (*buf)[31] = 7;
  }
  EXPECT_EQ((*buf)[31], 7);
  buf.reset();  // released after the pool is gone: freed, no crash
}

}  // namespace
}  // namespace inferd

namespace inferd {
namespace {

TEST(BufferPoolTest, StatsCountIdleAndHandedOutBuffers) {
  BufferPool pool(BufferPool::Options{1});
  EXPECT_EQ(pool.stats().in_use, 0);
  auto a = pool.Acquire(1000);
  auto b = pool.Acquire(10);
  BufferPool::Stats s = pool.stats();
  EXPECT_EQ(s.in_use, 2);
  EXPECT_GE(s.in_use_bytes, 1010);
  EXPECT_EQ(s.idle, 0);
  a.reset();
  b.reset();  // max_free 1: this one is freed
  s = pool.stats();
  EXPECT_EQ(s.in_use, 0);
  EXPECT_EQ(s.in_use_bytes, 0);
  EXPECT_EQ(s.idle, 1);
  EXPECT_GE(s.idle_bytes, 1000);
}

}  // namespace
}  // namespace inferd
