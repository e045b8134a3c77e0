#pragma once
// The lifecycle of a model version (docs/design-lifecycle.md): its states as
// the repository index shows them, and how the server controls loading.

#include <optional>
#include <string_view>

namespace inferd {

enum class VersionState {
  kUnavailable,  // registered, not loaded (or unloaded)
  kLoading,      // a load is in progress
  kReady,        // serving
  kUnloading,    // left serving; its last requests finish before it is destroyed
  kFailed,       // the last load failed (the reason is kept)
};

// Triton's names, plus FAILED: "UNAVAILABLE", "LOADING", "READY",
// "UNLOADING", "FAILED".
const char* VersionStateName(VersionState state);

enum class ModelControl {
  kExplicit,  // only --load-model and POST /v2/repository/models/{m}/load load
  kLazy,      // also a model's first inference request loads it
  kPoll,      // lazy, and the repository is rescanned every poll interval
};

const char* ModelControlName(ModelControl control);
// "explicit", "lazy" or "poll"; nullopt for anything else.
std::optional<ModelControl> ParseModelControl(std::string_view text);

}  // namespace inferd
