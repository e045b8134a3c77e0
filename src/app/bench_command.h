#pragma once
// `inferd bench`: the command-line front end of the load generator
// (src/bench). Flags map one to one onto bench::BenchOptions.

#include <CLI/CLI.hpp>

namespace inferd {

// Registers the `bench` subcommand on `root`. Its callback runs the
// benchmark, prints the table to stdout and writes the JSON report when
// --json is given; on failure it prints `inferd bench: <error>` to stderr and
// throws CLI::RuntimeError(1).
void AddBenchCommand(CLI::App& root);

}  // namespace inferd
