#include "server/response_codec.h"

#include <cstring>

namespace inferd {
namespace {

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
bool Get(std::string_view in, size_t* pos, T* v) {
  if (in.size() - *pos < sizeof(T)) return false;
  std::memcpy(v, in.data() + *pos, sizeof(T));
  *pos += sizeof(T);
  return true;
}

}  // namespace

std::string EncodeOutputs(const std::vector<NamedTensor>& outputs) {
  size_t total = 4;
  for (const auto& o : outputs)
    total += 16 + o.name.size() + 8 * o.tensor.shape().size() + o.tensor.byte_size();
  std::string out;
  out.reserve(total);
  Put<uint32_t>(&out, static_cast<uint32_t>(outputs.size()));
  for (const auto& o : outputs) {
    Put<uint32_t>(&out, static_cast<uint32_t>(o.name.size()));
    out.append(o.name);
    Put<uint8_t>(&out, static_cast<uint8_t>(o.tensor.dtype()));
    Put<uint8_t>(&out, static_cast<uint8_t>(o.tensor.shape().size()));
    for (int64_t d : o.tensor.shape()) Put<int64_t>(&out, d);
    Put<uint64_t>(&out, o.tensor.byte_size());
    out.append(o.tensor.bytes());
  }
  return out;
}

StatusOr<std::vector<NamedTensor>> DecodeOutputs(std::shared_ptr<const CacheEntry> entry) {
  std::string_view in = entry->payload;
  size_t pos = 0;
  uint32_t n;
  Status bad = InternalError("cached response payload is malformed");
  if (!Get(in, &pos, &n)) return bad;
  std::vector<NamedTensor> out;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t name_len;
    if (!Get(in, &pos, &name_len) || in.size() - pos < name_len) return bad;
    NamedTensor t;
    t.name.assign(in.data() + pos, name_len);
    pos += name_len;
    uint8_t dtype, rank;
    if (!Get(in, &pos, &dtype) || !Get(in, &pos, &rank) ||
        dtype > static_cast<uint8_t>(DataType::kBytes)) {
      return bad;
    }
    Shape shape(rank);
    for (auto& d : shape) {
      if (!Get(in, &pos, &d)) return bad;
    }
    uint64_t size;
    if (!Get(in, &pos, &size) || in.size() - pos < size) return bad;
    int64_t count = ElementCount(shape);
    if (count < 0) return bad;
    DataType dt = static_cast<DataType>(dtype);
    if (dt == DataType::kBytes ? !ValidateBytesElements(in.substr(pos, size), count)
                               : FixedByteSize(dt, shape) < 0 ||
                                     size != static_cast<uint64_t>(FixedByteSize(dt, shape))) {
      return bad;
    }
    const auto* data = reinterpret_cast<const uint8_t*>(in.data() + pos);
    pos += size;
    t.tensor = Tensor::View(static_cast<DataType>(dtype), std::move(shape), data, size, entry);
    out.push_back(std::move(t));
  }
  if (pos != in.size()) return bad;
  return out;
}

}  // namespace inferd
