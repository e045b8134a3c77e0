#include "api/kserve_codec.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace inferd::kserve {

StatusOr<WarmTarget> DecodeWarmTarget(const std::string& json) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (auto err = parser.parse(json.data(), json.size()).get(doc); err) {
    return InvalidArgumentError(std::string("malformed JSON: ") + simdjson::error_message(err));
  }
  std::string_view model, version, tenant;
  if (doc["model"].get_string().get(model) != simdjson::SUCCESS) {
    return InvalidArgumentError("a warm-up line needs a string 'model'");
  }
  simdjson::dom::element v;
  if (doc["model_version"].get(v) == simdjson::SUCCESS &&
      v.get_string().get(version) != simdjson::SUCCESS) {
    return InvalidArgumentError("'model_version' must be a string");
  }
  if (doc["tenant"].get(v) == simdjson::SUCCESS &&
      v.get_string().get(tenant) != simdjson::SUCCESS) {
    return InvalidArgumentError("'tenant' must be a string");
  }
  return WarmTarget{std::string(model), std::string(version), std::string(tenant)};
}

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

template <typename T>
void WriteNumber(Writer& w, T v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  std::string_view s(buf, static_cast<size_t>(res.ptr - buf));
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(v)) {  // JSON has no NaN/Inf
      w.Null();
      return;
    }
  }
  w.RawValue(s.data(), s.size(), rapidjson::kNumberType);
}

template <typename T>
void WriteAll(Writer& w, const Tensor& t) {
  size_t n = t.byte_size() / sizeof(T);
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, t.data() + i * sizeof(T), sizeof(T));
    WriteNumber(w, v);
  }
}

void WriteData(Writer& w, const Tensor& t) {
  w.StartArray();
  switch (t.dtype()) {
    case DataType::kBool:
      for (size_t i = 0; i < t.byte_size(); ++i) w.Bool(t.data()[i] != 0);
      break;
    case DataType::kUint8:
      WriteAll<uint8_t>(w, t);
      break;
    case DataType::kUint16:
      WriteAll<uint16_t>(w, t);
      break;
    case DataType::kUint32:
      WriteAll<uint32_t>(w, t);
      break;
    case DataType::kUint64:
      WriteAll<uint64_t>(w, t);
      break;
    case DataType::kInt8:
      WriteAll<int8_t>(w, t);
      break;
    case DataType::kInt16:
      WriteAll<int16_t>(w, t);
      break;
    case DataType::kInt32:
      WriteAll<int32_t>(w, t);
      break;
    case DataType::kInt64:
      WriteAll<int64_t>(w, t);
      break;
    case DataType::kFp32:
      WriteAll<float>(w, t);
      break;
    case DataType::kFp64:
      WriteAll<double>(w, t);
      break;
    case DataType::kFp16:
      for (size_t i = 0; i + 2 <= t.byte_size(); i += 2) {
        uint16_t h;
        std::memcpy(&h, t.data() + i, 2);
        WriteNumber(w, HalfToFloat(h));
      }
      break;
    case DataType::kBytes: {
      std::string_view b = t.bytes();
      size_t pos = 0;
      while (pos + 4 <= b.size()) {
        uint32_t len;
        std::memcpy(&len, b.data() + pos, 4);
        pos += 4;
        len = static_cast<uint32_t>(std::min<size_t>(len, b.size() - pos));
        w.String(b.data() + pos, len);
        pos += len;
      }
      break;
    }
  }
  w.EndArray();
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

EncodedResponse EncodeInferResponse(const InferResponse& response, const DecodedRequest& request) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("model_name");
  w.String(response.model.data(), static_cast<rapidjson::SizeType>(response.model.size()));
  w.Key("model_version");
  std::string v = std::to_string(response.version);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  if (!response.id.empty()) {
    w.Key("id");
    w.String(response.id.data(), static_cast<rapidjson::SizeType>(response.id.size()));
  }
  w.Key("outputs");
  w.StartArray();
  std::vector<const Tensor*> binary;
  for (const auto& out : response.outputs) {
    bool as_binary = Contains(request.binary_outputs, out.name) ||
                     (request.binary_output_default && !Contains(request.json_outputs, out.name));
    const Tensor& t = out.tensor;
    w.StartObject();
    w.Key("name");
    w.String(out.name.data(), static_cast<rapidjson::SizeType>(out.name.size()));
    w.Key("datatype");
    std::string_view dt = DataTypeName(t.dtype());
    w.String(dt.data(), static_cast<rapidjson::SizeType>(dt.size()));
    w.Key("shape");
    w.StartArray();
    for (int64_t d : t.shape()) w.Int64(d);
    w.EndArray();
    if (as_binary) {
      w.Key("parameters");
      w.StartObject();
      w.Key("binary_data_size");
      w.Uint64(t.byte_size());
      w.EndObject();
      binary.push_back(&t);
    } else {
      w.Key("data");
      WriteData(w, t);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  EncodedResponse enc;
  size_t total = sb.GetSize();
  for (const Tensor* t : binary) total += t->byte_size();
  enc.body.reserve(total);
  enc.body.assign(sb.GetString(), sb.GetSize());
  if (!binary.empty()) {
    enc.json_length = static_cast<int64_t>(sb.GetSize());
    for (const Tensor* t : binary) enc.body.append(t->bytes());
  }
  return enc;
}

}  // namespace inferd::kserve
