#include "model/warmup.h"

#include <cstring>
#include <fstream>
#include <functional>
#include <random>

namespace inferd {
namespace {

template <typename T>
void Store(std::string* bytes, size_t i, double v) {
  T x = static_cast<T>(v);
  std::memcpy(bytes->data() + i * sizeof(T), &x, sizeof(T));
}

// Writes `v` as element `i` of a numeric (non-FP16, non-BYTES) tensor.
void Put(DataType t, std::string* bytes, size_t i, double v) {
  switch (t) {
    case DataType::kBool:
      Store<uint8_t>(bytes, i, v != 0 ? 1 : 0);
      break;
    case DataType::kUint8:
      Store<uint8_t>(bytes, i, v);
      break;
    case DataType::kUint16:
      Store<uint16_t>(bytes, i, v);
      break;
    case DataType::kUint32:
      Store<uint32_t>(bytes, i, v);
      break;
    case DataType::kUint64:
      Store<uint64_t>(bytes, i, v);
      break;
    case DataType::kInt8:
      Store<int8_t>(bytes, i, v);
      break;
    case DataType::kInt16:
      Store<int16_t>(bytes, i, v);
      break;
    case DataType::kInt32:
      Store<int32_t>(bytes, i, v);
      break;
    case DataType::kInt64:
      Store<int64_t>(bytes, i, v);
      break;
    case DataType::kFp32:
      Store<float>(bytes, i, v);
      break;
    case DataType::kFp64:
      Store<double>(bytes, i, v);
      break;
    case DataType::kFp16:
    case DataType::kBytes:
      break;  // refused by the config parser for these fills
  }
}

StatusOr<std::string> ReadFile(const std::string& path, size_t expected) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return NotFoundError("cannot read " + path);
  const auto size = static_cast<size_t>(f.tellg());
  if (size != expected) {
    return InvalidArgumentError(path + " holds " + std::to_string(size) + " bytes; one item is " +
                                std::to_string(expected));
  }
  std::string bytes(size, '\0');
  f.seekg(0);
  f.read(bytes.data(), static_cast<std::streamsize>(size));
  if (!f) return InternalError("cannot read " + path);
  return bytes;
}

}  // namespace

StatusOr<std::vector<Tensor>> WarmupInputs(const ModelConfig& config, const WarmupConfig& entry,
                                           size_t index, int64_t batch,
                                           const std::string& model_dir) {
  std::mt19937_64 rng(std::hash<std::string>()(config.name) ^ (index * 0x9E3779B97F4A7C15ULL));
  std::vector<Tensor> out;
  for (const TensorConfig& tc : config.inputs) {
    const WarmupInputConfig* over = nullptr;
    for (const auto& in : entry.inputs) {
      if (in.name == tc.name) over = &in;
    }
    Shape item = over != nullptr && !over->dims.empty() ? over->dims : tc.dims;
    const WarmupFill fill = over != nullptr && over->fill ? *over->fill : entry.fill;
    const int64_t n_item = ElementCount(item);
    if (n_item < 0) return InvalidArgumentError("input '" + tc.name + "' has variable dims");
    Shape shape = item;
    if (config.max_batch_size > 0) shape.insert(shape.begin(), batch);
    const int64_t n = ElementCount(shape);
    // BYTES: every element an empty string (a zero 4-byte length).
    const size_t elem = tc.dtype == DataType::kBytes ? 4 : DataTypeSize(tc.dtype);
    if (n < 0 || static_cast<uint64_t>(n) > (uint64_t{1} << 31) / elem)
      return InvalidArgumentError("input '" + tc.name + "' is too large to warm up");
    std::string bytes(static_cast<size_t>(n) * elem, '\0');
    switch (fill) {
      case WarmupFill::kZero:
        break;
      case WarmupFill::kRandom: {
        const bool integral = tc.dtype != DataType::kFp32 && tc.dtype != DataType::kFp64;
        std::uniform_real_distribution<double> unit(0.0, 1.0);
        std::uniform_int_distribution<int> small(0, 9);
        for (int64_t i = 0; i < n; ++i) {
          Put(tc.dtype, &bytes, static_cast<size_t>(i),
              integral ? (tc.dtype == DataType::kBool ? small(rng) % 2 : small(rng)) : unit(rng));
        }
        break;
      }
      case WarmupFill::kValues:
        for (int64_t i = 0; i < n; ++i) {
          Put(tc.dtype, &bytes, static_cast<size_t>(i),
              over->values[static_cast<size_t>(i) % over->values.size()]);
        }
        break;
      case WarmupFill::kFile: {
        const size_t one = static_cast<size_t>(n_item) * elem;
        INFERD_ASSIGN_OR_RETURN(std::string data, ReadFile(model_dir + "/" + over->file, one));
        for (size_t b = 0; b * one < bytes.size(); ++b)
          std::memcpy(bytes.data() + b * one, data.data(), one);
        break;
      }
    }
    out.push_back(Tensor::FromBytes(tc.dtype, std::move(shape), std::move(bytes)));
  }
  return out;
}

Status RunWarmup(const ModelConfig& config, const std::vector<BackendInstance*>& instances,
                 const std::string& model_dir, Clock* clock, Duration* took) {
  const Time start = clock->Now();
  for (size_t e = 0; e < config.warmup.size(); ++e) {
    const WarmupConfig& entry = config.warmup[e];
    for (int64_t batch : entry.batch_sizes) {
      auto inputs = WarmupInputs(config, entry, e, batch, model_dir);
      if (!inputs.ok()) {
        return inputs.status().WithContext("warm-up '" + entry.name + "' at batch size " +
                                           std::to_string(batch));
      }
      for (BackendInstance* instance : instances) {
        for (int64_t i = 0; i < entry.count; ++i) {
          auto out = instance->Execute(*inputs);
          if (!out.ok()) {
            return out.status().WithContext("warm-up '" + entry.name + "' at batch size " +
                                            std::to_string(batch));
          }
        }
      }
    }
  }
  *took = clock->Now() - start;
  return Status::OK();
}

}  // namespace inferd
