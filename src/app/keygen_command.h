#pragma once
// `inferd keygen`: prints a new random API key and the line that gives it
// to a tenant in the server's config file (only its SHA-256 is kept).

#include <CLI/CLI.hpp>

namespace inferd {

void AddKeygenCommand(CLI::App& root);

}  // namespace inferd
