#include "backends/torchscript/module_info.h"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>

#include <functional>
#include <unordered_set>

namespace inferd {
namespace {

void ForEachNode(torch::jit::Block* block, const std::function<void(torch::jit::Node*)>& fn) {
  for (torch::jit::Node* node : block->nodes()) {
    fn(node);
    for (torch::jit::Block* sub : node->blocks()) ForEachNode(sub, fn);
  }
}

// Every method of the module and of its submodules.
void ForEachGraph(const torch::jit::Module& module,
                  const std::function<void(torch::jit::Block*)>& fn) {
  for (const torch::jit::Module& m : module.modules()) {
    for (const torch::jit::Method& method : m.get_methods()) fn(method.graph()->block());
  }
}

class Counter {
 public:
  explicit Counter(BackendMemory* out) : out_(out) {}
  void Add(const at::Tensor& t) {
    if (!t.defined()) return;
    if (t.is_mkldnn()) {
      out_->packed_bytes += t.numel() * static_cast<int64_t>(t.element_size());
      out_->approximate = true;
      return;
    }
    if (!t.has_storage()) {
      out_->approximate = true;
      return;
    }
    const void* key = t.storage().unsafeGetStorageImpl();
    if (seen_.insert(key).second) out_->weights_bytes += static_cast<int64_t>(t.storage().nbytes());
  }

 private:
  BackendMemory* out_;
  std::unordered_set<const void*> seen_;
};

// Adds every tensor in `v` (tuples, lists, optionals) as packed bytes.
void AddState(const c10::IValue& v, BackendMemory* out, int depth = 0) {
  if (depth > 8) return;
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    if (t.defined()) out->packed_bytes += t.numel() * static_cast<int64_t>(t.element_size());
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) AddState(e, out, depth + 1);
  } else if (v.isList()) {
    for (const c10::IValue& e : v.toListRef()) AddState(e, out, depth + 1);
  }
}

// A custom-class object (quantized packed parameters): the tensors its
// __getstate__ gives, at their logical size (the engine's packed copy
// inside is not visible: approximate).
void AddObject(const c10::IValue& v, BackendMemory* out) {
  out->approximate = true;
  if (!v.isObject()) return;
  try {
    torch::jit::Function* getstate = v.toObjectRef().type()->findMethod("__getstate__");
    if (getstate == nullptr) return;
    AddState((*getstate)({v}), out);
  } catch (const std::exception&) {
    // Not measurable: counted as nothing, the result stays approximate.
  }
}

}  // namespace

BackendMemory MeasureModule(const torch::jit::Module& module) {
  BackendMemory out;
  out.known = true;
  Counter count(&out);
  for (const auto& attr : module.named_attributes(/*recurse=*/true)) {
    if (attr.value.isTensor()) {
      count.Add(attr.value.toTensor());
    } else if (attr.value.isObject() && !attr.value.toObjectRef().type()->is_module()) {
      AddObject(attr.value, &out);  // a custom class (e.g. packed quantized weights)
    }
  }
  ForEachGraph(module, [&](torch::jit::Block* block) {
    ForEachNode(block, [&](torch::jit::Node* node) {
      // optimize_for_inference moves convolution weights into oneDNN
      // tensors held by prim::ConstantMKLDNNTensor nodes.
      if (node->kind() == c10::prim::ConstantMKLDNNTensor) {
        if (node->hasAttribute(c10::attr::value)) count.Add(node->t(c10::attr::value));
        return;
      }
      if (node->kind() != c10::prim::Constant) return;
      const c10::TypePtr& type = node->output()->type();
      if (type->kind() == c10::TypeKind::TensorType) {
        if (auto v = torch::jit::toIValue(node->output()); v && v->isTensor())
          count.Add(v->toTensor());
      } else if (type->kind() == c10::TypeKind::ClassType) {
        if (auto v = torch::jit::toIValue(node->output())) AddObject(*v, &out);
      }
    });
  });
  return out;
}

bool WritesAttributes(const torch::jit::Module& module) {
  bool writes = false;
  ForEachGraph(module, [&](torch::jit::Block* block) {
    ForEachNode(block, [&](torch::jit::Node* node) {
      if (node->kind() == c10::prim::SetAttr) writes = true;
    });
  });
  return writes;
}

}  // namespace inferd
