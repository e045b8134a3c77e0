#pragma once
// DataType: the KServe v2 tensor element types, their wire names and sizes.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace inferd {

enum class DataType : uint8_t {
  kBool,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kFp32,
  kFp64,
  kBytes,  // variable-length byte strings; 4-byte little-endian length prefix in binary form
};

// "FP32" -> kFp32. Unknown names give nullopt.
std::optional<DataType> DataTypeFromName(std::string_view name);
std::string_view DataTypeName(DataType t);
// Bytes per element; 0 for kBytes (variable).
size_t DataTypeSize(DataType t);

// IEEE 754 half <-> float conversions (round to nearest even).
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);

}  // namespace inferd
