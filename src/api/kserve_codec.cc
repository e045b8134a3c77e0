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
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// Appends JSON `data` (flat or nested) to `out` as `dtype` elements.
class DataDecoder {
 public:
  // Fails as soon as the data holds more than `max_count` elements.
  DataDecoder(const std::string& name, DataType dtype, int64_t max_count, std::string* out)
      : name_(name), dtype_(dtype), max_count_(max_count), out_(out) {}

  Status Decode(element e, int depth = 0) {
    if (depth > 32) return Error("data is nested too deeply");
    if (e.type() == element_type::ARRAY) {
      simdjson::dom::array arr = e.get_array().value_unsafe();
      for (element child : arr) {
        INFERD_RETURN_IF_ERROR(Decode(child, depth + 1));
      }
      return Status::OK();
    }
    if (++count_ > max_count_) {
      return Error("'data' has more than the " + std::to_string(max_count_) +
                   " elements its shape holds");
    }
    return Scalar(e);
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

  template <typename T>
  Status PutInt(element e) {
    int64_t i;
    uint64_t u;
    if (e.get_int64().get(i) == simdjson::SUCCESS) {
      if (i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          (i > 0 &&
           static_cast<uint64_t>(i) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        return Error("value " + std::to_string(i) + " is out of range for " +
                     std::string(DataTypeName(dtype_)));
      }
      Put<T>(static_cast<T>(i));
      return Status::OK();
    }
    if (e.get_uint64().get(u) == simdjson::SUCCESS) {
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        return Error("value " + std::to_string(u) + " is out of range for " +
                     std::string(DataTypeName(dtype_)));
      }
      Put<T>(static_cast<T>(u));
      return Status::OK();
    }
    return Error("expected integers for datatype " + std::string(DataTypeName(dtype_)));
  }

  Status Scalar(element e) {
    switch (dtype_) {
      case DataType::kBool: {
        bool b;
        if (e.get_bool().get(b) != simdjson::SUCCESS)
          return Error("expected true or false for datatype BOOL");
        Put<uint8_t>(b ? 1 : 0);
        return Status::OK();
      }
      case DataType::kUint8:
        return PutInt<uint8_t>(e);
      case DataType::kUint16:
        return PutInt<uint16_t>(e);
      case DataType::kUint32:
        return PutInt<uint32_t>(e);
      case DataType::kUint64:
        return PutInt<uint64_t>(e);
      case DataType::kInt8:
        return PutInt<int8_t>(e);
      case DataType::kInt16:
        return PutInt<int16_t>(e);
      case DataType::kInt32:
        return PutInt<int32_t>(e);
      case DataType::kInt64:
        return PutInt<int64_t>(e);
      case DataType::kFp16:
      case DataType::kFp32:
      case DataType::kFp64: {
        double d;
        if (e.get_double().get(d) != simdjson::SUCCESS) {
          return Error("expected numbers for datatype " + std::string(DataTypeName(dtype_)));
        }
        if (dtype_ == DataType::kFp32) Put<float>(static_cast<float>(d));
        if (dtype_ == DataType::kFp64) Put<double>(d);
        if (dtype_ == DataType::kFp16) Put<uint16_t>(FloatToHalf(static_cast<float>(d)));
        return Status::OK();
      }
      case DataType::kBytes: {
        std::string_view s;
        if (e.get_string().get(s) != simdjson::SUCCESS)
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

StatusOr<Shape> DecodeShape(const std::string& name, element e) {
  simdjson::dom::array arr;
  if (e.get_array().get(arr) != simdjson::SUCCESS) {
    return InvalidArgumentError("input '" + name + "': 'shape' must be an array of integers");
  }
  Shape s;
  for (element d : arr) {
    int64_t v;
    if (d.get_int64().get(v) != simdjson::SUCCESS || v < 0) {
      return InvalidArgumentError("input '" + name + "': 'shape' must hold non-negative integers");
    }
    s.push_back(v);
  }
  if (s.size() > 16)
    return InvalidArgumentError("input '" + name + "': shape has more than 16 dimensions");
  if (ElementCount(s) < 0) return InvalidArgumentError("input '" + name + "': shape is too large");
  return s;
}

// parameters.<key> of `obj` as a boolean (false when absent).
StatusOr<bool> GetBoolParam(element obj, const char* key) {
  element params, v;
  bool b = false;
  if (obj["parameters"].get(params) == simdjson::SUCCESS &&
      params[key].get(v) == simdjson::SUCCESS) {
    if (v.get_bool().get(b) != simdjson::SUCCESS) {
      return InvalidArgumentError(std::string("parameters.") + key + " must be true or false");
    }
  }
  return b;
}

}  // namespace

// The parser keeps its buffers between requests, sized by the largest body
// it parsed; one over this size is freed after use, so that one large
// request does not hold its memory for good.
constexpr size_t kKeepParserCapacity = 4u << 20;

StatusOr<DecodedRequest> DecodeInferRequest(std::shared_ptr<const std::string> body,
                                            int64_t json_length, const ModelConfig* model) {
  const std::string& b = *body;
  size_t jlen = b.size();
  if (json_length >= 0) {
    if (static_cast<uint64_t>(json_length) > b.size()) {
      return InvalidArgumentError("Inference-Header-Content-Length " + std::to_string(json_length) +
                                  " is larger than the body (" + std::to_string(b.size()) +
                                  " bytes)");
    }
    jlen = static_cast<size_t>(json_length);
  }
  thread_local simdjson::dom::parser parser;
  struct Shrink {
    ~Shrink() {
      if (parser.capacity() > kKeepParserCapacity) parser = simdjson::dom::parser{};
    }
  } shrink;
  element doc;
  if (auto err = parser.parse(b.data(), jlen).get(doc); err) {
    if (json_length < 0 && b.find("\"binary_data_size\"") != std::string::npos) {
      return InvalidArgumentError(
          "the body is not all JSON and declares binary_data_size, but the request has no "
          "Inference-Header-Content-Length header (the length of its JSON part)");
    }
    return InvalidArgumentError(std::string("malformed JSON in request body: ") +
                                simdjson::error_message(err));
  }
  if (doc.type() != element_type::OBJECT)
    return InvalidArgumentError("request body must be a JSON object");
  DecodedRequest out;
  element id;
  if (doc["id"].get(id) == simdjson::SUCCESS) {
    std::string_view s;
    if (id.get_string().get(s) != simdjson::SUCCESS)
      return InvalidArgumentError("'id' must be a string");
    out.request.id = std::string(s);
  }
  INFERD_ASSIGN_OR_RETURN(out.binary_output_default, GetBoolParam(doc, "binary_data_output"));
  element params, timeout;
  if (doc["parameters"].get(params) == simdjson::SUCCESS &&
      params["timeout"].get(timeout) == simdjson::SUCCESS) {
    uint64_t us;
    if (timeout.get_uint64().get(us) != simdjson::SUCCESS || us > (uint64_t{1} << 40)) {
      return InvalidArgumentError("parameters.timeout must be a number of microseconds");
    }
    out.request.timeout_us = static_cast<int64_t>(us);
  }

  simdjson::dom::array inputs;
  if (doc["inputs"].get_array().get(inputs) != simdjson::SUCCESS) {
    return InvalidArgumentError("request must have an 'inputs' array");
  }
  size_t binary_pos = jlen;
  std::vector<bool> seen(model ? model->inputs.size() : 0, false);
  for (element in : inputs) {
    std::string_view sv;
    if (in["name"].get_string().get(sv) != simdjson::SUCCESS) {
      return InvalidArgumentError("every input needs a string 'name'");
    }
    std::string name(sv);
    if (in["datatype"].get_string().get(sv) != simdjson::SUCCESS) {
      return InvalidArgumentError("input '" + name + "' needs a string 'datatype'");
    }
    auto dtype = DataTypeFromName(sv);
    if (!dtype)
      return InvalidArgumentError("input '" + name + "' has unknown datatype '" + std::string(sv) +
                                  "'");
    element shape_el;
    if (in["shape"].get(shape_el) != simdjson::SUCCESS) {
      return InvalidArgumentError("input '" + name + "' needs a 'shape'");
    }
    INFERD_ASSIGN_OR_RETURN(Shape shape, DecodeShape(name, shape_el));
    int64_t count = ElementCount(shape);
    if (model) {
      size_t index = 0;
      INFERD_RETURN_IF_ERROR(model->CheckInput(name, *dtype, shape, &index));
      if (seen[index]) return InvalidArgumentError("input '" + name + "' is given twice");
      seen[index] = true;
    }

    element params, bsize, data;
    uint64_t binary_size = 0;
    bool is_binary = in["parameters"].get(params) == simdjson::SUCCESS &&
                     params["binary_data_size"].get(bsize) == simdjson::SUCCESS;
    bool has_data = in["data"].get(data) == simdjson::SUCCESS;
    if (is_binary && has_data) {
      return InvalidArgumentError("input '" + name +
                                  "' has both 'data' and parameters.binary_data_size: give one");
    }
    if (is_binary) {
      if (bsize.get_uint64().get(binary_size) != simdjson::SUCCESS) {
        return InvalidArgumentError("input '" + name +
                                    "': binary_data_size must be a non-negative integer");
      }
      if (json_length < 0) {
        return InvalidArgumentError(
            "input '" + name +
            "' has binary_data_size but the request has no Inference-Header-Content-Length");
      }
      if (binary_size > b.size() - binary_pos) {
        return InvalidArgumentError("input '" + name + "': binary_data_size " +
                                    std::to_string(binary_size) + " runs past the end of the body");
      }
      int64_t want = FixedByteSize(*dtype, shape);
      if (*dtype != DataType::kBytes && (want < 0 || binary_size != static_cast<uint64_t>(want))) {
        return InvalidArgumentError("input '" + name + "': shape " + ShapeToString(shape) +
                                    " needs " +
                                    (want < 0 ? std::string("more bytes than fit in 64 bits")
                                              : std::to_string(want) + " bytes") +
                                    " of " + std::string(DataTypeName(*dtype)) +
                                    ", binary_data_size is " + std::to_string(binary_size));
      }
      const auto* data = reinterpret_cast<const uint8_t*>(b.data() + binary_pos);
      out.request.inputs.push_back(
          {name, Tensor::View(*dtype, std::move(shape), data, binary_size, body)});
      binary_pos += binary_size;
      continue;
    }
    if (!has_data) {
      return InvalidArgumentError("input '" + name +
                                  "' needs 'data' (or parameters.binary_data_size)");
    }
    // Each element takes at least two bytes of JSON ("1,"; a string "",
    // three), so a count beyond that cannot be in the body: refuse it before
    // reserving anything by it.
    int64_t most = static_cast<int64_t>(jlen / (*dtype == DataType::kBytes ? 3 : 2) + 1);
    if (count > most) {
      return InvalidArgumentError("input '" + name + "': shape " + ShapeToString(shape) + " has " +
                                  std::to_string(count) + " elements, more than a " +
                                  std::to_string(jlen) + "-byte JSON body can hold");
    }
    std::string bytes;
    if (*dtype != DataType::kBytes)
      bytes.reserve(static_cast<size_t>(count) * DataTypeSize(*dtype));
    DataDecoder dec(name, *dtype, count, &bytes);
    INFERD_RETURN_IF_ERROR(dec.Decode(data));
    if (dec.count() != count) {
      return InvalidArgumentError("input '" + name + "': shape " + ShapeToString(shape) + " has " +
                                  std::to_string(count) + " elements but 'data' has " +
                                  std::to_string(dec.count()));
    }
    out.request.inputs.push_back(
        {name, Tensor::FromBytes(*dtype, std::move(shape), std::move(bytes))});
  }
  if (json_length >= 0 && binary_pos != b.size()) {
    return InvalidArgumentError("body has " + std::to_string(b.size() - binary_pos) +
                                " bytes of binary data that no input declares");
  }
  element outputs_el;
  if (doc["outputs"].get(outputs_el) == simdjson::SUCCESS) {
    simdjson::dom::array outputs;
    if (outputs_el.get_array().get(outputs) != simdjson::SUCCESS) {
      return InvalidArgumentError("'outputs' must be an array");
    }
    for (element o : outputs) {
      std::string_view sv;
      if (o["name"].get_string().get(sv) != simdjson::SUCCESS) {
        return InvalidArgumentError("every requested output needs a string 'name'");
      }
      std::string name(sv);
      element params, flag;
      if (o["parameters"].get(params) == simdjson::SUCCESS &&
          params["binary_data"].get(flag) == simdjson::SUCCESS) {
        bool bin;
        if (flag.get_bool().get(bin) != simdjson::SUCCESS) {
          return InvalidArgumentError("output '" + name +
                                      "': parameters.binary_data must be true or false");
        }
        (bin ? out.binary_outputs : out.json_outputs).push_back(name);
      }
      out.request.outputs.push_back(std::move(name));
    }
  }
  return out;
}

StatusOr<std::pair<std::string, std::string>> DecodeWarmTarget(const std::string& json) {
  thread_local simdjson::dom::parser parser;
  element doc;
  if (auto err = parser.parse(json.data(), json.size()).get(doc); err) {
    return InvalidArgumentError(std::string("malformed JSON: ") + simdjson::error_message(err));
  }
  std::string_view model, version;
  if (doc["model"].get_string().get(model) != simdjson::SUCCESS) {
    return InvalidArgumentError("a warm-up line needs a string 'model'");
  }
  element v;
  if (doc["model_version"].get(v) == simdjson::SUCCESS &&
      v.get_string().get(version) != simdjson::SUCCESS) {
    return InvalidArgumentError("'model_version' must be a string");
  }
  return std::make_pair(std::string(model), std::string(version));
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
