#pragma once
// What a loaded TorchScript module holds and does, for the TorchScript
// backend only (it includes libtorch: never include it outside
// src/backends/torchscript/).

#include <torch/script.h>

#include "model/backend.h"

namespace inferd {

// The bytes of the module's tensors: parameters, buffers and tensor
// attributes of every submodule, and the tensor constants of every
// method's graph (where freezing puts the weights), each storage counted
// once. oneDNN (mkldnn) tensors have no storage: they count their logical
// size as packed bytes, approximately (blocked layouts may pad). Objects of
// custom classes (quantized packed parameters) are not visible: the result
// is then marked approximate. May throw c10::Error.
BackendMemory MeasureModule(const torch::jit::Module& module);

// True when a method of the module or of a submodule writes a module
// attribute (prim::SetAttr): forward must then not run concurrently on one
// copy of the module. May throw c10::Error.
bool WritesAttributes(const torch::jit::Module& module);

}  // namespace inferd
