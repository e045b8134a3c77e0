// ModelManager under poll control: the repository rescanned on the
// lifecycle thread; new, changed and removed models and versions acted on
// once two consecutive scans agree.

#include <set>

#include "common/logging.h"
#include "model/model_manager.h"

namespace inferd {

void ModelManager::PollOnce() {
  std::set<std::string> present;
  for (const std::string& name : ListModelDirectories(options_.repository)) {
    present.insert(name);
    const std::string sig = ModelSignature(options_.repository + "/" + name);
    std::string& seen = poll_seen_[name];
    const bool stable = sig == seen;
    seen = sig;
    if (!stable || sig == poll_acted_[name]) continue;
    poll_acted_[name] = sig;
    INFERD_LOG_INFO("model '{}' changed in the repository: reloading", name);
    // A new model registers; a loaded one reloads what changed beside
    // what serves; one not loaded only re-reads its config (it loads on its
    // next request).
    bool loaded = false;
    {
      MutexLock l(&mu_);
      auto it = models_.find(name);
      if (it != models_.end() && !it->second.removed) {
        for (const auto& [v, slot] : it->second.versions) loaded = loaded || slot.serving;
      }
    }
    if (loaded) {
      Load(name, [name](const Status& st) {
        if (!st.ok()) INFERD_LOG_WARN("reloading model '{}' failed: {}", name, st.message());
      });
    } else {
      Rescan(name);
    }
  }
  for (auto& [name, seen] : poll_seen_) {
    if (present.count(name)) continue;
    // Gone: acted on at the second scan that misses it.
    if (seen != "-") {
      seen = "-";
      continue;
    }
    if (poll_acted_[name] == "-") continue;
    poll_acted_[name] = "-";
    RemoveModel(name);
  }
  polls_done_.fetch_add(1, std::memory_order_release);
}

void ModelManager::RemoveModel(const std::string& name) {
  std::vector<Completion> answer;
  {
    MutexLock l(&mu_);
    auto it = models_.find(name);
    if (it == models_.end() || it->second.removed) return;
    Model& m = it->second;
    m.removed = true;
    for (auto& [v, slot] : m.versions) {
      AbandonLoadLocked(slot, NotFoundError("model '" + name + "' was removed"), &answer);
      RetireLocked(name, slot, std::move(slot.serving), "removed");
    }
    RetryDeferredLocked();
  }
  INFERD_LOG_INFO("model '{}' was removed from the repository: unloading", name);
  Complete(std::move(answer));
}

}  // namespace inferd
