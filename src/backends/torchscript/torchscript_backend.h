#pragma once
// The TorchScript backend: runs a model.pt saved by torch.jit.save through
// Debian's libtorch. This header is free of libtorch includes on purpose;
// only torchscript_backend.cc sees them.
//
// Parameters ([parameters] in config.toml):
//   intra_op_threads  threads libtorch may use inside one forward (default 1;
//                     instances x threads are clamped to the executor's)
//   model_filename    file in the version directory (default "model.pt")
//   warmup_runs       forwards run at load on zeros when every dim is fixed
//                     (default 2), unless config.toml has [[warmup]] entries
//   share_weights     true (default): the instances run one copy of the
//                     module concurrently (unless it writes attributes);
//                     false: a copy per instance
//   optimize          true (default): freeze the module and apply
//                     torch.jit.optimize_for_inference (folds batch norm into
//                     convolutions, pre-packs weights); false: run it as saved

#include "model/backend.h"

namespace inferd {

// The model factory to register under the name "torchscript".
BackendModelFactory TorchScriptModelFactory();

}  // namespace inferd
