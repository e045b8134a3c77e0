// inferd: an inference server. Subcommands: serve, bench, keygen.
#include <CLI/CLI.hpp>

#include <csignal>

#include "app/keygen_command.h"
#include "app/serve_command.h"
#include "common/logging.h"
#if __has_include("app/bench_command.h")
#include "app/bench_command.h"
#define INFERD_HAVE_BENCH 1
#endif

int main(int argc, char** argv) {
  inferd::InitLogging();
  // A peer that goes away (a client, Redis) must be an error, not a signal.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"inferd: a fast, dependable inference server (KServe v2 over HTTP)"};
  app.set_version_flag("--version", std::string("inferd ") + INFERD_VERSION);
  app.require_subcommand(1);
  inferd::AddServeCommand(app);
  inferd::AddKeygenCommand(app);
#ifdef INFERD_HAVE_BENCH
  inferd::AddBenchCommand(app);
#endif
  CLI11_PARSE(app, argc, argv);
  return 0;
}
