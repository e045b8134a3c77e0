#include "model/lifecycle_types.h"

namespace inferd {

const char* VersionStateName(VersionState state) {
  switch (state) {
    case VersionState::kUnavailable:
      return "UNAVAILABLE";
    case VersionState::kLoading:
      return "LOADING";
    case VersionState::kReady:
      return "READY";
    case VersionState::kUnloading:
      return "UNLOADING";
    case VersionState::kFailed:
      return "FAILED";
  }
  return "UNAVAILABLE";
}

const char* ModelControlName(ModelControl control) {
  switch (control) {
    case ModelControl::kExplicit:
      return "explicit";
    case ModelControl::kLazy:
      return "lazy";
    case ModelControl::kPoll:
      return "poll";
  }
  return "lazy";
}

std::optional<ModelControl> ParseModelControl(std::string_view text) {
  if (text == "explicit") return ModelControl::kExplicit;
  if (text == "lazy") return ModelControl::kLazy;
  if (text == "poll") return ModelControl::kPoll;
  return std::nullopt;
}

}  // namespace inferd
