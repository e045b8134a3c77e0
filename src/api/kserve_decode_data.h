#pragma once
// Pieces of the On-Demand KServe decoder (kserve_decode.cc): the JSON error
// helper and DataDecoder, which turns one input's JSON `data` into tensor
// bytes. Only kserve_decode.cc includes this: it is compiled for the build
// machine's SIMD level (see CMakeLists.txt), and simdjson's On-Demand types
// depend on it.

#include <simdjson.h>

#include <cstring>
#include <limits>
#include <string>

#include "common/status.h"
#include "tensor/data_type.h"

namespace inferd::kserve::decode_detail {

namespace ond = simdjson::ondemand;

// The parser keeps its buffers between requests, sized by the largest body
// it parsed; one over this size is freed after use, so that one large
// request does not hold its memory for good.
inline constexpr size_t kKeepParserCapacity = 4u << 20;

inline Status JsonError(simdjson::error_code err) {
  return InvalidArgumentError(std::string("malformed JSON in request body: ") +
                              simdjson::error_message(err));
}

// Evaluates a simdjson result into `out`, returning a 400 on failure.
#define INFERD_JSON(expr)           \
  do {                              \
    if (auto err_ = (expr); err_) { \
      return JsonError(err_);       \
    }                               \
  } while (0)

// Appends JSON `data` (flat or nested) to `out` as `dtype` elements.
class DataDecoder {
 public:
  // Fails as soon as the data holds more than `max_count` elements.
  DataDecoder(const std::string& name, DataType dtype, int64_t max_count, std::string* out)
      : name_(name), dtype_(dtype), max_count_(max_count), out_(out) {}

  Status Decode(ond::value v, int depth = 0) {
    if (depth > 32) return Error("data is nested too deeply");
    ond::json_type type;
    INFERD_JSON(v.type().get(type));
    if (type == ond::json_type::array) {
      ond::array arr;
      INFERD_JSON(v.get_array().get(arr));
      for (auto child : arr) {
        ond::value cv;
        INFERD_JSON(child.get(cv));
        INFERD_RETURN_IF_ERROR(Decode(cv, depth + 1));
      }
      return Status::OK();
    }
    if (++count_ > max_count_) {
      return Error("'data' has more than the " + std::to_string(max_count_) +
                   " elements its shape holds");
    }
    return Scalar(v);
  }
  int64_t count() const { return count_; }

 private:
  Status Error(const std::string& what) const {
    return InvalidArgumentError("input '" + name_ + "': " + what);
  }

  template <typename T>
  void Put(T v) {
    char buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T));
    out_->append(buf, sizeof(T));
  }

  Status OutOfRange(const std::string& v) const {
    return Error("value " + v + " is out of range for " + std::string(DataTypeName(dtype_)));
  }

  template <typename T>
  Status PutInt(ond::value v) {
    ond::number n;
    if (v.get_number().get(n) != simdjson::SUCCESS || n.is_double()) {
      return Error("expected integers for datatype " + std::string(DataTypeName(dtype_)));
    }
    if (n.is_int64()) {
      int64_t i = n.get_int64();
      if (i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          (i > 0 &&
           static_cast<uint64_t>(i) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        return OutOfRange(std::to_string(i));
      }
      Put<T>(static_cast<T>(i));
      return Status::OK();
    }
    uint64_t u = n.get_uint64();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      return OutOfRange(std::to_string(u));
    }
    Put<T>(static_cast<T>(u));
    return Status::OK();
  }

  Status Scalar(ond::value v) {
    switch (dtype_) {
      case DataType::kBool: {
        bool b;
        if (v.get_bool().get(b) != simdjson::SUCCESS)
          return Error("expected true or false for datatype BOOL");
        Put<uint8_t>(b ? 1 : 0);
        return Status::OK();
      }
      case DataType::kUint8:
        return PutInt<uint8_t>(v);
      case DataType::kUint16:
        return PutInt<uint16_t>(v);
      case DataType::kUint32:
        return PutInt<uint32_t>(v);
      case DataType::kUint64:
        return PutInt<uint64_t>(v);
      case DataType::kInt8:
        return PutInt<int8_t>(v);
      case DataType::kInt16:
        return PutInt<int16_t>(v);
      case DataType::kInt32:
        return PutInt<int32_t>(v);
      case DataType::kInt64:
        return PutInt<int64_t>(v);
      case DataType::kFp16:
      case DataType::kFp32:
      case DataType::kFp64: {
        double d;
        if (v.get_double().get(d) != simdjson::SUCCESS) {
          return Error("expected numbers for datatype " + std::string(DataTypeName(dtype_)));
        }
        if (dtype_ == DataType::kFp32) Put<float>(static_cast<float>(d));
        if (dtype_ == DataType::kFp64) Put<double>(d);
        if (dtype_ == DataType::kFp16) Put<uint16_t>(FloatToHalf(static_cast<float>(d)));
        return Status::OK();
      }
      case DataType::kBytes: {
        std::string_view s;
        if (v.get_string().get(s) != simdjson::SUCCESS)
          return Error("expected strings for datatype BYTES");
        Put<uint32_t>(static_cast<uint32_t>(s.size()));
        out_->append(s);
        return Status::OK();
      }
    }
    return Error("unsupported datatype");
  }

  const std::string& name_;
  DataType dtype_;
  int64_t max_count_;
  std::string* out_;
  int64_t count_ = 0;
};

}  // namespace inferd::kserve::decode_detail
