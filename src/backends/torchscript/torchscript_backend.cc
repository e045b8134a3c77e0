#include "backends/torchscript/torchscript_backend.h"

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <charconv>
#include <filesystem>

namespace inferd {
namespace {

StatusOr<at::ScalarType> ToTorch(DataType t) {
  switch (t) {
    case DataType::kBool:
      return at::kBool;
    case DataType::kUint8:
      return at::kByte;
    case DataType::kInt8:
      return at::kChar;
    case DataType::kInt16:
      return at::kShort;
    case DataType::kInt32:
      return at::kInt;
    case DataType::kInt64:
      return at::kLong;
    case DataType::kFp16:
      return at::kHalf;
    case DataType::kFp32:
      return at::kFloat;
    case DataType::kFp64:
      return at::kDouble;
    default:
      break;
  }
  return InvalidArgumentError("datatype " + std::string(DataTypeName(t)) +
                              " is not supported by the torchscript backend");
}

StatusOr<int64_t> IntParam(const ModelConfig& c, const std::string& key, int64_t def, int64_t min) {
  auto it = c.parameters.find(key);
  if (it == c.parameters.end()) return def;
  int64_t v = def;
  const std::string& s = it->second;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < min) {
    return InvalidArgumentError("parameters." + key + " must be an integer >= " +
                                std::to_string(min) + ", got '" + s + "'");
  }
  return v;
}

StatusOr<bool> BoolParam(const ModelConfig& c, const std::string& key, bool def) {
  auto it = c.parameters.find(key);
  if (it == c.parameters.end()) return def;
  if (it->second == "true" || it->second == "1") return true;
  if (it->second == "false" || it->second == "0") return false;
  return InvalidArgumentError("parameters." + key + " must be true or false, got '" + it->second +
                              "'");
}

std::string What(const std::exception& e) {
  if (auto* ce = dynamic_cast<const c10::Error*>(&e)) return ce->what_without_backtrace();
  return e.what();
}

// One module copy; runs one batch at a time (the DynamicBatcher hands batches
// to free instances on the shared executor).
class TorchScriptInstance final : public BackendInstance {
 public:
  static StatusOr<std::unique_ptr<BackendInstance>> Create(const BackendInstanceSpec& spec) {
    const ModelConfig& config = *spec.config;
    auto inst = std::unique_ptr<TorchScriptInstance>(new TorchScriptInstance(config));
    for (const auto& t : config.inputs) {
      INFERD_ASSIGN_OR_RETURN(at::ScalarType st, ToTorch(t.dtype));
      inst->input_types_.push_back(st);
    }
    for (const auto& t : config.outputs) {
      INFERD_ASSIGN_OR_RETURN(at::ScalarType st, ToTorch(t.dtype));
      inst->output_types_.push_back(st);
    }
    INFERD_ASSIGN_OR_RETURN(int64_t threads, IntParam(config, "intra_op_threads", 1, 1));
    INFERD_ASSIGN_OR_RETURN(int64_t warmup_runs, IntParam(config, "warmup_runs", 2, 0));
    INFERD_ASSIGN_OR_RETURN(bool optimize, BoolParam(config, "optimize", true));
    inst->threads_ = static_cast<int>(threads);
    auto fname = config.parameters.count("model_filename") ? config.parameters.at("model_filename")
                                                           : std::string("model.pt");
    std::string path = (std::filesystem::path(spec.version_dir) / fname).string();
    if (!std::filesystem::exists(path)) return NotFoundError(path + " does not exist");
    try {
      inst->module_ = torch::jit::load(path, torch::kCPU);
      inst->module_.eval();
      if (optimize) inst->module_ = torch::jit::optimize_for_inference(inst->module_);
    } catch (const std::exception& e) {
      return InvalidArgumentError("cannot load " + path + ": " + What(e));
    }
    INFERD_RETURN_IF_ERROR(inst->Warmup(warmup_runs));
    return std::unique_ptr<BackendInstance>(std::move(inst));
  }

  StatusOr<std::vector<Tensor>> Execute(const std::vector<Tensor>& inputs) override {
    thread_local int configured_threads = 0;
    if (configured_threads != threads_) {
      at::set_num_threads(threads_);
      configured_threads = threads_;
    }
    try {
      c10::InferenceMode guard;
      std::vector<c10::IValue> args;
      args.reserve(inputs.size());
      for (size_t i = 0; i < inputs.size(); ++i) {
        const Tensor& in = inputs[i];
        // The module only reads its inputs; from_blob needs a non-const pointer.
        args.emplace_back(torch::from_blob(const_cast<uint8_t*>(in.data()), in.shape(),
                                           torch::TensorOptions().dtype(input_types_[i])));
      }
      c10::IValue result = module_.forward(args);
      return ConvertOutputs(result);
    } catch (const std::exception& e) {
      return InternalError("model '" + config_.name + "' failed: " + What(e));
    }
  }

 private:
  explicit TorchScriptInstance(const ModelConfig& config) : config_(config) {}

  Status Warmup(int64_t runs) {
    std::vector<Tensor> inputs;
    for (const auto& t : config_.inputs) {
      Shape s = config_.FullShape(t);
      for (int64_t& d : s) {
        if (d == -1 && &d == &s[0] && config_.max_batch_size > 0) d = 1;
      }
      if (ElementCount(s) < 0) return Status::OK();  // variable dims: nothing sensible to run
      size_t bytes = static_cast<size_t>(ElementCount(s)) * DataTypeSize(t.dtype);
      inputs.push_back(Tensor::FromBytes(t.dtype, s, std::string(bytes, '\0')));
    }
    for (int64_t i = 0; i < runs; ++i) {
      auto out = Execute(inputs);
      if (!out.ok()) return out.status().WithContext("warm-up run");
    }
    return Status::OK();
  }

  StatusOr<std::vector<Tensor>> ConvertOutputs(const c10::IValue& result) {
    std::vector<at::Tensor> tensors;
    if (result.isTensor()) {
      tensors.push_back(result.toTensor());
    } else if (result.isTuple()) {
      for (const auto& e : result.toTupleRef().elements()) {
        if (!e.isTensor()) return InternalError("model returned a tuple with a non-tensor element");
        tensors.push_back(e.toTensor());
      }
    } else if (result.isTensorList()) {
      for (const at::Tensor& t : result.toTensorVector()) tensors.push_back(t);
    } else if (result.isGenericDict()) {
      auto dict = result.toGenericDict();
      for (const auto& oc : config_.outputs) {
        auto it = dict.find(c10::IValue(oc.name));
        if (it == dict.end() || !it->value().isTensor()) {
          return InternalError("model did not return output '" + oc.name + "'");
        }
        tensors.push_back(it->value().toTensor());
      }
    } else {
      return InternalError("model returned " + result.tagKind() + ", expected tensors");
    }
    if (tensors.size() != config_.outputs.size()) {
      return InternalError("model returned " + std::to_string(tensors.size()) +
                           " outputs, config declares " + std::to_string(config_.outputs.size()));
    }
    std::vector<Tensor> out;
    out.reserve(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      at::Tensor t = tensors[i];
      if (t.scalar_type() != output_types_[i]) t = t.to(output_types_[i]);
      t = t.contiguous();
      Shape shape(t.sizes().begin(), t.sizes().end());
      auto holder = std::make_shared<at::Tensor>(t);
      const auto* data = static_cast<const uint8_t*>(holder->data_ptr());
      size_t nbytes = holder->nbytes();
      out.push_back(Tensor::View(config_.outputs[i].dtype, std::move(shape), data, nbytes,
                                 std::shared_ptr<const void>(holder, holder.get())));
    }
    return out;
  }

  const ModelConfig& config_;
  torch::jit::Module module_;
  std::vector<at::ScalarType> input_types_;
  std::vector<at::ScalarType> output_types_;
  int threads_ = 1;
};

}  // namespace

BackendFactory TorchScriptBackendFactory() {
  static std::once_flag once;
  std::call_once(once, [] { at::set_num_interop_threads(1); });
  return [](const BackendInstanceSpec& spec) { return TorchScriptInstance::Create(spec); };
}

}  // namespace inferd
