#pragma once
// Assembling a batch's inputs into contiguous tensors and splitting the
// batched outputs back per task. Concatenation writes into buffers from a
// BufferPool, so forming a batch allocates nothing in the steady state; a
// batch of one task passes its tensors through untouched. Splitting makes
// views that share the output's storage (no copy).

#include <vector>

#include "common/status.h"
#include "sched/task.h"
#include "tensor/buffer_pool.h"

namespace inferd {

// Concatenates input i of every task along dim 0. All tasks must share a
// shape signature (guaranteed by the batcher).
StatusOr<std::vector<Tensor>> ConcatBatchInputs(const TaskBatch& batch, BufferPool* pool);

// Splits each batched output along dim 0 in the tasks' order and batch
// sizes, completing every task with its slice (or with `outputs`' error).
void CompleteBatch(TaskBatch& batch, StatusOr<std::vector<Tensor>> outputs);

}  // namespace inferd
