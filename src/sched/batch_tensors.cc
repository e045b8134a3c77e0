#include "sched/batch_tensors.h"

#include <cstring>

namespace inferd {

StatusOr<std::vector<Tensor>> ConcatBatchInputs(const TaskBatch& batch, BufferPool* pool) {
  if (batch.empty()) return InvalidArgumentError("empty batch");
  const auto& first = batch.front()->inputs();
  if (batch.size() == 1) return first;
  std::vector<Tensor> out;
  out.reserve(first.size());
  for (size_t i = 0; i < first.size(); ++i) {
    size_t bytes = 0;
    int64_t rows = 0;
    for (const auto& t : batch) {
      const Tensor& in = t->inputs()[i];
      if (in.dtype() != first[i].dtype() || in.shape().size() != first[i].shape().size()) {
        return InternalError("tasks with different input layouts in one batch");
      }
      bytes += in.byte_size();
      rows += in.shape().empty() ? 1 : in.shape()[0];
    }
    auto buf = pool->Acquire(bytes);
    size_t pos = 0;
    for (const auto& t : batch) {
      const Tensor& in = t->inputs()[i];
      if (in.byte_size()) std::memcpy(buf->data() + pos, in.data(), in.byte_size());
      pos += in.byte_size();
    }
    Shape shape = first[i].shape();
    if (!shape.empty()) shape[0] = rows;
    const uint8_t* data = buf->data();
    out.push_back(Tensor::View(first[i].dtype(), std::move(shape), data, bytes, std::move(buf)));
  }
  return out;
}

void CompleteBatch(TaskBatch& batch, StatusOr<std::vector<Tensor>> outputs) {
  if (!outputs.ok()) {
    for (auto& t : batch) t->Complete(outputs.status());
    return;
  }
  if (batch.size() == 1) {
    batch.front()->Complete(std::move(outputs));
    return;
  }
  int64_t total = 0;
  for (const auto& t : batch) total += t->batch_size();
  std::vector<std::vector<Tensor>> per_task(batch.size());
  for (const Tensor& out : *outputs) {
    if (out.shape().empty() || out.shape()[0] != total || out.dtype() == DataType::kBytes) {
      Status err = InternalError("model output of shape " + ShapeToString(out.shape()) +
                                 " cannot be split into a batch of " + std::to_string(total));
      for (auto& t : batch) t->Complete(err);
      return;
    }
    size_t row_bytes = out.byte_size() / static_cast<size_t>(total);
    size_t offset = 0;
    for (size_t k = 0; k < batch.size(); ++k) {
      Shape shape = out.shape();
      shape[0] = batch[k]->batch_size();
      size_t n = row_bytes * static_cast<size_t>(shape[0]);
      per_task[k].push_back(out.Slice(offset, n, std::move(shape)));
      offset += n;
    }
  }
  for (size_t k = 0; k < batch.size(); ++k) batch[k]->Complete(std::move(per_task[k]));
}

}  // namespace inferd
