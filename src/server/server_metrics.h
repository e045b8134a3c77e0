#pragma once
// ServerMetrics: the inference pipeline's Prometheus metrics, with per model
// version label sets resolved once and cached, so the request path does no
// map lookup under contention beyond one shared-lock read.
//
// Threading: all methods safe from any thread.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "metrics/metrics.h"
#include "model/model_version.h"
#include "server/lifecycle_metrics.h"

namespace inferd {

enum class Outcome {
  kSuccess,
  kInvalid,
  kNotFound,
  kRejected,
  kError,
  kDeadlineExceeded,  // answered 504 without running (or coalesced past it)
  kCancelled,         // the client left; nothing was sent
  kUnauthenticated,   // no API key, or an unknown one (401)
  kRateLimited,       // over a tenant's rate limit (429)
  kCount
};

// What admission and the queue decided about a request, by tenant, model
// and priority (inferd_admission_decisions_total).
enum class Decision {
  kAdmitted,
  kRateLimited,
  kShed,
  kEvicted,
  kExpired,
  kCancelled,
  kQueueFull,  // refused by its level's or the model's queue bound (503)
  kCount
};

struct ModelMetrics {
  Counter* outcomes[static_cast<int>(Outcome::kCount)] = {};
  Histogram* request_duration = nullptr;
  Histogram* queue_duration = nullptr;
  Histogram* compute_duration = nullptr;
  Histogram* batch_size = nullptr;
  Gauge* queue_depth = nullptr;
  // Refused at the overload gate (503 before decoding).
  Counter* shed = nullptr;
  // Completed unrun, by DropCause (index cause - 1): expired, cancelled,
  // evicted.
  Counter* drops[3] = {};
  // Overload control (set at each scrape).
  Gauge* overload_limit = nullptr;
  Gauge* overload_in_use = nullptr;
  Gauge* overload_standing_delay = nullptr;
  // Adaptive batching (set at each scrape).
  Gauge* adaptive_cap = nullptr;
  Gauge* adaptive_delay = nullptr;
  Gauge* adaptive_infeasible = nullptr;
  Gauge* batch_cost[2] = {};  // fixed, per_item
  // Decision counters by (tenant id, level, decision), created on first
  // use (ServerMetrics::DecisionCounter).
  std::string model, version;
  std::unique_ptr<std::atomic<Counter*>[]> decisions;
  size_t decision_slots = 0;
  // Queue depth by priority level (index level - 1), created on first use.
  std::vector<Gauge*> depth_by_level;
};

class ServerMetrics {
 public:
  explicit ServerMetrics(Registry* registry);

  // Label set for (model, version); version 0 and model "" are used for
  // requests that named no servable model.
  ModelMetrics* For(const std::string& model, int64_t version) EXCLUDES(mu_);
  // The tenants' names by id (0: "default"); before any request.
  void SetTenants(std::vector<std::string> names) EXCLUDES(mu_);
  // The counter of `decision` for tenant `tenant` at priority `level`
  // (1..16) on `m`; lock-free once created.
  Counter* DecisionCounter(ModelMetrics* m, uint32_t tenant, int level, Decision decision);
  // The gauge of (model, version)'s queue depth at `level`.
  Gauge* DepthAtLevel(ModelMetrics* m, const std::string& model, int64_t version, int level)
      EXCLUDES(mu_);
  // The batch observer the model layer calls after each executed batch.
  ModelVersion::BatchObserver ObserverFor(const std::string& model, int64_t version);

  // Inference requests in progress: two striped counts (no line that
  // every request writes), read finished first so that the gauge
  // inferd_inflight_requests, set at each scrape, is never negative.
  void RequestStarted() { started_.Increment(); }
  void RequestFinished() { finished_.Increment(); }
  int64_t InFlight() const {
    const double finished = finished_.Value();
    return static_cast<int64_t>(started_.Value() - finished);
  }
  Registry* registry() { return registry_; }
  // Model loads, unloads, states and memory.
  LifecycleMetrics& lifecycle() { return lifecycle_; }

 private:
  Registry* registry_;
  Family<Counter>* requests_;
  Family<Histogram>* request_duration_;
  Family<Histogram>* queue_duration_;
  Family<Histogram>* compute_duration_;
  Family<Histogram>* batch_size_;
  Family<Gauge>* queue_depth_;
  Family<Counter>* shed_;
  Family<Counter>* drops_;
  Family<Gauge>* overload_limit_;
  Family<Gauge>* overload_in_use_;
  Family<Gauge>* overload_delay_;
  Family<Gauge>* depth_by_level_;
  Family<Counter>* decisions_;
  std::vector<std::string> tenants_ GUARDED_BY(mu_) = {"default"};
  Family<Gauge>* adaptive_cap_;
  Family<Gauge>* adaptive_delay_;
  Family<Gauge>* adaptive_infeasible_;
  Family<Gauge>* batch_cost_;
  Gauge* inflight_;
  Counter started_, finished_;
  Gauge* rss_;
  LifecycleMetrics lifecycle_;
  ModelMetrics* Find(const std::string& model, int64_t version) EXCLUDES(mu_);

  // Tells this instance's entries in the threads' caches of For() apart
  // from those of an earlier instance at the same address.
  const uint64_t id_;
  SharedMutex mu_;
  std::map<std::pair<std::string, int64_t>, std::unique_ptr<ModelMetrics>> by_model_
      GUARDED_BY(mu_);
};

double Seconds(Duration d);

}  // namespace inferd
