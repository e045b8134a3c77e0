#include "server/inference_server.h"

#include "server/call.h"

#include <algorithm>

#include "common/logging.h"

namespace inferd {

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
    case StatusCode::kDeadlineExceeded:
      return Outcome::kDeadlineExceeded;
    case StatusCode::kCancelled:
      return Outcome::kCancelled;
    case StatusCode::kUnauthenticated:
    case StatusCode::kPermissionDenied:
      return Outcome::kUnauthenticated;
    case StatusCode::kRateLimited:
      return Outcome::kRateLimited;
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

// The timeouts of a request at a level with `policy` (Triton's
// ModelQueuePolicy): its own (parameters.timeout), else the level's
// default, else (timeout_action "reject") the server's default; never past
// the level's maximum (a request may shorten its timeout, not lengthen
// it). With "reject" that is the deadline (504 unrun); with "delay", a
// queue timeout past which the request runs after the rest of its level,
// and the server's default stays the deadline.
void ApplyTimeouts(const QueuePolicyConfig& policy, Duration server_default,
                   int64_t request_timeout_us, Time start, Time* deadline, Time* queue_timeout) {
  const int64_t server_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                std::max(server_default, Duration::zero()))
                                .count();
  int64_t us = request_timeout_us > 0 ? request_timeout_us : policy.default_timeout_us;
  if (us <= 0 && !policy.delay) us = server_us;
  if (policy.max_timeout_us > 0)
    us = us > 0 ? std::min(us, policy.max_timeout_us) : policy.max_timeout_us;
  if (!policy.delay) {
    if (us > 0) *deadline = std::min(*deadline, start + std::chrono::microseconds(us));
    return;
  }
  if (us > 0) *queue_timeout = start + std::chrono::microseconds(us);
  if (server_us > 0) *deadline = std::min(*deadline, start + std::chrono::microseconds(server_us));
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

namespace {

// Infer()'s exchange: a decoded request in, the decoded response out.
class DecodedExchange final : public InferExchange {
 public:
  DecodedExchange(InferRequest request, InferCallback done)
      : request_(std::move(request)), done_(std::move(done)) {
    model = request_.model;
    version = request_.version;
    no_cache = request_.no_cache;
    no_store = request_.no_store;
  }
  std::string_view body() const override { return {}; }
  std::string_view encoding() const override { return {}; }
  StatusOr<InferRequest> Decode(const ModelConfig&) override { return std::move(request_); }
  Status Encode(const InferResponse& response, EncodedReply*) override {
    response_ = response;
    return Status::OK();
  }
  void Complete(StatusOr<EncodedReply> reply) override {
    if (!reply.ok()) {
      done_(reply.status());
      return;
    }
    response_.cache = reply->cache;
    response_.age_s = reply->age_s;
    done_(std::move(response_));
  }

 private:
  InferRequest request_;
  InferCallback done_;
  InferResponse response_;
};

}  // namespace

// A decoupled model's chunks, on their way to the exchange (the backend's
// thread; never concurrent with each other or with the completion).
class InferenceServer::StreamToExchange final : public ChunkSink {
 public:
  StreamToExchange(const InferenceServer* server, std::shared_ptr<Call> call)
      : server_(server), call_(std::move(call)) {}
  bool Chunk(std::vector<Tensor> outputs, std::function<void()> resume) override {
    if (!call_->x) {  // answered already
      resume();
      return false;
    }
    return call_->x->Chunk(server_->MakeResponse(*call_, std::move(outputs)), std::move(resume));
  }

 private:
  const InferenceServer* server_;
  std::shared_ptr<Call> call_;
};

void InferenceServer::Infer(InferRequest request, InferCallback done, RequestContext context) {
  auto x = std::make_unique<DecodedExchange>(std::move(request), std::move(done));
  x->context = std::move(context);
  x->context.authenticated = true;
  Submit(std::move(x));
}

void InferenceServer::Submit(std::unique_ptr<InferExchange> x) {
  const Time start = options_.clock->Now();
  options_.metrics->RequestStarted();
  RequestContext& ctx = x->context;
  if (!ctx.cancel) ctx.cancel = std::make_shared<Cancellation>();

  // 1a. admission: who is asking (its rate limits: 1b; priorities and
  //     overload control come next, docs/design-admission.md). In-process
  //     callers (cache warm-up, tests) are trusted and not limited.
  const Tenant* tenant = nullptr;
  if (options_.admission != nullptr && !ctx.authenticated) {
    StatusOr<const Tenant*> found = options_.admission->Authenticate(ctx.credential);
    ctx.credential.clear();
    if (!found.ok()) {
      Reply(*x, nullptr, start, found.status());
      return;
    }
    tenant = *found;
    ctx.tenant = tenant->name;
  }
  ctx.authenticated = true;
  // 3. model, resolved first: every cache key names the resolved version.
  //    A model that is not loaded yet is admitted on its registered config
  //    and loads after the limits (WaitForModel): a refused request never
  //    causes a load.
  Acquired acquired = options_.models->Acquire(x->model, x->version);
  if (!acquired.status.ok()) {
    Reply(*x, nullptr, start, acquired.status);
    return;
  }
  const ModelConfig& config = acquired.lease ? acquired.lease->config() : *acquired.pending->config;
  ModelMetrics* mm = options_.metrics->For(
      config.name, acquired.lease ? acquired.lease->version() : acquired.pending->version);
  // The priority level: the header's (the body is not read yet), else the
  // model's default, within the tenant's cap.
  const SchedulingConfig& sched = config.scheduling;
  const int64_t max_priority = tenant != nullptr ? tenant->max_priority : 0;
  QueueKey queue_key{tenant != nullptr ? tenant->id : 0, tenant != nullptr ? tenant->weight : 1,
                     sched.Level(ctx.priority, max_priority)};
  Admitted a{
      std::move(x), std::move(acquired.lease), std::move(acquired.pending), mm, start, tenant,
      queue_key};
  // 1b. rate limits: the tenant's and the tenant's for this model (needs
  //     the resolved name); memo hits count like any request.
  if (tenant != nullptr) {
    if (Status st =
            options_.admission->CheckLimits(*tenant, a.config().name, start, &a.x->admission);
        !st.ok()) {
      Decide(mm, tenant, queue_key, Decision::kRateLimited);
      Reply(*a.x, mm, start, std::move(st));
      return;
    }
    // 1b'. limits shared through Redis (rate_limits.redis_url): the rest
    //      goes on when Redis (or the fallback) has decided, through
    //      options_.post; this thread never waits for it.
    if (a.x->admission.count > 0 && options_.admission->has_global()) {
      CheckGlobalLimits(std::move(a));
      return;
    }
  }
  AfterAdmission(std::move(a));
}

void InferenceServer::AfterAdmission(Admitted a) {
  if (a.mv) {
    AfterLimits(std::move(a));
  } else {
    WaitForModel(std::move(a));
  }
}

void InferenceServer::AfterLimits(Admitted a) {
  std::unique_ptr<InferExchange> x = std::move(a.x);
  VersionLease mv = std::move(a.mv);
  ModelMetrics* const mm = a.mm;
  const Time start = a.start;
  const Tenant* const tenant = a.tenant;
  QueueKey queue_key = a.queue_key;
  RequestContext& ctx = x->context;
  const ModelConfig& config = mv->config();
  const SchedulingConfig& sched = config.scheduling;
  const int64_t max_priority = tenant != nullptr ? tenant->max_priority : 0;

  // 2a. cache, first step: the exact-repeat memo answers without decoding.
  MemoProbe memo = ProbeMemo(*x, *mv);
  if (memo.hit) {
    Decide(mm, tenant, queue_key, Decision::kAdmitted);
    Reply(*x, mm, start, std::move(memo.reply));
    return;
  }
  // 1c. overload: a slot among the model's queued and running work, taken
  //     before decoding, so that shedding costs microseconds.
  int64_t retry_after_s = 0;
  StatusOr<OverloadSlot> slot = mv->Reserve(queue_key, &retry_after_s);
  Decide(mm, tenant, queue_key, slot.ok() ? Decision::kAdmitted : Decision::kShed);
  if (!slot.ok()) {
    x->admission.retry_after_s = retry_after_s;
    mm->shed->Increment();
    Reply(
        *x, mm, start,
        Status(slot.status().code(), "model '" + config.name + "' is " + slot.status().message()));
    return;
  }
  StatusOr<InferRequest> request = InternalError("decoding the request failed");
  try {
    request = x->Decode(config);
  } catch (const std::exception& e) {
    request = InternalError(std::string("decoding the request failed: ") + e.what());
  }
  if (!request.ok()) {
    Reply(*x, mm, start, request.status());
    return;
  }
  if (ctx.priority == 0 && request->priority != 0)
    queue_key.level = sched.Level(request->priority, max_priority);
  auto call = std::make_shared<Call>();
  call->slot = std::move(slot).value();
  call->queue_key = queue_key;
  call->tenant = tenant;
  ApplyTimeouts(sched.Policy(queue_key.level), options_.default_timeout, request->timeout_us, start,
                &ctx.deadline, &call->queue_timeout);
  call->start = start;
  call->mv = std::move(mv);
  call->mm = mm;
  if (Status st =
          Validate(call->mv->config(), *request, &call->inputs, &call->batch, &call->signature);
      !st.ok()) {
    call->x = std::move(x);
    Finish(*call, std::move(st));
    return;
  }
  if (call->mv->config().decoupled && !x->accepts_stream()) {
    call->x = std::move(x);
    Finish(*call, InvalidArgumentError("model '" + call->mv->config().name +
                                       "' streams its responses (decoupled): ask for a stream "
                                       "(Accept: text/event-stream)"));
    return;
  }
  call->request = std::move(request).value();
  call->request.no_cache = x->no_cache;
  call->request.no_store = x->no_store;
  if (!x->no_store) call->memo_key = std::move(memo.key);
  call->memo_generation = memo.generation;
  call->x = std::move(x);
  // 2b. the canonical cache, then 4-6.
  CacheStage(std::move(call));
}

void InferenceServer::Execute(std::shared_ptr<Call> call) {
  const RequestContext& ctx = call->x->context;
  // Work that may no longer run is answered here, without a queue slot.
  if (ctx.cancel->cancelled()) {
    TaskTimings unrun;
    unrun.drop_cause = DropCause::kCancelled;
    OnExecuted(std::move(call), ctx.cancel->reason(), unrun);
    return;
  }
  if (ctx.expired(options_.clock->Now())) {
    TaskTimings unrun;
    unrun.drop_cause = DropCause::kExpired;
    OnExecuted(std::move(call),
               DeadlineExceededError("the request's deadline passed before it was scheduled"),
               unrun);
    return;
  }
  auto task = std::make_unique<Task>(
      std::move(call->inputs), call->batch, std::move(call->signature),
      [this, call](StatusOr<std::vector<Tensor>> outputs, const TaskTimings& timings) {
        OnExecuted(call, std::move(outputs), timings);
      });
  // The leader of a coalesced flight runs whatever happens to its own
  // client: identical requests wait on its result, which also fills the
  // cache. Every other request is dropped unrun once its client leaves or
  // its deadline passes.
  if (!call->leader) {
    task->set_deadline(ctx.deadline);
    task->set_cancellation(ctx.cancel);
  }
  task->set_queue_key(call->queue_key);
  task->set_queue_timeout(call->queue_timeout);
  if (call->mv->config().decoupled)
    task->set_stream(std::make_shared<StreamToExchange>(this, call));
  // A client that leaves while its request is queued frees the slot at once.
  if (!call->leader) {
    std::weak_ptr<ModelVersion> weak = call->mv.shared();
    call->cancel_registration = ctx.cancel->OnCancel([weak](const Status&) {
      if (auto mv = weak.lock()) mv->DropCancelled();
    });
  }
  if (Status st = call->mv->Submit(task); !st.ok()) {
    if (st.code() == StatusCode::kResourceExhausted)
      Decide(call->mm, call->tenant, call->queue_key, Decision::kQueueFull);
    // Ownership stayed here: answer through the task, exactly once.
    task->Complete(st);
  }
}

void InferenceServer::OnExecuted(std::shared_ptr<Call> call, StatusOr<std::vector<Tensor>> outputs,
                                 const TaskTimings& timings) {
  call->x->context.cancel->Remove(call->cancel_registration);
  const ModelConfig& config = call->mv->config();
  if (timings.drop_cause != DropCause::kNone) {
    call->mm->drops[static_cast<int>(timings.drop_cause) - 1]->Increment();
    static constexpr Decision kByCause[] = {Decision::kExpired, Decision::kCancelled,
                                            Decision::kEvicted};
    Decide(call->mm, call->tenant, call->queue_key,
           kByCause[static_cast<int>(timings.drop_cause) - 1]);
  }
  StatusOr<InferResponse> result = outputs.status();
  if (outputs.ok()) {
    result = MakeResponse(*call, std::move(outputs).value());
    call->mm->queue_duration->Observe(Seconds(timings.started - timings.enqueued));
    // Batches (blocking backends) report their compute time; asynchronous
    // backends have no batch boundary to time.
    if (timings.finished >= timings.compute_started && timings.compute_started != Time{})
      call->mm->compute_duration->Observe(Seconds(timings.finished - timings.compute_started));
  } else if (outputs.status().code() == StatusCode::kInternal) {
    LogFailure(config.name, outputs.status());
  }
  if (call->cached) AfterExecution(*call, &result);
  Finish(*call, std::move(result));
}

InferResponse InferenceServer::MakeResponse(const Call& call, std::vector<Tensor> outputs) const {
  const ModelConfig& config = call.mv->config();
  InferResponse r;
  r.model = config.name;
  r.version = call.mv->version();
  r.id = call.request.id;
  const auto& wanted = call.request.outputs;
  for (size_t i = 0; i < config.outputs.size() && i < outputs.size(); ++i) {
    if (!wanted.empty() &&
        std::find(wanted.begin(), wanted.end(), config.outputs[i].name) == wanted.end()) {
      continue;
    }
    r.outputs.push_back({config.outputs[i].name, std::move(outputs[i])});
  }
  return r;
}

void InferenceServer::Finish(Call& call, StatusOr<InferResponse> result) {
  call.slot.Release();  // the model's work for it is done
  std::unique_ptr<InferExchange> x = std::move(call.x);
  if (!result.ok()) {
    Reply(*x, call.mm, call.start, result.status());
    return;
  }
  if (call.mv->config().decoupled) {  // the end of a stream: nothing to encode
    Reply(*x, call.mm, call.start, EncodedReply{});
    return;
  }
  EncodedReply reply;
  reply.cache = result->cache;
  reply.age_s = result->age_s;
  Status encoded;
  // On a worker thread: nothing may escape (std::bad_alloc while encoding a
  // large response, say); the client gets a 500 instead.
  try {
    encoded = x->Encode(*result, &reply);
  } catch (const std::exception& e) {
    encoded = InternalError(std::string("encoding the response failed: ") + e.what());
  }
  if (!encoded.ok()) {
    Reply(*x, call.mm, call.start, std::move(encoded));
    return;
  }
  // Stored before answering, like the canonical entry: a client that reads
  // the answer and then invalidates must not see it stored after.
  if (call.memo_key) {
    try {
      MaybeMemoize(*call.memo_key, call.memo_generation, *result, reply);
    } catch (const std::bad_alloc&) {  // the memo is an optimization: answer anyway
    }
  }
  Reply(*x, call.mm, call.start, std::move(reply));
}

void InferenceServer::Reply(InferExchange& x, ModelMetrics* mm, Time start,
                            StatusOr<EncodedReply> reply) {
  ModelMetrics* counted = mm ? mm : options_.metrics->For("", 0);
  counted->outcomes[static_cast<int>(OutcomeOf(reply.status()))]->Increment();
  if (mm) mm->request_duration->Observe(Seconds(options_.clock->Now() - start));
  options_.metrics->RequestFinished();
  try {
    x.Complete(std::move(reply));
  } catch (const std::exception& e) {
    LogFailure(x.model, InternalError(std::string("completing the request failed: ") + e.what()));
  }
}

void InferenceServer::Decide(ModelMetrics* mm, const Tenant* tenant, const QueueKey& key,
                             Decision decision) {
  if (Counter* c = options_.metrics->DecisionCounter(mm, key.tenant, key.level, decision))
    c->Increment();
  if (tenant == nullptr || decision == Decision::kAdmitted) return;
  static constexpr RecentCounts::Kind kKind[] = {
      RecentCounts::kKinds,    RecentCounts::kRateLimited, RecentCounts::kShed,
      RecentCounts::kEvicted,  RecentCounts::kExpired,     RecentCounts::kCancelled,
      RecentCounts::kQueueFull};
  tenant->recent.Add(options_.clock->Now(), kKind[static_cast<int>(decision)]);
}

void InferenceServer::CollectGauges() {
  options_.metrics->lifecycle().Collect(options_.models);
  for (const ModelState& s : options_.models->List()) {
    if (!s.ready()) continue;
    auto mv = options_.models->Get(s.name, std::to_string(s.version));
    if (!mv.ok()) continue;
    ModelMetrics* m = options_.metrics->For(s.name, s.version);
    m->queue_depth->Set(static_cast<double>((*mv)->queue_depth()));
    const int levels = static_cast<int>((*mv)->config().scheduling.priority_levels);
    for (int l = 1; levels > 1 && l <= levels; ++l) {
      options_.metrics->DepthAtLevel(m, s.name, s.version, l)
          ->Set(static_cast<double>((*mv)->queue_depth(l)));
    }
    const AdaptiveStats a = (*mv)->adaptive_stats();
    if (a.enabled) {
      m->adaptive_cap->Set(static_cast<double>(a.cap));
      m->adaptive_delay->Set(a.delay_s);
      m->adaptive_infeasible->Set(a.infeasible ? 1 : 0);
      m->batch_cost[0]->Set(a.fixed_s);
      m->batch_cost[1]->Set(a.per_item_s);
    }
    const OverloadControl::Stats o = (*mv)->overload_stats();
    if (o.limit > 0) {
      m->overload_limit->Set(static_cast<double>(o.limit));
      m->overload_in_use->Set(static_cast<double>(o.in_use));
      m->overload_standing_delay->Set(o.standing_delay_s);
    }
  }
}

}  // namespace inferd
