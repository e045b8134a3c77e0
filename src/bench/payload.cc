#include "bench/payload.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <simdjson.h>

#include <bit>
#include <charconv>
#include <cstring>
#include <random>

namespace inferd::bench {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the binary tensor extension is little-endian; this code copies host bytes");

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

Status ParseTensorSpecs(simdjson::dom::object obj, const char* key, bool required,
                        std::vector<TensorSpec>* out) {
  simdjson::dom::array arr;
  if (obj[key].get_array().get(arr)) {
    if (!required) return Status::OK();
    return InvalidArgumentError(std::string("model metadata has no '") + key + "' array");
  }
  for (simdjson::dom::element e : arr) {
    TensorSpec spec;
    std::string_view name, datatype;
    simdjson::dom::array dims;
    if (e["name"].get_string().get(name) || e["datatype"].get_string().get(datatype) ||
        e["shape"].get_array().get(dims)) {
      return InvalidArgumentError(std::string("model metadata: an entry of '") + key +
                                  "' lacks name, datatype or shape");
    }
    spec.name = std::string(name);
    auto dtype = DataTypeFromName(datatype);
    if (!dtype) {
      return InvalidArgumentError("model metadata: " + spec.name + " has unknown datatype " +
                                  std::string(datatype));
    }
    spec.dtype = *dtype;
    for (simdjson::dom::element d : dims) {
      int64_t dim = 0;
      if (d.get_int64().get(dim) || dim < -1) {
        return InvalidArgumentError("model metadata: bad shape for " + spec.name);
      }
      spec.shape.push_back(dim);
    }
    out->push_back(std::move(spec));
  }
  return Status::OK();
}

// Random tensor contents in the binary tensor extension's byte layout.
std::string RandomTensorBytes(DataType t, int64_t count, std::mt19937_64& rng) {
  std::string out;
  std::uniform_real_distribution<double> real(0.0, 1.0);
  std::uniform_int_distribution<int> small(0, 99);
  auto put = [&out](const auto& v) {
    const char* p = reinterpret_cast<const char*>(&v);
    out.append(p, sizeof(v));
  };
  if (t != DataType::kBytes) out.reserve(static_cast<size_t>(count) * DataTypeSize(t));
  for (int64_t i = 0; i < count; ++i) {
    switch (t) {
      case DataType::kBool:
        put(static_cast<uint8_t>(small(rng) & 1));
        break;
      case DataType::kUint8:
        put(static_cast<uint8_t>(small(rng)));
        break;
      case DataType::kUint16:
        put(static_cast<uint16_t>(small(rng)));
        break;
      case DataType::kUint32:
        put(static_cast<uint32_t>(small(rng)));
        break;
      case DataType::kUint64:
        put(static_cast<uint64_t>(small(rng)));
        break;
      case DataType::kInt8:
        put(static_cast<int8_t>(small(rng)));
        break;
      case DataType::kInt16:
        put(static_cast<int16_t>(small(rng)));
        break;
      case DataType::kInt32:
        put(static_cast<int32_t>(small(rng)));
        break;
      case DataType::kInt64:
        put(static_cast<int64_t>(small(rng)));
        break;
      case DataType::kFp16:
        put(FloatToHalf(static_cast<float>(real(rng))));
        break;
      case DataType::kFp32:
        put(static_cast<float>(real(rng)));
        break;
      case DataType::kFp64:
        put(real(rng));
        break;
      case DataType::kBytes: {
        put(static_cast<uint32_t>(8));
        for (int k = 0; k < 8; ++k) out.push_back(static_cast<char>('a' + small(rng) % 26));
        break;
      }
    }
  }
  return out;
}

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void AppendNumber(std::string* out, T v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, ec == std::errc() ? end : buf);
}

// Renders bytes from RandomTensorBytes as a flat JSON array.
std::string JsonData(DataType t, std::string_view raw, int64_t count) {
  std::string out = "[";
  out.reserve(static_cast<size_t>(count) * 12 + 2);
  const char* p = raw.data();
  for (int64_t i = 0; i < count; ++i) {
    if (i > 0) out.push_back(',');
    switch (t) {
      case DataType::kBool:
        out += Load<uint8_t>(p) ? "true" : "false";
        break;
      case DataType::kUint8:
        AppendNumber(&out, Load<uint8_t>(p));
        break;
      case DataType::kUint16:
        AppendNumber(&out, Load<uint16_t>(p));
        break;
      case DataType::kUint32:
        AppendNumber(&out, Load<uint32_t>(p));
        break;
      case DataType::kUint64:
        AppendNumber(&out, Load<uint64_t>(p));
        break;
      case DataType::kInt8:
        AppendNumber(&out, Load<int8_t>(p));
        break;
      case DataType::kInt16:
        AppendNumber(&out, Load<int16_t>(p));
        break;
      case DataType::kInt32:
        AppendNumber(&out, Load<int32_t>(p));
        break;
      case DataType::kInt64:
        AppendNumber(&out, Load<int64_t>(p));
        break;
      case DataType::kFp16:
        AppendNumber(&out, HalfToFloat(Load<uint16_t>(p)));
        break;
      case DataType::kFp32:
        AppendNumber(&out, Load<float>(p));
        break;
      case DataType::kFp64:
        AppendNumber(&out, Load<double>(p));
        break;
      case DataType::kBytes: {
        const uint32_t len = Load<uint32_t>(p);
        out.push_back('"');
        out.append(p + 4, len);  // letters only: nothing to escape
        out.push_back('"');
        p += 4 + len;
        continue;
      }
    }
    p += DataTypeSize(t);
  }
  out.push_back(']');
  return out;
}

void WriteString(JsonWriter& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

}  // namespace

StatusOr<ModelMetadata> ParseModelMetadata(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::object obj;
  if (parser.parse(padded).get_object().get(obj)) {
    return InvalidArgumentError("model metadata is not a JSON object");
  }
  ModelMetadata m;
  std::string_view text;
  if (!obj["name"].get_string().get(text)) m.name = std::string(text);
  if (!obj["platform"].get_string().get(text)) m.platform = std::string(text);
  simdjson::dom::array versions;
  if (!obj["versions"].get_array().get(versions)) {
    for (simdjson::dom::element v : versions) {
      if (!v.get_string().get(text)) m.versions.emplace_back(text);
    }
  }
  INFERD_RETURN_IF_ERROR(ParseTensorSpecs(obj, "inputs", /*required=*/true, &m.inputs));
  INFERD_RETURN_IF_ERROR(ParseTensorSpecs(obj, "outputs", /*required=*/false, &m.outputs));
  if (m.inputs.empty()) return InvalidArgumentError("model metadata lists no inputs");
  return m;
}

StatusOr<std::pair<std::string, Shape>> ParseShapeOverride(std::string_view text) {
  const size_t eq = text.find('=');
  auto bad = [&] {
    return InvalidArgumentError("bad --shape '" + std::string(text) +
                                "': expected name=d1,d2,... with dims >= 0");
  };
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == text.size()) return bad();
  std::pair<std::string, Shape> out{std::string(text.substr(0, eq)), {}};
  std::string_view dims = text.substr(eq + 1);
  while (true) {
    const size_t comma = dims.find(',');
    std::string_view d = dims.substr(0, comma);
    int64_t v = 0;
    auto [end, ec] = std::from_chars(d.data(), d.data() + d.size(), v);
    if (d.empty() || ec != std::errc() || end != d.data() + d.size() || v < 0) return bad();
    out.second.push_back(v);
    if (comma == std::string_view::npos) break;
    dims.remove_prefix(comma + 1);
  }
  return out;
}

StatusOr<std::map<std::string, Shape>> ParseShapeOverrides(const std::vector<std::string>& texts) {
  std::map<std::string, Shape> out;
  for (const std::string& t : texts) {
    INFERD_ASSIGN_OR_RETURN(auto entry, ParseShapeOverride(t));
    if (!out.emplace(entry.first, entry.second).second) {
      return InvalidArgumentError("--shape given twice for input " + entry.first);
    }
  }
  return out;
}

StatusOr<Shape> ResolveShape(const TensorSpec& spec, int64_t batch_size,
                             const Shape* override_shape) {
  const Shape& meta = spec.shape;
  const bool batched = !meta.empty() && meta[0] == -1;
  if (batch_size < 1) return InvalidArgumentError("batch size must be >= 1");
  if (batch_size > 1 && !batched) {
    return InvalidArgumentError("input " + spec.name + " has shape " + ShapeToString(meta) +
                                " without a variable batch dim; use --batch-size 1");
  }
  Shape out;
  if (override_shape == nullptr) {
    for (size_t i = 0; i < meta.size(); ++i) {
      out.push_back(meta[i] >= 0 ? meta[i] : (i == 0 ? batch_size : 1));
    }
    return out;
  }
  const Shape& given = *override_shape;
  if (given.size() == meta.size()) {
    out = given;
  } else if (batched && given.size() + 1 == meta.size()) {
    out.push_back(batch_size);
    out.insert(out.end(), given.begin(), given.end());
  } else {
    return InvalidArgumentError("--shape for " + spec.name + " has " +
                                std::to_string(given.size()) + " dims; the model's shape is " +
                                ShapeToString(meta));
  }
  for (size_t i = 0; i < meta.size(); ++i) {
    if (meta[i] >= 0 && out[i] != meta[i]) {
      return InvalidArgumentError("--shape " + ShapeToString(out) + " for " + spec.name +
                                  " does not fit the model's shape " + ShapeToString(meta));
    }
  }
  if (batched && out[0] != batch_size) {
    return InvalidArgumentError("--shape for " + spec.name + " gives batch dim " +
                                std::to_string(out[0]) + " but --batch-size is " +
                                std::to_string(batch_size));
  }
  return out;
}

StatusOr<Payload> BuildPayload(const ModelMetadata& metadata, PayloadFormat format,
                               int64_t batch_size, const std::map<std::string, Shape>& overrides,
                               uint64_t seed) {
  for (const auto& [name, shape] : overrides) {
    bool known = false;
    for (const TensorSpec& in : metadata.inputs) known = known || in.name == name;
    if (!known) return InvalidArgumentError("--shape names unknown input " + name);
  }
  std::mt19937_64 rng(seed);
  const bool binary = format == PayloadFormat::kBinary;
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  std::string tensor_bytes;
  w.StartObject();
  w.Key("inputs");
  w.StartArray();
  for (const TensorSpec& in : metadata.inputs) {
    auto it = overrides.find(in.name);
    INFERD_ASSIGN_OR_RETURN(
        Shape shape, ResolveShape(in, batch_size, it == overrides.end() ? nullptr : &it->second));
    const int64_t count = ElementCount(shape);
    if (count < 0) return InvalidArgumentError("input " + in.name + " is too large");
    const std::string raw = RandomTensorBytes(in.dtype, count, rng);
    w.StartObject();
    w.Key("name");
    WriteString(w, in.name);
    w.Key("shape");
    w.StartArray();
    for (int64_t d : shape) w.Int64(d);
    w.EndArray();
    w.Key("datatype");
    WriteString(w, DataTypeName(in.dtype));
    if (binary) {
      w.Key("parameters");
      w.StartObject();
      w.Key("binary_data_size");
      w.Uint64(raw.size());
      w.EndObject();
      tensor_bytes += raw;
    } else {
      const std::string data = JsonData(in.dtype, raw, count);
      w.Key("data");
      w.RawValue(data.data(), data.size(), rapidjson::kArrayType);
    }
    w.EndObject();
  }
  w.EndArray();
  if (binary && !metadata.outputs.empty()) {
    w.Key("outputs");
    w.StartArray();
    for (const TensorSpec& out : metadata.outputs) {
      w.StartObject();
      w.Key("name");
      WriteString(w, out.name);
      w.Key("parameters");
      w.StartObject();
      w.Key("binary_data");
      w.Bool(true);
      w.EndObject();
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();

  Payload p;
  p.body.assign(sb.GetString(), sb.GetSize());
  if (binary) {
    p.header_length = p.body.size();
    p.body += tensor_bytes;
    p.content_type = "application/octet-stream";
  } else {
    p.content_type = "application/json";
  }
  return p;
}

}  // namespace inferd::bench
