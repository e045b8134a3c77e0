#pragma once
// Helpers shared by kserve_decode_test.cc and kserve_encode_test.cc: explicit
// little-endian tensor bytes and decoding of a JSON-only request.

#include <bit>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>

#include "api/kserve_codec.h"

namespace inferd::kserve::codec_test {

static_assert(std::endian::native == std::endian::little, "the binary format is little-endian");

// Explicit little-endian encoding of integer values of width sizeof(T).
template <typename T>
std::string LE(std::initializer_list<T> values) {
  std::string out;
  for (T v : values) {
    using U = std::make_unsigned_t<T>;
    U u = static_cast<U>(v);
    for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
  }
  return out;
}

inline std::string F32(std::initializer_list<float> values) {
  std::string out;
  for (float f : values) out += LE<uint32_t>({std::bit_cast<uint32_t>(f)});
  return out;
}

inline std::string F64(std::initializer_list<double> values) {
  std::string out;
  for (double d : values) out += LE<uint64_t>({std::bit_cast<uint64_t>(d)});
  return out;
}

inline std::string BytesElements(std::initializer_list<std::string> values) {
  std::string out;
  for (const auto& s : values) {
    out += LE<uint32_t>({static_cast<uint32_t>(s.size())});
    out += s;
  }
  return out;
}

inline StatusOr<DecodedRequest> DecodeJson(const std::string& json) {
  return DecodeInferRequest(std::make_shared<const std::string>(json), -1);
}

}  // namespace inferd::kserve::codec_test
