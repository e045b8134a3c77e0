#pragma once
// The model lifecycle's metrics (docs/design-lifecycle.md section 11):
// loads and unloads as they happen (ModelManager::Options::on_load and
// on_unload), and the state and memory of every version, set at each
// scrape from the ModelManager.
//
// Threading: OnLoad and OnUnload from any thread (the manager calls them
// under its lock; they only touch metrics); Collect from the scraping
// thread.

#include <string>

#include "metrics/metrics.h"
#include "model/model_manager.h"

namespace inferd {

class LifecycleMetrics {
 public:
  explicit LifecycleMetrics(Registry* registry);
  void OnLoad(const std::string& model, bool ok, double load_s, double warmup_s);
  void OnUnload(const std::string& model, const char* reason);
  // A request that waited for its model to load (outcome: served, timeout,
  // cancelled, failed) or was refused a wait (refused: too many waiters, no
  // room under the budget); `waited_s` is observed unless refused.
  void OnLoadWait(const std::string& model, const char* outcome, double waited_s);
  void Collect(ModelManager* models);

 private:
  Family<Counter>* loads_;
  Family<Counter>* unloads_;
  Family<Histogram>* load_duration_;
  Family<Histogram>* warmup_duration_;
  Family<Counter>* load_waits_;
  Family<Histogram>* load_wait_;
  Family<Gauge>* state_;
  Family<Gauge>* bytes_;
  Family<Gauge>* in_use_;
  Family<Gauge>* buffers_;
  Family<Gauge>* idle_;
  Family<Gauge>* pinned_;
  Family<Gauge>* keep_alive_;
  Gauge* budget_;
  Gauge* used_;
  Gauge* deferred_;
};

}  // namespace inferd
