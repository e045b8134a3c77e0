#include "server/response_codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace inferd {
namespace {

template <typename T>
Tensor Make(DataType dtype, Shape shape, const std::vector<T>& values) {
  std::string bytes(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  return Tensor::FromBytes(dtype, std::move(shape), std::move(bytes));
}

// A BYTES tensor: 4-byte little-endian length prefix per element.
Tensor Strings(const std::vector<std::string>& values) {
  std::string bytes;
  for (const auto& v : values) {
    uint32_t n = static_cast<uint32_t>(v.size());
    bytes.append(reinterpret_cast<const char*>(&n), 4);
    bytes.append(v);
  }
  return Tensor::FromBytes(DataType::kBytes, {static_cast<int64_t>(values.size())},
                           std::move(bytes));
}

std::shared_ptr<const CacheEntry> EntryWith(std::string payload) {
  auto e = std::make_shared<CacheEntry>();
  e->check = "C-test";
  e->model = "m";
  e->payload = std::move(payload);
  return e;
}

std::vector<NamedTensor> Sample() {
  return {
      {"fp32", Make<float>(DataType::kFp32, {2, 3}, {1.5f, -2, 3, 4, 5, 6.25f})},
      {"int64", Make<int64_t>(DataType::kInt64, {1, 2}, {INT64_MIN, INT64_MAX})},
      {"uint8", Make<uint8_t>(DataType::kUint8, {4}, {0, 1, 254, 255})},
      {"fp64", Make<double>(DataType::kFp64, {1}, {3.141592653589793})},
      {"fp16", Make<uint16_t>(DataType::kFp16, {2, 1}, {FloatToHalf(0.5f), FloatToHalf(-8)})},
      {"bool", Make<uint8_t>(DataType::kBool, {3}, {1, 0, 1})},
      {"scalar", Make<int32_t>(DataType::kInt32, {}, {42})},
      {"empty", Make<float>(DataType::kFp32, {0, 5}, {})},
      {"text", Strings({"hello", "", "wörld"})},
      {"", Make<int16_t>(DataType::kInt16, {1}, {-7})},  // an empty name survives too
  };
}

TEST(ResponseCodecTest, RoundTripsEveryDataTypeAndShape) {
  std::vector<NamedTensor> in = Sample();
  auto entry = EntryWith(EncodeOutputs(in));
  auto out = DecodeOutputs(entry);
  ASSERT_TRUE(out.ok()) << out.status().message();
  ASSERT_EQ(out->size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    SCOPED_TRACE(in[i].name);
    const NamedTensor& got = (*out)[i];
    EXPECT_EQ(got.name, in[i].name);
    EXPECT_EQ(got.tensor.dtype(), in[i].tensor.dtype());
    EXPECT_EQ(got.tensor.shape(), in[i].tensor.shape());
    EXPECT_EQ(got.tensor.byte_size(), in[i].tensor.byte_size());
    EXPECT_EQ(got.tensor.bytes(), in[i].tensor.bytes());
  }
}

TEST(ResponseCodecTest, NoOutputsRoundTrips) {
  auto entry = EntryWith(EncodeOutputs({}));
  EXPECT_EQ(entry->payload.size(), 4u);
  auto out = DecodeOutputs(entry);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_TRUE(out->empty());
}

TEST(ResponseCodecTest, EncodingIsDeterministic) {
  EXPECT_EQ(EncodeOutputs(Sample()), EncodeOutputs(Sample()));
}

TEST(ResponseCodecTest, DecodedTensorsViewTheEntryPayloadAndKeepItAlive) {
  auto entry = EntryWith(EncodeOutputs(Sample()));
  const char* begin = entry->payload.data();
  const char* end = begin + entry->payload.size();
  auto out = DecodeOutputs(entry);
  ASSERT_TRUE(out.ok()) << out.status().message();
  for (const auto& t : *out) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.tensor.owner().get(), static_cast<const void*>(entry.get()));
    if (t.tensor.byte_size() == 0) continue;
    const char* data = reinterpret_cast<const char*>(t.tensor.data());
    EXPECT_GE(data, begin);
    EXPECT_LE(data + t.tensor.byte_size(), end);
  }
  // The tensors alone keep the entry alive.
  std::weak_ptr<const CacheEntry> weak = entry;
  entry.reset();
  EXPECT_FALSE(weak.expired());
  float first;
  std::memcpy(&first, (*out)[0].tensor.data(), sizeof(float));
  EXPECT_EQ(first, 1.5f);
  out = InternalError("drop the tensors");
  EXPECT_TRUE(weak.expired());
}

void ExpectMalformed(std::string payload, const std::string& what) {
  SCOPED_TRACE(what);
  auto out = DecodeOutputs(EntryWith(std::move(payload)));
  ASSERT_FALSE(out.ok()) << "decoded " << out->size() << " tensors";
  EXPECT_EQ(out.status().code(), StatusCode::kInternal);
}

TEST(ResponseCodecTest, EveryTruncationIsAnError) {
  std::string full = EncodeOutputs(Sample());
  for (size_t n = 0; n < full.size(); ++n) {
    ExpectMalformed(full.substr(0, n), "truncated to " + std::to_string(n) + " bytes");
  }
}

TEST(ResponseCodecTest, MalformedPayloadsAreErrors) {
  std::vector<NamedTensor> one = {{"y", Make<float>(DataType::kFp32, {2}, {1, 2})}};
  const std::string good = EncodeOutputs(one);
  ASSERT_TRUE(DecodeOutputs(EntryWith(good)).ok());
  // Layout: count u32 | name_len u32 | "y" | dtype u8 | rank u8 | dims i64... |
  // size u64 | bytes.
  constexpr size_t kNameLen = 4, kDtype = 9, kRank = 10, kSize = 19;

  ExpectMalformed(good + "x", "trailing byte");

  std::string more = good;
  more[0] = 2;
  ExpectMalformed(more, "count larger than the tensors present");

  std::string huge_count = good;
  std::memset(huge_count.data(), 0xff, 4);
  ExpectMalformed(huge_count, "count 2^32-1");

  std::string long_name = good;
  std::memset(long_name.data() + kNameLen, 0xff, 4);
  ExpectMalformed(long_name, "name longer than the payload");

  std::string bad_dtype = good;
  bad_dtype[kDtype] = static_cast<char>(static_cast<uint8_t>(DataType::kBytes) + 1);
  ExpectMalformed(bad_dtype, "unknown datatype");

  std::string high_rank = good;
  high_rank[kRank] = static_cast<char>(255);
  ExpectMalformed(high_rank, "rank beyond the payload");

  std::string huge_size = good;
  std::memset(huge_size.data() + kSize, 0xff, 8);
  ExpectMalformed(huge_size, "byte size 2^64-1");

  ExpectMalformed(std::string(), "empty payload");
}

// A tensor whose byte count disagrees with its datatype and shape is
// malformed too: served as is, it would reach the protocol encoders as an
// inconsistent tensor.
// DISABLED: DecodeOutputs (src/server/response_codec.cc) checks only that the
// declared byte size fits in the payload, not that it equals
// element_count(shape) * DataTypeSize(dtype) (nor that dims are >= 0), so
// these payloads decode "successfully".
TEST(ResponseCodecTest, SizeMustMatchDatatypeAndShape) {
  // Encode trusts its input, so it can produce the inconsistent payloads.
  ExpectMalformed(EncodeOutputs({{"y", Make<float>(DataType::kFp32, {3}, {1, 2})}}),
                  "FP32 [3] with 8 bytes");
  ExpectMalformed(EncodeOutputs({{"y", Make<float>(DataType::kFp32, {1}, {1, 2})}}),
                  "FP32 [1] with 8 bytes");
  ExpectMalformed(EncodeOutputs({{"y", Make<float>(DataType::kFp32, {-1, 2}, {1, 2})}}),
                  "negative dimension");
}

}  // namespace
}  // namespace inferd
