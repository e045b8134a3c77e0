#include "app/bench_command.h"

#include <iostream>
#include <memory>
#include <string>

#include "bench/bench.h"

namespace inferd {
namespace {

void RunBenchCommand(const bench::BenchOptions& options) {
  auto fail = [](const Status& status) {
    std::cerr << "inferd bench: " << status.message() << std::endl;
    throw CLI::RuntimeError(1);
  };
  StatusOr<bench::BenchReport> report = bench::RunBench(options);
  if (!report.ok()) fail(report.status());
  bench::PrintReport(*report, std::cout);
  std::cout.flush();
  if (!options.json_out.empty()) {
    Status written = bench::WriteReportJson(*report, options.json_out);
    if (!written.ok()) fail(written);
  }
}

}  // namespace

void AddBenchCommand(CLI::App& root) {
  auto options = std::make_shared<bench::BenchOptions>();
  bench::BenchOptions& o = *options;
  CLI::App* cmd = root.add_subcommand(
      "bench", "Load-test a model over HTTP (KServe v2), like Triton's perf_analyzer");
  cmd->add_option("--url", o.url, "Server base URL")->capture_default_str();
  cmd->add_option("--model", o.model, "Model name")->required();
  cmd->add_option("--model-version", o.model_version, "Model version (default: server's choice)");
  cmd->add_option("--concurrency", o.concurrency,
                  "Closed loop: comma-separated concurrency levels, one run each")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--rate", o.rate, "Open loop: requests per second (0 = closed loop)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--arrival", o.arrival, "Open loop arrivals: constant or poisson")
      ->check(CLI::IsMember({"constant", "poisson"}))
      ->capture_default_str();
  cmd->add_option("--duration-s", o.duration_s, "Measurement window per level, seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--warmup-s", o.warmup_s, "Warm-up per level (not recorded), seconds")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--payload", o.payload,
                  "Request encoding: json or binary (KServe binary tensor extension)")
      ->check(CLI::IsMember({"json", "binary"}))
      ->capture_default_str();
  cmd->add_option("--input-file", o.input_file,
                  "Send this file (a full KServe v2 JSON request body) as-is")
      ->check(CLI::ExistingFile);
  cmd->add_option("--batch-size", o.batch_size, "Items per request (the batch dim)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--shape", o.shapes,
                  "Shape of an input with variable dims, name=d1,d2,... (repeatable; may omit "
                  "the batch dim)")
      ->allow_extra_args(false);
  cmd->add_option("--threads", o.threads, "Load-generator I/O threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--json", o.json_out, "Also write the report as JSON to this file");
  cmd->add_option("--timeout-ms", o.timeout_ms, "Per-request timeout, milliseconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-connections", o.max_connections,
                  "Open loop: most connections the pool may open")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--unique-fraction", o.unique_fraction,
                  "Share of requests made unique (binary payload); the rest repeat one request")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed for the payload data and Poisson arrivals")
      ->capture_default_str();
  cmd->callback([options] { RunBenchCommand(*options); });
}

}  // namespace inferd
