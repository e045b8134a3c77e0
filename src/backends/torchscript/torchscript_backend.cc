#include "backends/torchscript/torchscript_backend.h"

#include "backends/torchscript/module_info.h"

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <mutex>

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

// What every instance of a version needs: the module (shared, or a copy
// each) and the tensor types.
struct ModuleSpec {
  std::string path;
  bool optimize = true;
  int threads = 1;
  int64_t warmup_runs = 2;
  std::vector<at::ScalarType> input_types;
  std::vector<at::ScalarType> output_types;
};

StatusOr<torch::jit::Module> LoadModule(const ModuleSpec& spec) {
  try {
    torch::jit::Module module = torch::jit::load(spec.path, torch::kCPU);
    module.eval();
    if (spec.optimize) module = torch::jit::optimize_for_inference(module);
    return module;
  } catch (const std::exception& e) {
    return InvalidArgumentError("cannot load " + spec.path + ": " + What(e));
  }
}

// Runs one batch at a time (the DynamicBatcher hands batches to free
// instances on the shared executor). Instances of one version may share
// one module: forward then runs on it from several threads at once, which
// TorchScript allows for modules that write no attribute (prim::SetAttr).
class TorchScriptInstance final : public BackendInstance {
 public:
  TorchScriptInstance(const ModelConfig& config, torch::jit::Module module, const ModuleSpec& spec)
      : config_(config),
        module_(std::move(module)),
        input_types_(spec.input_types),
        output_types_(spec.output_types),
        threads_(spec.threads) {}

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
  const std::vector<at::ScalarType> input_types_;
  const std::vector<at::ScalarType> output_types_;
  const int threads_ = 1;
};

// One loaded version: the module loaded, frozen and optimized once, shared
// by the instances unless it writes module attributes or
// parameters.share_weights = false (then each instance loads a copy).
class TorchScriptModel final : public BackendModel {
 public:
  static StatusOr<std::unique_ptr<BackendModel>> Load(const BackendModelSpec& spec) {
    const ModelConfig& config = *spec.config;
    auto m = std::unique_ptr<TorchScriptModel>(new TorchScriptModel(config));
    ModuleSpec& ms = m->spec_;
    for (const auto& t : config.inputs) {
      INFERD_ASSIGN_OR_RETURN(at::ScalarType st, ToTorch(t.dtype));
      ms.input_types.push_back(st);
    }
    for (const auto& t : config.outputs) {
      INFERD_ASSIGN_OR_RETURN(at::ScalarType st, ToTorch(t.dtype));
      ms.output_types.push_back(st);
    }
    INFERD_ASSIGN_OR_RETURN(int64_t threads, IntParam(config, "intra_op_threads", 1, 1));
    INFERD_ASSIGN_OR_RETURN(ms.warmup_runs, IntParam(config, "warmup_runs", 2, 0));
    INFERD_ASSIGN_OR_RETURN(ms.optimize, BoolParam(config, "optimize", true));
    INFERD_ASSIGN_OR_RETURN(bool share, BoolParam(config, "share_weights", true));
    ms.threads = static_cast<int>(std::min<int64_t>(threads, 1024));
    auto fname = config.parameters.count("model_filename") ? config.parameters.at("model_filename")
                                                           : std::string("model.pt");
    ms.path = (std::filesystem::path(spec.version_dir) / fname).string();
    if (!std::filesystem::exists(ms.path)) return NotFoundError(ms.path + " does not exist");
    INFERD_ASSIGN_OR_RETURN(m->module_, LoadModule(ms));
    try {
      m->memory_ = MeasureModule(m->module_);
      m->shared_ = share && !WritesAttributes(m->module_);
    } catch (const std::exception& e) {
      return InternalError("cannot inspect " + ms.path + ": " + What(e));
    }
    return std::unique_ptr<BackendModel>(std::move(m));
  }

  StatusOr<std::unique_ptr<BackendInstance>> CreateInstance(int index) override {
    torch::jit::Module module = module_;  // a handle on the same module
    if (!shared_ && index > 0) {
      INFERD_ASSIGN_OR_RETURN(module, LoadModule(spec_));
    }
    auto instance = std::make_unique<TorchScriptInstance>(config_, std::move(module), spec_);
    // One warm-up per module (instances sharing it are warm already), and
    // none when the config has [[warmup]] entries (the model layer runs them).
    if ((index == 0 || !shared_) && config_.warmup.empty())
      INFERD_RETURN_IF_ERROR(instance->Warmup(spec_.warmup_runs));
    return std::unique_ptr<BackendInstance>(std::move(instance));
  }
  BackendMemory Memory() const override { return memory_; }
  bool shares_weights() const override { return shared_; }
  int threads_per_execution() const override { return spec_.threads; }

 private:
  explicit TorchScriptModel(const ModelConfig& config) : config_(config) {}

  const ModelConfig& config_;
  ModuleSpec spec_;
  torch::jit::Module module_;
  BackendMemory memory_;
  bool shared_ = false;
};

}  // namespace

BackendModelFactory TorchScriptModelFactory() {
  static std::once_flag once;
  std::call_once(once, [] { at::set_num_interop_threads(1); });
  return [](const BackendModelSpec& spec) { return TorchScriptModel::Load(spec); };
}

}  // namespace inferd
