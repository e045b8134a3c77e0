#include "server/inference_server.h"

#include "server/call.h"

#include <algorithm>

#include "common/logging.h"

namespace inferd {
namespace {}  // namespace

const char* CacheStatusName(CacheStatus s) {
  switch (s) {
    case CacheStatus::kNone:
      return "";
    case CacheStatus::kMiss:
      return "miss";
    case CacheStatus::kHitMemory:
      return "hit-memory";
    case CacheStatus::kHitDisk:
      return "hit-disk";
    case CacheStatus::kHitRedis:
      return "hit-redis";
    case CacheStatus::kCoalesced:
      return "coalesced";
    case CacheStatus::kStale:
      return "stale";
  }
  return "";
}

namespace {

Outcome OutcomeOf(const Status& st) {
  switch (st.code()) {
    case StatusCode::kOk:
      return Outcome::kSuccess;
    case StatusCode::kInvalidArgument:
      return Outcome::kInvalid;
    case StatusCode::kNotFound:
      return Outcome::kNotFound;
    case StatusCode::kResourceExhausted:
    case StatusCode::kUnavailable:
      return Outcome::kRejected;
    default:
      return Outcome::kError;
  }
}

Status CheckByteSize(const std::string& name, const Tensor& t) {
  int64_t n = t.element_count();
  if (n < 0)
    return InvalidArgumentError("input '" + name + "' has an invalid shape " +
                                ShapeToString(t.shape()));
  if (t.dtype() == DataType::kBytes) {
    if (!ValidateBytesElements(t.bytes(), n)) {
      return InvalidArgumentError("input '" + name + "': BYTES data does not hold " +
                                  std::to_string(n) + " length-prefixed elements");
    }
    return Status::OK();
  }
  int64_t want = FixedByteSize(t.dtype(), t.shape());
  if (want < 0 || t.byte_size() != static_cast<uint64_t>(want)) {
    return InvalidArgumentError("input '" + name + "': shape " + ShapeToString(t.shape()) +
                                " needs " + std::to_string(want) + " bytes of " +
                                std::string(DataTypeName(t.dtype())) + ", got " +
                                std::to_string(t.byte_size()));
  }
  return Status::OK();
}

// Execution failures are logged, at most once a second with a count of the
// suppressed ones, so a failing model cannot flood the log.
void LogFailure(const std::string& model, const Status& st) {
  static RateLimitedLog limiter;
  int64_t suppressed = 0;
  if (limiter.ShouldLog(&suppressed)) {
    INFERD_LOG_ERROR("model '{}': {} ({} similar errors suppressed)", model, st.message(),
                     suppressed);
  }
}

}  // namespace

InferenceServer::InferenceServer(const Options& options) : options_(options) {
  if (options_.cache && options_.encoded_max_bytes > 0) {
    seen_ = std::make_unique<std::atomic<uint64_t>[]>(kSeenSlots);  // value-initialized: 0
  }
}

StatusOr<std::unique_ptr<InferenceServer>> InferenceServer::Create(const Options& options) {
  if (!options.models || !options.metrics)
    return InvalidArgumentError("models and metrics are required");
  Options o = options;
  if (!o.clock) o.clock = Clock::System();
  return std::unique_ptr<InferenceServer>(new InferenceServer(o));
}

Status InferenceServer::Validate(const ModelConfig& config, InferRequest& request,
                                 std::vector<Tensor>* inputs, int64_t* batch,
                                 std::string* signature) const {
  inputs->assign(config.inputs.size(), Tensor());
  std::vector<bool> seen(config.inputs.size(), false);
  *batch = config.max_batch_size > 0 ? -1 : 1;
  for (auto& in : request.inputs) {
    const Tensor& t = in.tensor;
    size_t idx = 0;
    INFERD_RETURN_IF_ERROR(config.CheckInput(in.name, t.dtype(), t.shape(), &idx));
    if (seen[idx]) return InvalidArgumentError("input '" + in.name + "' is given twice");
    seen[idx] = true;
    if (config.max_batch_size > 0) {
      int64_t b = t.shape()[0];
      if (*batch != -1 && *batch != b) {
        return InvalidArgumentError("inputs disagree on the batch size (" + std::to_string(*batch) +
                                    " vs " + std::to_string(b) + ")");
      }
      *batch = b;
    }
    INFERD_RETURN_IF_ERROR(CheckByteSize(in.name, t));
    (*inputs)[idx] = t;
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) return InvalidArgumentError("missing input '" + config.inputs[i].name + "'");
  }
  for (const auto& name : request.outputs) {
    bool known = std::any_of(config.outputs.begin(), config.outputs.end(),
                             [&](const TensorConfig& c) { return c.name == name; });
    if (!known)
      return InvalidArgumentError("unknown output '" + name + "' for model '" + config.name + "'");
  }
  signature->clear();
  size_t first = config.max_batch_size > 0 ? 1 : 0;
  for (const Tensor& t : *inputs) {
    for (size_t d = first; d < t.shape().size(); ++d) {
      *signature += std::to_string(t.shape()[d]);
      *signature += ',';
    }
    *signature += ';';
  }
  return Status::OK();
}

void InferenceServer::Infer(InferRequest request, InferCallback done,
                            std::shared_ptr<ModelVersion> resolved) {
  ServerMetrics* metrics = options_.metrics;
  metrics->inflight()->Add(1);
  auto call = std::make_shared<Call>();
  call->start = options_.clock->Now();
  call->done = std::move(done);
  call->mm = metrics->For("", 0);

  // 1. admission: no-op until tenants and rate limits exist.
  // 3. model (resolved first: the cache key needs the resolved version).
  if (resolved) {
    call->mv = std::move(resolved);
  } else {
    auto version = options_.models->Get(request.model, request.version);
    if (!version.ok()) {
      Finish(*call, version.status());
      return;
    }
    call->mv = std::move(version).value();
  }
  call->mm = metrics->For(call->mv->config().name, call->mv->version());
  if (Status st =
          Validate(call->mv->config(), request, &call->inputs, &call->batch, &call->signature);
      !st.ok()) {
    Finish(*call, std::move(st));
    return;
  }
  call->request = std::move(request);
  // 2. cache, then 4-6.
  CacheStage(std::move(call));
}

void InferenceServer::Execute(std::shared_ptr<Call> call) {
  auto task = std::make_unique<Task>(
      std::move(call->inputs), call->batch, std::move(call->signature),
      [this, call](StatusOr<std::vector<Tensor>> outputs, const TaskTimings& timings) {
        OnExecuted(call, std::move(outputs), timings);
      });
  if (Status st = call->mv->Submit(task); !st.ok()) {
    // Ownership stayed here: answer through the task, exactly once.
    task->Complete(st);
  }
}

void InferenceServer::OnExecuted(std::shared_ptr<Call> call, StatusOr<std::vector<Tensor>> outputs,
                                 const TaskTimings& timings) {
  const ModelConfig& config = call->mv->config();
  StatusOr<InferResponse> result = outputs.status();
  if (outputs.ok()) {
    InferResponse r;
    r.model = config.name;
    r.version = call->mv->version();
    r.id = call->request.id;
    const auto& wanted = call->request.outputs;
    for (size_t i = 0; i < config.outputs.size() && i < outputs->size(); ++i) {
      if (!wanted.empty() &&
          std::find(wanted.begin(), wanted.end(), config.outputs[i].name) == wanted.end()) {
        continue;
      }
      r.outputs.push_back({config.outputs[i].name, std::move((*outputs)[i])});
    }
    result = std::move(r);
    call->mm->queue_duration->Observe(Seconds(timings.started - timings.enqueued));
    call->mm->compute_duration->Observe(Seconds(timings.finished - timings.compute_started));
  } else if (outputs.status().code() == StatusCode::kInternal) {
    LogFailure(config.name, outputs.status());
  }
  if (call->cached) AfterExecution(*call, &result);
  Finish(*call, std::move(result));
}

void InferenceServer::Finish(Call& call, StatusOr<InferResponse> result) {
  Status st = result.status();
  call.mm->outcomes[static_cast<int>(OutcomeOf(st))]->Increment();
  if (call.mv) call.mm->request_duration->Observe(Seconds(options_.clock->Now() - call.start));
  options_.metrics->inflight()->Add(-1);
  InferCallback done = std::move(call.done);
  call.done = nullptr;
  if (done) done(std::move(result));
}

void InferenceServer::CollectGauges() {
  for (const ModelState& s : options_.models->List()) {
    if (!s.ready) continue;
    auto mv = options_.models->Get(s.name, std::to_string(s.version));
    if (mv.ok())
      options_.metrics->For(s.name, s.version)
          ->queue_depth->Set(static_cast<double>((*mv)->queue_depth()));
  }
}

}  // namespace inferd
