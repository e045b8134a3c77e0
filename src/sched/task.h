#pragma once
// Task: one request's unit of work on its way through a model's queue and
// batcher. A Task owns its completion callback and guarantees that it runs
// exactly once: Complete() runs it; if a Task is destroyed without having
// been completed (a bug or a shutdown path), the destructor completes it with
// an error, so no accepted request is ever left without an answer.
//
// Threading: a Task is owned by one thread at a time (moved through
// unique_ptr); Complete() may be called from any thread, once.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/cancellation.h"
#include "common/clock.h"
#include "common/status.h"
#include "tensor/tensor.h"

namespace inferd {

// Where a streamed (decoupled) response's chunks go, before the task's one
// Complete() ends the stream (OK with no outputs) or fails it.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  // Delivers one chunk (outputs in the model's output order). Returns true
  // when the producer may go on at once; false when the consumer's bounded
  // buffer is full: the producer must not send the next chunk before
  // `resume` runs (once, from any thread; at once if the stream is gone).
  virtual bool Chunk(std::vector<Tensor> outputs, std::function<void()> resume) = 0;
};

// Where a task stands in a model's queue (sched/priority_fair_queue.h):
// its priority level (1 is the highest; larger numbers are lower, Triton's
// convention), and its tenant with the tenant's fair-share weight.
struct QueueKey {
  uint32_t tenant = 0;  // dense id: 0 is the default tenant
  uint32_t weight = 1;  // >= 1: the tenant's share at equal priority
  int level = 1;        // 1..levels
};

// Why a task was completed without running (for the metrics).
enum class DropCause : uint8_t {
  kNone,
  kExpired,    // its deadline passed while it was queued
  kCancelled,  // its client left
  kEvicted,    // pushed out of a full model by higher-priority work
};

struct TaskTimings {
  Time enqueued{};
  Time started{};                   // taken off the queue into a batch
  Time compute_started{};           // inputs assembled, backend called
  Time finished{};                  // backend returned
  int64_t executed_batch_size = 0;  // items in the batch this task ran in
  DropCause drop_cause = DropCause::kNone;
};

class Task {
 public:
  using Callback = std::function<void(StatusOr<std::vector<Tensor>> outputs, const TaskTimings&)>;

  // `inputs` in model input order. `batch_size` is the task's first
  // dimension for batching models (else 1). Tasks with different
  // `shape_signature`s are never put in one batch.
  Task(std::vector<Tensor> inputs, int64_t batch_size, std::string shape_signature, Callback done)
      : inputs_(std::move(inputs)),
        batch_size_(batch_size),
        signature_(std::move(shape_signature)),
        done_(std::move(done)) {}
  ~Task();
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  const std::vector<Tensor>& inputs() const { return inputs_; }
  int64_t batch_size() const { return batch_size_; }
  const std::string& shape_signature() const { return signature_; }
  TaskTimings& timings() { return timings_; }
  const TaskTimings& timings() const { return timings_; }

  // The request's deadline and cancellation (RequestContext): a task still
  // queued when either fires is dropped and answered without running.
  void set_deadline(Time deadline) { deadline_ = deadline; }
  void set_cancellation(std::shared_ptr<Cancellation> cancel) { cancel_ = std::move(cancel); }
  Time deadline() const { return deadline_; }
  // Triton's DELAY timeout action: past `timeout` the task still runs,
  // but after every task of its level that is not past its own.
  void set_queue_timeout(Time timeout) { queue_timeout_ = timeout; }
  Time queue_timeout() const { return queue_timeout_; }
  void set_queue_key(QueueKey key) { key_ = key; }
  const QueueKey& queue_key() const { return key_; }
  // Why the task must not run now (its cancellation's reason, or
  // DeadlineExceeded), or OK.
  Status DropReason(Time now) const;

  // Streaming: a task with a sink takes chunks before its completion; a
  // backend that streams checks streaming() and cancelled() between chunks.
  void set_stream(std::shared_ptr<ChunkSink> sink) { stream_ = std::move(sink); }
  bool streaming() const { return stream_ != nullptr; }
  // See ChunkSink::Chunk. Without a sink, or once completed: false, and
  // `resume` runs at once (the producer never waits for nothing).
  bool Chunk(std::vector<Tensor> outputs, std::function<void()> resume) {
    if (!stream_ || completed()) {
      if (resume) resume();
      return false;
    }
    return stream_->Chunk(std::move(outputs), std::move(resume));
  }
  // The request's cancellation fired (the client left).
  bool cancelled() const { return cancel_ && cancel_->cancelled(); }
  Status cancel_reason() const { return cancel_ ? cancel_->reason() : Status::OK(); }

  // Runs `hook` once, right after the callback (whoever completes the task,
  // the destructor included). One hook per task.
  void AddCompletionHook(std::function<void()> hook) { hook_ = std::move(hook); }

  // Runs the callback; later calls are ignored.
  void Complete(StatusOr<std::vector<Tensor>> outputs);
  bool completed() const { return !done_; }

 private:
  std::vector<Tensor> inputs_;
  int64_t batch_size_;
  std::string signature_;
  Callback done_;
  std::function<void()> hook_;
  TaskTimings timings_;
  Time deadline_ = Time::max();
  Time queue_timeout_ = Time::max();
  QueueKey key_;
  std::shared_ptr<Cancellation> cancel_;
  std::shared_ptr<ChunkSink> stream_;
};

using TaskBatch = std::vector<std::unique_ptr<Task>>;

}  // namespace inferd
