#pragma once
// `inferd serve`: wiring from settings to running components, signal
// handling and graceful drain.

#include <CLI/CLI.hpp>
#include <vector>

#include "common/settings.h"

namespace inferd {

// Every setting of `inferd serve`: TOML key, INFERD_* variable and flag.
const std::vector<SettingSpec>& ServeSettingSpecs();

// Registers the `serve` subcommand on `root`.
void AddServeCommand(CLI::App& root);

}  // namespace inferd
