#include "app/bench_command.h"

#include <iostream>
#include <memory>
#include <string>

#include "bench/bench.h"
#include "bench/mix.h"

namespace inferd {
namespace {

// Bad flag values (a malformed --header or --mix, ...) exit 2; failures of
// the run itself exit 1.
void RunBenchCommand(const bench::BenchOptions& options, bool mix_given, bool concurrency_given) {
  auto fail = [](const Status& status, int exit_code = 1) {
    std::cerr << "inferd bench: " << status.message() << std::endl;
    throw CLI::RuntimeError(exit_code);
  };
  if (mix_given && options.mix.empty()) fail(bench::ParseMix("").status(), 2);
  if (mix_given && concurrency_given) {
    fail(InvalidArgumentError("--mix runs open loop: drop --concurrency"), 2);
  }
  Status valid = bench::ValidateOptions(options);
  if (!valid.ok()) fail(valid, 2);
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
  CLI::Option* concurrency =
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
  cmd->add_option("--api-key", o.api_key,
                  "Send every request as this tenant: 'Authorization: Bearer <key>'");
  cmd->add_option("--priority", o.priority,
                  "X-Inferd-Priority on inference requests: 1 is the highest level, larger is "
                  "lower; 0 = the model's default (no header)")
      ->capture_default_str();
  cmd->add_option("--header", o.headers,
                  "Extra header on every request, 'Name: value' or 'Name:value' (repeatable)")
      ->allow_extra_args(false);
  CLI::Option* mix = cmd->add_option(
      "--mix", o.mix,
      "Open loop with several classes at once, e.g. "
      "'high:priority=1,rate=20,slo_ms=1000;low:priority=2,rate=200,api_key=K,header=X-Foo:bar' "
      "(keys: rate (required), priority, api_key, header (repeatable), slo_ms)");
  cmd->callback([options, mix, concurrency] {
    RunBenchCommand(*options, mix->count() > 0, concurrency->count() > 0);
  });
}

}  // namespace inferd
