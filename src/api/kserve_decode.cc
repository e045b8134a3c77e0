// DecodeInferRequest on simdjson's On-Demand API: the JSON is indexed once
// (4 bytes per structural character) and read in place, with no tape or DOM,
// so a request's peak memory is its body, that index and its decoded
// tensors. Each input's name, datatype and shape are read and checked
// (against the body, and against the model when given) before its data is
// touched; values that are never needed are skipped, not decoded.
#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "api/kserve_codec.h"
#include "api/kserve_decode_data.h"

namespace inferd::kserve {
namespace {

using namespace decode_detail;  // NOLINT: the decoder's own pieces

// One request's decoding state.
class RequestDecoder {
 public:
  RequestDecoder(std::shared_ptr<const std::string> body, size_t jlen, int64_t json_length,
                 const ModelConfig* model)
      : body_(std::move(body)),
        jlen_(jlen),
        json_length_(json_length),
        model_(model),
        binary_pos_(jlen),
        seen_(model ? model->inputs.size() : 0, false) {}

  Status Run(ond::document& doc, DecodedRequest* out) {
    out_ = out;
    ond::object top;
    if (doc.get_object().get(top) != simdjson::SUCCESS) {
      return InvalidArgumentError("request body must be a JSON object");
    }
    bool have_inputs = false;
    static constexpr std::string_view kKeys[] = {"id", "parameters", "inputs", "outputs"};
    unsigned seen_keys = 0;  // bit i: kKeys[i] was read (a duplicate is refused)
    for (auto field : top) {
      std::string_view key;
      INFERD_JSON(field.unescaped_key().get(key));
      ond::value v;
      INFERD_JSON(field.value().get(v));
      auto known = std::find(std::begin(kKeys), std::end(kKeys), key);
      if (known == std::end(kKeys)) continue;
      unsigned bit = 1u << (known - std::begin(kKeys));
      if (seen_keys & bit) {
        return InvalidArgumentError("duplicate key '" + std::string(key) + "' in the request");
      }
      seen_keys |= bit;
      if (key == "id") {
        std::string_view s;
        if (v.get_string().get(s) != simdjson::SUCCESS)
          return InvalidArgumentError("'id' must be a string");
        out->request.id = std::string(s);
      } else if (key == "parameters") {
        INFERD_RETURN_IF_ERROR(Parameters(v));
      } else if (key == "inputs") {
        ond::array inputs;
        if (v.get_array().get(inputs) != simdjson::SUCCESS) {
          return InvalidArgumentError("request must have an 'inputs' array");
        }
        have_inputs = true;
        for (auto in : inputs) {
          ond::object obj;
          if (in.get_object().get(obj) != simdjson::SUCCESS) {
            return InvalidArgumentError("every input must be an object");
          }
          INFERD_RETURN_IF_ERROR(Input(obj));
        }
      } else {
        INFERD_RETURN_IF_ERROR(Outputs(v));
      }
    }
    // Anything after the object (another document, say) is an error: the
    // iterator has a location only while tokens are left.
    const char* rest = nullptr;
    if (doc.current_location().get(rest) == simdjson::SUCCESS) {
      return JsonError(simdjson::TRAILING_CONTENT);
    }
    if (!have_inputs) return InvalidArgumentError("request must have an 'inputs' array");
    if (json_length_ >= 0 && binary_pos_ != body_->size()) {
      return InvalidArgumentError("body has " + std::to_string(body_->size() - binary_pos_) +
                                  " bytes of binary data that no input declares");
    }
    return Status::OK();
  }

 private:
  Status Parameters(ond::value v) {
    ond::object params;
    if (v.get_object().get(params) != simdjson::SUCCESS) {
      return InvalidArgumentError("'parameters' must be an object");
    }
    for (auto field : params) {
      std::string_view key;
      INFERD_JSON(field.unescaped_key().get(key));
      ond::value p;
      INFERD_JSON(field.value().get(p));
      if (key == "binary_data_output") {
        if (p.get_bool().get(out_->binary_output_default) != simdjson::SUCCESS) {
          return InvalidArgumentError("parameters.binary_data_output must be true or false");
        }
      } else if (key == "timeout") {
        uint64_t us;
        if (p.get_uint64().get(us) != simdjson::SUCCESS || us > (uint64_t{1} << 40)) {
          return InvalidArgumentError("parameters.timeout must be a number of microseconds");
        }
        out_->request.timeout_us = static_cast<int64_t>(us);
      } else if (key == "priority") {
        uint64_t level;
        if (p.get_uint64().get(level) != simdjson::SUCCESS || level > 255) {
          return InvalidArgumentError(
              "parameters.priority must be an integer from 0 to 255 (1 is the highest level; 0: "
              "the model's default)");
        }
        out_->request.priority = static_cast<int>(level);
      }
    }
    return Status::OK();
  }

  static StatusOr<Shape> DecodeShape(const std::string& name, ond::value v) {
    ond::array arr;
    if (v.get_array().get(arr) != simdjson::SUCCESS) {
      return InvalidArgumentError("input '" + name + "': 'shape' must be an array of integers");
    }
    Shape s;
    for (auto d : arr) {
      int64_t dim;
      if (d.get_int64().get(dim) != simdjson::SUCCESS || dim < 0) {
        return InvalidArgumentError("input '" + name +
                                    "': 'shape' must hold non-negative integers");
      }
      if (s.size() == 16) {
        return InvalidArgumentError("input '" + name + "': shape has more than 16 dimensions");
      }
      s.push_back(dim);
    }
    if (ElementCount(s) < 0)
      return InvalidArgumentError("input '" + name + "': shape is too large");
    return s;
  }

  // What an input object says about itself, read before its data.
  struct InputHeader {
    std::string name;
    bool has_name = false, has_datatype = false, has_shape = false, has_data = false;
    bool is_binary = false;
    std::string_view datatype;
    Shape shape;
    uint64_t binary_size = 0;
  };

  // Keys are compared as written (raw): `data` is found again below with
  // find_field_unordered, which compares raw keys, so a key spelled with
  // escapes ("d\u0061ta") is an unknown key in both places.
  Status ReadHeader(ond::object& obj, InputHeader* h) {
    for (auto field : obj) {
      ond::raw_json_string raw;
      INFERD_JSON(field.key().get(raw));
      auto key = [&raw](const char* name) { return raw.unsafe_is_equal(name); };
      ond::value v;
      INFERD_JSON(field.value().get(v));
      if (key("name")) {
        std::string_view s;
        if (h->has_name || v.get_string().get(s) != simdjson::SUCCESS) {
          return InvalidArgumentError("every input needs one string 'name'");
        }
        h->name = std::string(s), h->has_name = true;
      } else if (key("datatype")) {
        if (h->has_datatype || v.get_string().get(h->datatype) != simdjson::SUCCESS) {
          return InvalidArgumentError("input '" + h->name + "' needs one string 'datatype'");
        }
        h->has_datatype = true;
      } else if (key("shape")) {
        if (h->has_shape) return InvalidArgumentError("input '" + h->name + "' has two 'shape's");
        INFERD_ASSIGN_OR_RETURN(h->shape, DecodeShape(h->name, v));
        h->has_shape = true;
      } else if (key("data")) {
        h->has_data = true;  // decoded once the header is checked
      } else if (key("parameters")) {
        ond::object params;
        if (v.get_object().get(params) != simdjson::SUCCESS) {
          return InvalidArgumentError("input '" + h->name + "': 'parameters' must be an object");
        }
        for (auto p : params) {
          std::string_view pkey;
          INFERD_JSON(p.unescaped_key().get(pkey));
          if (pkey != "binary_data_size") continue;
          ond::value size;
          INFERD_JSON(p.value().get(size));
          if (size.get_uint64().get(h->binary_size) != simdjson::SUCCESS) {
            return InvalidArgumentError("input '" + h->name +
                                        "': binary_data_size must be a non-negative integer");
          }
          h->is_binary = true;
        }
      }
    }
    return Status::OK();
  }

  Status Input(ond::object obj) {
    InputHeader h;
    INFERD_RETURN_IF_ERROR(ReadHeader(obj, &h));
    if (!h.has_name) return InvalidArgumentError("every input needs a string 'name'");
    const std::string& name = h.name;
    if (!h.has_datatype)
      return InvalidArgumentError("input '" + name + "' needs a string 'datatype'");
    auto dtype = DataTypeFromName(h.datatype);
    if (!dtype) {
      return InvalidArgumentError("input '" + name + "' has unknown datatype '" +
                                  std::string(h.datatype) + "'");
    }
    if (!h.has_shape) return InvalidArgumentError("input '" + name + "' needs a 'shape'");
    const int64_t count = ElementCount(h.shape);
    if (model_) {
      size_t index = 0;
      INFERD_RETURN_IF_ERROR(model_->CheckInput(name, *dtype, h.shape, &index));
      if (seen_[index]) return InvalidArgumentError("input '" + name + "' is given twice");
      seen_[index] = true;
    }
    if (h.is_binary && h.has_data) {
      return InvalidArgumentError("input '" + name +
                                  "' has both 'data' and parameters.binary_data_size: give one");
    }
    if (h.is_binary) return BinaryInput(name, *dtype, std::move(h.shape), h.binary_size);
    if (!h.has_data) {
      return InvalidArgumentError("input '" + name +
                                  "' needs 'data' (or parameters.binary_data_size)");
    }
    // Each element takes at least two bytes of JSON ("1,"; a string "",
    // three), so a count beyond that cannot be in the body: refuse it before
    // reserving anything by it.
    int64_t most = static_cast<int64_t>(jlen_ / (*dtype == DataType::kBytes ? 3 : 2) + 1);
    if (count > most) {
      return InvalidArgumentError("input '" + name + "': shape " + ShapeToString(h.shape) +
                                  " has " + std::to_string(count) + " elements, more than a " +
                                  std::to_string(jlen_) + "-byte JSON body can hold");
    }
    std::string bytes;
    if (*dtype != DataType::kBytes)
      bytes.reserve(static_cast<size_t>(FixedByteSize(*dtype, h.shape)));
    DataDecoder dec(name, *dtype, count, &bytes);
    INFERD_JSON(obj.reset().error());
    ond::value data;
    INFERD_JSON(obj.find_field_unordered("data").get(data));
    INFERD_RETURN_IF_ERROR(dec.Decode(data));
    if (dec.count() != count) {
      return InvalidArgumentError("input '" + name + "': shape " + ShapeToString(h.shape) +
                                  " has " + std::to_string(count) + " elements but 'data' has " +
                                  std::to_string(dec.count()));
    }
    out_->request.inputs.push_back(
        {name, Tensor::FromBytes(*dtype, std::move(h.shape), std::move(bytes))});
    return Status::OK();
  }

  Status BinaryInput(const std::string& name, DataType dtype, Shape shape, uint64_t size) {
    if (json_length_ < 0) {
      return InvalidArgumentError(
          "input '" + name +
          "' has binary_data_size but the request has no Inference-Header-Content-Length");
    }
    if (size > body_->size() - binary_pos_) {
      return InvalidArgumentError("input '" + name + "': binary_data_size " + std::to_string(size) +
                                  " runs past the end of the body");
    }
    int64_t want = FixedByteSize(dtype, shape);
    if (dtype != DataType::kBytes && (want < 0 || size != static_cast<uint64_t>(want))) {
      return InvalidArgumentError("input '" + name + "': shape " + ShapeToString(shape) +
                                  " needs " +
                                  (want < 0 ? std::string("more bytes than fit in 64 bits")
                                            : std::to_string(want) + " bytes") +
                                  " of " + std::string(DataTypeName(dtype)) +
                                  ", binary_data_size is " + std::to_string(size));
    }
    const auto* data = reinterpret_cast<const uint8_t*>(body_->data() + binary_pos_);
    out_->request.inputs.push_back(
        {name, Tensor::View(dtype, std::move(shape), data, size, body_)});
    binary_pos_ += size;
    return Status::OK();
  }

  Status Outputs(ond::value v) {
    ond::array outputs;
    if (v.get_array().get(outputs) != simdjson::SUCCESS) {
      return InvalidArgumentError("'outputs' must be an array");
    }
    for (auto o : outputs) {
      ond::object obj;
      if (o.get_object().get(obj) != simdjson::SUCCESS) {
        return InvalidArgumentError("every requested output needs a string 'name'");
      }
      std::string name;
      bool has_name = false;
      int binary = -1;  // -1: not said
      for (auto field : obj) {
        std::string_view key;
        INFERD_JSON(field.unescaped_key().get(key));
        ond::value fv;
        INFERD_JSON(field.value().get(fv));
        if (key == "name") {
          std::string_view s;
          if (has_name || fv.get_string().get(s) != simdjson::SUCCESS) {
            return InvalidArgumentError("every requested output needs a string 'name'");
          }
          name = std::string(s), has_name = true;
        } else if (key == "parameters") {
          ond::object params;
          if (fv.get_object().get(params) != simdjson::SUCCESS) continue;
          for (auto p : params) {
            std::string_view pkey;
            INFERD_JSON(p.unescaped_key().get(pkey));
            if (pkey != "binary_data") continue;
            bool b;
            if (p.value().get_bool().get(b) != simdjson::SUCCESS) {
              return InvalidArgumentError("output '" + name +
                                          "': parameters.binary_data must be true or false");
            }
            binary = b ? 1 : 0;
          }
        }
      }
      if (!has_name) return InvalidArgumentError("every requested output needs a string 'name'");
      if (binary >= 0) (binary ? out_->binary_outputs : out_->json_outputs).push_back(name);
      out_->request.outputs.push_back(std::move(name));
    }
    return Status::OK();
  }

  std::shared_ptr<const std::string> body_;
  size_t jlen_;
  int64_t json_length_;
  const ModelConfig* model_;
  size_t binary_pos_;
  std::vector<bool> seen_;
  DecodedRequest* out_ = nullptr;
};

}  // namespace

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
  thread_local ond::parser parser;
  struct Shrink {
    ~Shrink() {
      if (parser.capacity() > kKeepParserCapacity) parser = ond::parser{};
    }
  } shrink;
  // simdjson reads up to SIMDJSON_PADDING bytes past the JSON: in place
  // when the body's buffer has them (the HTTP reader leaves them), else
  // from a padded copy.
  simdjson::padded_string copy;
  const char* json = b.data();
  size_t capacity = b.capacity();
  if (capacity < jlen + simdjson::SIMDJSON_PADDING) {
    copy = simdjson::padded_string(b.data(), jlen);
    json = copy.data();
    capacity = jlen + simdjson::SIMDJSON_PADDING;
  }
  // Malformed JSON in a body that declares binary data most likely means
  // the client forgot the header that says where the JSON ends.
  auto explain = [&](Status st) {
    if (json_length < 0 && st.message().starts_with("malformed JSON") &&
        b.find("\"binary_data_size\"") != std::string::npos) {
      return InvalidArgumentError(
          "the body is not all JSON and declares binary_data_size, but the request has no "
          "Inference-Header-Content-Length header (the length of its JSON part)");
    }
    return st;
  };
  ond::document doc;
  if (auto err = parser.iterate(json, jlen, capacity).get(doc); err) return explain(JsonError(err));
  DecodedRequest out;
  RequestDecoder decoder(body, jlen, json_length, model);
  if (Status st = decoder.Run(doc, &out); !st.ok()) return explain(std::move(st));
  return out;
}

}  // namespace inferd::kserve
