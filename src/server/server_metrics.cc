#include "server/server_metrics.h"

#include <algorithm>
#include <array>
#include <atomic>

namespace inferd {

namespace {
// Priority levels 0 (none) to 16: the decision counters' second index.
constexpr size_t kLevelSlots = 17;
}  // namespace

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

namespace {
std::atomic<uint64_t> next_metrics_id{1};
}  // namespace

ServerMetrics::ServerMetrics(Registry* registry)
    : registry_(registry), lifecycle_(registry), id_(next_metrics_id.fetch_add(1)) {
  std::vector<std::string> mv = {"model", "version"};
  requests_ = registry->AddCounter("inferd_requests_total",
                                   "Inference requests by model, version and outcome",
                                   {"model", "version", "outcome"});
  request_duration_ = registry->AddHistogram("inferd_request_duration_seconds",
                                             "Time from request decode to response, in seconds", mv,
                                             LatencyBuckets());
  queue_duration_ = registry->AddHistogram("inferd_queue_duration_seconds",
                                           "Time requests wait in the model queue, in seconds", mv,
                                           LatencyBuckets());
  compute_duration_ = registry->AddHistogram("inferd_compute_duration_seconds",
                                             "Backend execution time of the batch each request ran "
                                             "in, in seconds (one observation per request)",
                                             mv, LatencyBuckets());
  batch_size_ = registry->AddHistogram("inferd_batch_size", "Items per executed batch", mv,
                                       {1, 2, 4, 8, 16, 32, 64, 128, 256});
  queue_depth_ =
      registry->AddGauge("inferd_queue_depth", "Requests waiting in the model queue", mv);
  shed_ = registry->AddCounter("inferd_shed_total",
                               "Requests refused by overload control before decoding (503)", mv);
  drops_ = registry->AddCounter(
      "inferd_queue_drops_total",
      "Queued requests answered without running, by reason (expired, cancelled, evicted)",
      {"model", "version", "reason"});
  overload_limit_ = registry->AddGauge(
      "inferd_overload_limit", "Overload control: the limit on queued plus running requests", mv);
  overload_in_use_ = registry->AddGauge("inferd_overload_in_use",
                                        "Overload control: requests queued or running", mv);
  overload_delay_ =
      registry->AddGauge("inferd_overload_standing_delay_seconds",
                         "Overload control: the smallest queueing delay of the last interval", mv);
  depth_by_level_ = registry->AddGauge("inferd_queue_depth_by_priority",
                                       "Requests waiting in the model queue, by priority level",
                                       {"model", "version", "priority"});
  adaptive_cap_ = registry->AddGauge("inferd_adaptive_batch_cap",
                                     "Adaptive batching: the current batch size cap", mv);
  adaptive_delay_ = registry->AddGauge("inferd_adaptive_batch_delay_seconds",
                                       "Adaptive batching: the current queue delay", mv);
  adaptive_infeasible_ = registry->AddGauge(
      "inferd_adaptive_batch_infeasible",
      "Adaptive batching: 1 when even a batch of one cannot meet the latency target", mv);
  batch_cost_ = registry->AddGauge(
      "inferd_batch_cost_seconds",
      "Adaptive batching's fitted batch cost: fixed + per_item x items, in seconds",
      {"model", "version", "term"});
  decisions_ = registry->AddCounter(
      "inferd_admission_decisions_total",
      "What admission and the queue decided about infer requests, by tenant, model, priority "
      "and decision (admitted, rate_limited, shed, evicted, expired, cancelled)",
      {"tenant", "model", "priority", "decision"});
  inflight_ = registry->AddGauge("inferd_inflight_requests", "Inference requests in progress", {})
                  ->WithLabels({});
  rss_ =
      registry
          ->AddGauge("inferd_process_resident_memory_bytes", "Resident memory of the process", {})
          ->WithLabels({});
  registry->AddCollectHook([this] {
    rss_->Set(static_cast<double>(ProcessResidentBytes()));
    inflight_->Set(static_cast<double>(InFlight()));
  });
}

// A few recent answers per thread: on a hit, For() touches no shared line
// (the map's reader lock would be one that every request writes).
ModelMetrics* ServerMetrics::For(const std::string& model, int64_t version) {
  struct Recent {
    uint64_t owner = 0;
    int64_t version = 0;
    std::string model;
    ModelMetrics* metrics = nullptr;
  };
  thread_local std::array<Recent, 4> recent;
  thread_local size_t next = 0;
  for (const Recent& r : recent) {
    if (r.owner == id_ && r.version == version && r.model == model) return r.metrics;
  }
  ModelMetrics* m = Find(model, version);
  Recent& slot = recent[next++ % recent.size()];
  slot.owner = id_;
  slot.version = version;
  slot.model = model;
  slot.metrics = m;
  return m;
}

ModelMetrics* ServerMetrics::Find(const std::string& model, int64_t version) {
  auto key = std::make_pair(model, version);
  {
    ReaderLock l(&mu_);
    auto it = by_model_.find(key);
    if (it != by_model_.end()) return it->second.get();
  }
  WriterLock l(&mu_);
  auto& slot = by_model_[key];
  if (!slot) {
    auto m = std::make_unique<ModelMetrics>();
    std::string v = version > 0 ? std::to_string(version) : "";
    static const char* kOutcome[] = {"success",   "invalid",         "not_found",
                                     "rejected",  "error",           "deadline_exceeded",
                                     "cancelled", "unauthenticated", "rate_limited"};
    static_assert(std::size(kOutcome) == static_cast<size_t>(Outcome::kCount));
    for (int i = 0; i < static_cast<int>(Outcome::kCount); ++i)
      m->outcomes[i] = requests_->WithLabels({model, v, kOutcome[i]});
    m->request_duration = request_duration_->WithLabels({model, v});
    m->queue_duration = queue_duration_->WithLabels({model, v});
    m->compute_duration = compute_duration_->WithLabels({model, v});
    m->batch_size = batch_size_->WithLabels({model, v});
    m->queue_depth = queue_depth_->WithLabels({model, v});
    m->model = model;
    m->version = v;
    m->decision_slots = tenants_.size() * kLevelSlots * static_cast<size_t>(Decision::kCount);
    m->decisions = std::make_unique<std::atomic<Counter*>[]>(m->decision_slots);
    m->shed = shed_->WithLabels({model, v});
    static const char* kDrop[] = {"expired", "cancelled", "evicted"};
    for (int i = 0; i < 3; ++i) m->drops[i] = drops_->WithLabels({model, v, kDrop[i]});
    m->overload_limit = overload_limit_->WithLabels({model, v});
    m->overload_in_use = overload_in_use_->WithLabels({model, v});
    m->overload_standing_delay = overload_delay_->WithLabels({model, v});
    m->adaptive_cap = adaptive_cap_->WithLabels({model, v});
    m->adaptive_delay = adaptive_delay_->WithLabels({model, v});
    m->adaptive_infeasible = adaptive_infeasible_->WithLabels({model, v});
    m->batch_cost[0] = batch_cost_->WithLabels({model, v, "fixed"});
    m->batch_cost[1] = batch_cost_->WithLabels({model, v, "per_item"});
    slot = std::move(m);
  }
  return slot.get();
}

void ServerMetrics::SetTenants(std::vector<std::string> names) {
  WriterLock l(&mu_);
  if (!names.empty()) tenants_ = std::move(names);
}

Counter* ServerMetrics::DecisionCounter(ModelMetrics* m, uint32_t tenant, int level,
                                        Decision decision) {
  const size_t lvl = static_cast<size_t>(std::clamp(level, 0, static_cast<int>(kLevelSlots) - 1));
  const size_t i = (tenant * kLevelSlots + lvl) * static_cast<size_t>(Decision::kCount) +
                   static_cast<size_t>(decision);
  if (i >= m->decision_slots) return nullptr;  // a tenant unknown at startup
  Counter* c = m->decisions[i].load(std::memory_order_acquire);
  if (c != nullptr) return c;
  static const char* kDecision[] = {"admitted", "rate_limited", "shed",      "evicted",
                                    "expired",  "cancelled",    "queue_full"};
  static_assert(std::size(kDecision) == static_cast<size_t>(Decision::kCount));
  const char* name = kDecision[static_cast<size_t>(decision)];
  std::string tenant_name;
  {
    ReaderLock l(&mu_);
    tenant_name = tenant < tenants_.size() ? tenants_[tenant] : "";
  }
  c = decisions_->WithLabels(
      {tenant_name, m->model, lvl == 0 ? "" : std::to_string(lvl), name});  // same pointer if raced
  m->decisions[i].store(c, std::memory_order_release);
  return c;
}

Gauge* ServerMetrics::DepthAtLevel(ModelMetrics* m, const std::string& model, int64_t version,
                                   int level) {
  WriterLock l(&mu_);
  while (m->depth_by_level.size() < static_cast<size_t>(level)) {
    m->depth_by_level.push_back(
        depth_by_level_->WithLabels({model, version > 0 ? std::to_string(version) : "",
                                     std::to_string(m->depth_by_level.size() + 1)}));
  }
  return m->depth_by_level[static_cast<size_t>(level - 1)];
}

ModelVersion::BatchObserver ServerMetrics::ObserverFor(const std::string& model, int64_t version) {
  ModelMetrics* m = For(model, version);
  return [m](int64_t items, Duration compute) {
    m->batch_size->Observe(static_cast<double>(items));
    (void)compute;
  };
}

}  // namespace inferd
