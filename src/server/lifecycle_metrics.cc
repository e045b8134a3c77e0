#include "server/lifecycle_metrics.h"

namespace inferd {

LifecycleMetrics::LifecycleMetrics(Registry* registry)
    : loads_(registry->AddCounter("inferd_model_loads_total",
                                  "Model version loads by outcome (success, failure)",
                                  {"model", "outcome"})),
      unloads_(registry->AddCounter(
          "inferd_model_unloads_total",
          "Model versions that left serving, by reason (explicit, idle, evicted, reload, removed)",
          {"model", "reason"})),
      load_duration_(registry->AddHistogram(
          "inferd_model_load_duration_seconds", "Time to load a model version (with its warm-up)",
          {"model"}, {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60})),
      warmup_duration_(registry->AddHistogram(
          "inferd_model_warmup_duration_seconds",
          "Time the [[warmup]] entries of a model version took at load", {"model"},
          {0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})),
      load_waits_(registry->AddCounter(
          "inferd_model_load_waits_total",
          "Requests that waited for their model to load, by outcome (served, timeout, "
          "cancelled, failed; refused: no wait was possible)",
          {"model", "outcome"})),
      load_wait_(registry->AddHistogram(
          "inferd_model_load_wait_seconds",
          "Time requests waited for their model to load (every outcome but refused)", {"model"},
          {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60})),
      state_(registry->AddGauge("inferd_model_state",
                                "1 for the state each model version is in, 0 for the others",
                                {"model", "version", "state"})),
      bytes_(registry->AddGauge(
          "inferd_model_memory_bytes",
          "Memory a model version is charged (what its backend reports, or the reservation "
          "while it loads)",
          {"model", "version"})),
      in_use_(registry->AddGauge("inferd_model_in_use", "Requests holding a model version",
                                 {"model", "version"})),
      buffers_(registry->AddGauge("inferd_batch_buffer_bytes",
                                  "Bytes of a model version's batch buffer pool, by state",
                                  {"model", "version", "state"})),
      idle_(registry->AddGauge("inferd_model_idle_seconds",
                               "Seconds since a loaded model version's last request ended (0 while "
                               "in use)",
                               {"model", "version"})),
      pinned_(registry->AddGauge("inferd_model_pinned",
                                 "1 for a loaded model version whose config pins it",
                                 {"model", "version"})),
      keep_alive_(registry->AddGauge(
          "inferd_model_keep_alive_seconds",
          "A loaded model version's keep-alive (-1: never unloaded for idleness)",
          {"model", "version"})),
      budget_(registry
                  ->AddGauge("inferd_model_memory_budget_bytes",
                             "The model memory budget (0: none)", {})
                  ->WithLabels({})),
      used_(registry
                ->AddGauge("inferd_model_memory_used_bytes",
                           "Memory charged to the model memory budget", {})
                ->WithLabels({})),
      deferred_(registry
                    ->AddGauge("inferd_model_deferred_loads",
                               "Model loads waiting for memory under the budget", {})
                    ->WithLabels({})) {}

void LifecycleMetrics::OnLoad(const std::string& model, bool ok, double load_s, double warmup_s) {
  loads_->WithLabels({model, ok ? "success" : "failure"})->Increment();
  if (!ok) return;
  load_duration_->WithLabels({model})->Observe(load_s);
  warmup_duration_->WithLabels({model})->Observe(warmup_s);
}

void LifecycleMetrics::OnUnload(const std::string& model, const char* reason) {
  unloads_->WithLabels({model, reason})->Increment();
}

void LifecycleMetrics::OnLoadWait(const std::string& model, const char* outcome, double waited_s) {
  load_waits_->WithLabels({model, outcome})->Increment();
  if (std::string_view(outcome) != "refused") load_wait_->WithLabels({model})->Observe(waited_s);
}

void LifecycleMetrics::Collect(ModelManager* models) {
  static constexpr VersionState kStates[] = {VersionState::kUnavailable, VersionState::kLoading,
                                             VersionState::kReady, VersionState::kUnloading,
                                             VersionState::kFailed};
  for (const ModelState& s : models->List()) {
    const std::string version = std::to_string(s.version);
    for (VersionState st : kStates) {
      state_->WithLabels({s.name, version, VersionStateName(st)})->Set(st == s.state ? 1 : 0);
    }
    // A version that left memory reads 0 (the view omits it).
    if (s.state == VersionState::kUnavailable || s.state == VersionState::kFailed) {
      bytes_->WithLabels({s.name, version})->Set(0);
      in_use_->WithLabels({s.name, version})->Set(0);
    }
  }
  const MemoryView view = models->Memory();
  budget_->Set(static_cast<double>(view.budget_bytes));
  used_->Set(static_cast<double>(view.used_bytes));
  deferred_->Set(static_cast<double>(view.deferred_loads));
  for (const VersionMemoryView& v : view.versions) {
    const std::string version = std::to_string(v.version);
    bytes_->WithLabels({v.name, version})->Set(static_cast<double>(v.bytes));
    in_use_->WithLabels({v.name, version})->Set(static_cast<double>(v.in_use));
    idle_->WithLabels({v.name, version})->Set(v.idle_s);
    pinned_->WithLabels({v.name, version})->Set(v.pinned ? 1 : 0);
    keep_alive_->WithLabels({v.name, version})->Set(static_cast<double>(v.keep_alive_s));
    buffers_->WithLabels({v.name, version, "idle"})->Set(static_cast<double>(v.buffers.idle_bytes));
    buffers_->WithLabels({v.name, version, "in_use"})
        ->Set(static_cast<double>(v.buffers.in_use_bytes));
  }
}

}  // namespace inferd
