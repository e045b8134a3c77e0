#include "app/serve_command.h"

#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/api.h"
#include "api/auth.h"
#include "app/cache_wiring.h"
#include "common/logging.h"
#include "http/server.h"
#include "metrics/metrics.h"
#include "model/model_manager.h"
#include "server/inference_server.h"

namespace inferd {
namespace {

using Type = SettingSpec::Type;

struct ServeFlags {
  std::string config_file;
  std::map<std::string, std::string> values;  // key -> raw flag text
  std::map<std::string, CLI::Option*> options;
};

// Blocks SIGINT and SIGTERM in this thread and every thread it creates
// later, so that only the sigwait below receives them.
sigset_t BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// "a, b\nc" -> {"a", "b", "c"}: a list setting given as one string (the
// joined flags, an environment variable or the file).
std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find_first_of(",\n", i);
    if (j == std::string::npos) j = text.size();
    std::string item = text.substr(i, j - i);
    const size_t b = item.find_first_not_of(" \t");
    const size_t e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
    i = j + 1;
  }
  return out;
}

// Raises the soft file-descriptor limit to the hard one, as nginx's
// worker_rlimit_nofile would: connections, disk files and sockets to Redis
// all count against it.
void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int RunServe(const ServeFlags& flags) {
  sigset_t signals = BlockShutdownSignals();
  RaiseFileLimit();
  std::map<std::string, std::string> given;
  for (const auto& [key, opt] : flags.options) {
    if (opt->count() > 0) given[key] = flags.values.at(key);
  }
  auto env = Settings::ProcessEnv();
  std::string config_file = flags.config_file;
  if (config_file.empty() && env.count("INFERD_CONFIG")) config_file = env["INFERD_CONFIG"];
  auto settings_or = Settings::Load(ServeSettingSpecs(), config_file, env, given, {"tenants"});
  if (!settings_or.ok()) {
    std::cerr << "inferd serve: " << settings_or.status().message() << "\n";
    return 2;
  }
  const Settings& s = *settings_or;
  if (!SetLogLevel(s.GetString("log_level"))) {
    std::cerr << "inferd serve: unknown log_level '" << s.GetString("log_level") << "'\n";
    return 2;
  }
  if (s.GetString("model_repository").empty()) {
    std::cerr << "inferd serve: model_repository is required (--model-repository DIR)\n";
    return 2;
  }
  for (const char* key :
       {"http_read_timeout_ms", "http_idle_timeout_ms", "http_threads", "cache.coalesce_timeout_ms",
        "cache.redis.timeout_ms", "cache.memory.shards", "rate_limits.timeout_ms",
        "rate_limits.instances", "rate_limits.max_pending"}) {
    if (s.GetInt(key) < 1) {
      std::cerr << "inferd serve: " << key << " must be >= 1\n";
      return 2;
    }
  }
  if (s.GetInt("drain_timeout_s") < 0 || s.GetInt("max_body_bytes") < 0 ||
      s.GetInt("request_timeout_ms") < 0 || s.GetInt("executor_threads") < 0 ||
      s.GetInt("cache.exact_repeat_max_bytes") < 0 || s.GetInt("http_max_connections") < 0) {
    std::cerr << "inferd serve: drain_timeout_s, max_body_bytes, request_timeout_ms, "
                 "executor_threads, "
                 "cache.exact_repeat_max_bytes and http_max_connections must be >= 0\n";
    return 2;
  }
  if (!ParseModelControl(s.GetString("model_control"))) {
    std::cerr << "inferd serve: model_control must be 'explicit', 'lazy' or 'poll', not '"
              << s.GetString("model_control") << "'\n";
    return 2;
  }
  if (s.GetInt("model_load_threads") < 1 || s.GetInt("model_load_threads") > 64 ||
      s.GetInt("model_load_wait_ms") < 1 || s.GetInt("model_memory_budget") < 0 ||
      s.GetInt("repository_poll_s") < 1 || s.GetInt("repository_poll_s") > 86400 ||
      s.GetInt("model_keep_alive_s") < -1 || s.GetInt("model_keep_alive_s") > 315360000) {
    std::cerr << "inferd serve: model_load_threads must be in [1, 64], model_load_wait_ms >= 1, "
                 "model_memory_budget >= 0, repository_poll_s in [1, 86400] and "
                 "model_keep_alive_s in [-1, 315360000]\n";
    return 2;
  }
  int64_t port = s.GetInt("http_port");
  if (port < 0 || port > 65535) {
    std::cerr << "inferd serve: http_port must be in [0, 65535]\n";
    return 2;
  }

  Registry registry;
  ServerMetrics metrics(&registry);
  AdmissionConfig admission_config;
  admission_config.auth_required = s.GetBool("auth.required");
  auto tenants = LoadTenants(config_file);
  if (!tenants.ok()) {
    std::cerr << "inferd serve: " << tenants.status().message() << "\n";
    return 2;
  }
  admission_config.tenants = std::move(tenants).value();
  admission_config.global.redis_url = s.GetString("rate_limits.redis_url");
  admission_config.global.key_prefix = s.GetString("rate_limits.key_prefix");
  admission_config.global.timeout_ms = s.GetInt("rate_limits.timeout_ms");
  admission_config.global.instances = s.GetInt("rate_limits.instances");
  admission_config.global.max_pending = s.GetInt("rate_limits.max_pending");
  auto admission = Admission::Create(std::move(admission_config), &registry);
  if (!admission.ok()) {
    std::cerr << "inferd serve: " << admission.status().message() << "\n";
    return 2;
  }
  // Tenant names by id for the decision counters, before any model's
  // metrics exist.
  std::vector<std::string> tenant_names = {(*admission)->default_tenant().name};
  for (const auto& t : (*admission)->tenants()) tenant_names.push_back(t->name);
  metrics.SetTenants(std::move(tenant_names));
  ModelManager::Options mo;
  mo.repository = s.GetString("model_repository");
  mo.backend_directory = s.GetString("backend_directory");
  mo.executor_threads = static_cast<int>(s.GetInt("executor_threads"));
  mo.control = *ParseModelControl(s.GetString("model_control"));
  mo.preload = SplitList(s.GetString("load_model"));
  mo.load_threads = static_cast<int>(s.GetInt("model_load_threads"));
  mo.load_wait = std::chrono::milliseconds(s.GetInt("model_load_wait_ms"));
  mo.keep_alive_s = s.GetInt("model_keep_alive_s");
  mo.memory_budget = s.GetInt("model_memory_budget");
  mo.poll_interval = std::chrono::seconds(s.GetInt("repository_poll_s"));
  mo.on_load = [&metrics](const std::string& m, bool ok, double load_s, double warmup_s) {
    metrics.lifecycle().OnLoad(m, ok, load_s, warmup_s);
  };
  mo.on_unload = [&metrics](const std::string& m, const char* reason) {
    metrics.lifecycle().OnUnload(m, reason);
  };
  mo.observer_for = [&metrics](const std::string& m, int64_t v) {
    return metrics.ObserverFor(m, v);
  };
  auto models = ModelManager::Create(std::move(mo));
  if (!models.ok()) {
    std::cerr << "inferd serve: " << models.status().message() << "\n";
    return models.status().code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  auto cache = BuildResponseCache(s, &registry);
  if (!cache.ok()) {
    std::cerr << "inferd serve: " << cache.status().message() << "\n";
    return 2;
  }
  // After a global rate-limit decision (on the Redis thread) a request goes
  // on on the HTTP I/O threads; they exist once the HTTP server does, and
  // no request arrives before.
  std::atomic<http::Server*> io_threads{nullptr};
  InferenceServer::Options so;
  so.post = [&io_threads](std::function<void()> fn) {
    if (http::Server* io = io_threads.load(std::memory_order_acquire)) {
      io->Post(std::move(fn));
    } else {
      fn();
    }
  };
  so.admission = admission->get();
  so.models = models->get();
  so.metrics = &metrics;
  so.cache = cache->get();
  so.coalesce_timeout = std::chrono::milliseconds(s.GetInt("cache.coalesce_timeout_ms"));
  so.default_timeout = std::chrono::milliseconds(s.GetInt("request_timeout_ms"));
  so.encoded_max_bytes = static_cast<size_t>(s.GetInt("cache.exact_repeat_max_bytes"));
  auto server = InferenceServer::Create(so);
  if (!server.ok()) {
    std::cerr << "inferd serve: " << server.status().message() << "\n";
    return 1;
  }
  api::ApiContext ctx{server->get(), &registry, INFERD_VERSION, admission->get()};
  http::Router router;
  api::RegisterKServeRoutes(&router, &ctx);
  api::RegisterAdminRoutes(&router, &ctx);
  api::RegisterCacheRoutes(&router, &ctx);
  if (!s.GetString("cache_warm").empty()) {
    Status warmed = api::WarmCache(&ctx, s.GetString("cache_warm"));
    if (!warmed.ok()) {
      std::cerr << "inferd serve: cache_warm: " << warmed.message() << "\n";
      return 2;
    }
  }

  http::Server::Options ho;
  ho.host = s.GetString("host");
  ho.port = static_cast<uint16_t>(port);
  ho.threads = static_cast<int>(std::max<int64_t>(1, s.GetInt("http_threads")));
  ho.max_body_bytes = static_cast<size_t>(std::max<int64_t>(0, s.GetInt("max_body_bytes")));
  ho.max_header_bytes = static_cast<size_t>(std::max<int64_t>(1024, s.GetInt("max_header_bytes")));
  ho.read_timeout = std::chrono::milliseconds(s.GetInt("http_read_timeout_ms"));
  ho.idle_timeout = std::chrono::milliseconds(s.GetInt("http_idle_timeout_ms"));
  ho.max_connections = s.GetInt("http_max_connections");
  ho.gzip_min_bytes = static_cast<size_t>(std::max<int64_t>(0, s.GetInt("http_gzip_min_bytes")));
  ho.registry = &registry;
  ho.check_header = [&ctx](const http::Request& header) {
    return api::RefuseBeforeBody(&ctx, header);
  };
  auto http_server = http::Server::Create(ho, &router);
  if (!http_server.ok()) {
    std::cerr << "inferd serve: " << http_server.status().message() << "\n";
    return 1;
  }
  io_threads.store(http_server->get(), std::memory_order_release);
  (*http_server)->Start();
  std::cout << "inferd: listening on http://" << ho.host << ":" << (*http_server)->port()
            << std::endl;
  INFERD_LOG_INFO("serving {} on {}:{} (at most {} connections)", s.GetString("model_repository"),
                  ho.host, (*http_server)->port(), (*http_server)->max_connections());

  int sig = 0;
  sigwait(&signals, &sig);
  INFERD_LOG_INFO("received signal {}: draining (up to {} s); a second signal exits at once", sig,
                  s.GetInt("drain_timeout_s"));
  std::thread([signals] {
    int again = 0;
    sigwait(&signals, &again);
    INFERD_LOG_WARN("received signal {} during the drain: exiting now", again);
    std::_Exit(1);
  }).detach();
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(s.GetInt("drain_timeout_s"));
  (*http_server)->StopAccepting();
  (*http_server)->BeginDrain();
  (*models)->BeginDrain();
  if (!(*http_server)->WaitIdle(deadline)) {
    INFERD_LOG_WARN("drain timeout: {} request(s) still in progress; finishing queued work",
                    (*http_server)->requests_in_progress());
  }
  (*models)->Shutdown();  // runs whatever is still queued; every request gets its answer
  // Decisions still waiting for Redis fall back now, while the I/O threads
  // can still run what follows them.
  (*admission)->StopGlobal();
  (*http_server)->WaitIdle(std::chrono::steady_clock::now() + std::chrono::seconds(5));
  (*http_server)->Stop();
  io_threads.store(nullptr, std::memory_order_release);
  // The cache goes before the pipeline that its pending lookups call back
  // into; its tiers flush their write queues (the disk survives a restart).
  cache->reset();
  INFERD_LOG_INFO("stopped");
  return 0;
}

}  // namespace

const std::vector<SettingSpec>& ServeSettingSpecs() {
  static const std::vector<SettingSpec> specs = {
      {"model_repository", Type::kString, "",
       "directory with <model>/config.toml and <model>/<version>/"},
      {"host", Type::kString, "127.0.0.1", "address to listen on"},
      {"http_port", Type::kInt, "8000", "HTTP port; 0 picks a free port and prints it"},
      {"http_threads", Type::kInt, "2", "HTTP I/O threads"},
      {"auth.required", Type::kBool, "false",
       "every /v2 request but /v2 and health needs an API key of a [[tenants]] entry"},
      {"rate_limits.redis_url", Type::kString, "",
       "Redis that makes every rate limit cluster-wide, shared by the inferd processes that use "
       "it: redis://[[user]:password@]host[:port][/db]; empty: limits are per process"},
      {"rate_limits.key_prefix", Type::kString,
       "inferd:rl:", "prefix of the rate limits' Redis keys"},
      {"rate_limits.timeout_ms", Type::kInt, "5",
       "bound of a rate-limit decision's Redis exchange and of its wait for it; beyond it this "
       "process's share decides"},
      {"rate_limits.instances", Type::kInt, "1",
       "inferd processes sharing the limits: while Redis is unreachable each admits "
       "rate/instances and burst/instances"},
      {"rate_limits.max_pending", Type::kInt, "4096",
       "rate-limit decisions waiting for Redis at most; beyond it this process's share decides"},
      {"max_body_bytes", Type::kInt, "67108864", "largest request body accepted; larger gets 413"},
      {"max_header_bytes", Type::kInt, "16384", "largest request header accepted; larger gets 431"},
      {"http_read_timeout_ms", Type::kInt, "30000",
       "a request must arrive completely within this many ms of its first byte, else 408"},
      {"http_idle_timeout_ms", Type::kInt, "60000",
       "idle keep-alive connections are closed after this"},
      {"http_gzip_min_bytes", Type::kInt, "16384",
       "JSON responses of at least this size are gzip-compressed for clients that accept gzip; "
       "0: never"},
      {"http_max_connections", Type::kInt, "0",
       "open connections beyond which a new one gets 503 and is closed; 0: the file-descriptor "
       "limit less max(256, limit/8)"},
      {"drain_timeout_s", Type::kInt, "30", "on SIGTERM/SIGINT, time to finish in-flight requests"},
      {"log_level", Type::kString, "info", "trace, debug, info, warn, error or off"},
      {"backend_directory", Type::kString, "",
       "where backend plugins (libinferd_backend_<name>.so) are loaded from when a model needs "
       "one; empty: backends/ beside the inferd executable"},
      {"executor_threads", Type::kInt, "0",
       "threads of the one executor that runs every model's batches; 0: one per core"},
      {"model_control", Type::kString, "lazy",
       "lazy: a model loads on its first request (or --load-model, or POST "
       "/v2/repository/models/M/load); explicit: only --load-model and the load call load; "
       "poll: lazy, and the repository is rescanned every repository_poll_s (new, changed and "
       "removed models and versions)"},
      {"repository_poll_s", Type::kInt, "15",
       "poll control: seconds between rescans of the repository; a change is acted on when two "
       "consecutive scans agree"},
      {"load_model", Type::kString, "",
       "models to load before listening, comma-separated or a repeated flag; '*': all"},
      {"model_load_threads", Type::kInt, "2", "models loaded in parallel"},
      {"model_memory_budget", Type::kInt, "0",
       "bytes the loaded models may take together (as their backends report them); past it a "
       "load first unloads the least recently used idle models (lazy and poll control) or is "
       "refused (explicit); 0: no budget"},
      {"model_keep_alive_s", Type::kInt, "300",
       "seconds a model stays loaded after its last request, unless its config.toml sets "
       "keep_alive_s (-1: forever; 0: unloads as soon as idle); lazy and poll control only"},
      {"model_load_wait_ms", Type::kInt, "30000",
       "longest a request waits for its model to load (its own deadline may be shorter)"},
      {"request_timeout_ms", Type::kInt, "0",
       "deadline of an inference request that sets no parameters.timeout, from its arrival; a "
       "request still queued at its deadline is answered 504 without running; 0: none"},
      {"cache.memory.max_bytes", Type::kInt, "268435456",
       "L1 response cache budget in bytes, never exceeded; 0 disables the response cache"},
      {"cache.memory.shards", Type::kInt, "16", "L1 shards (independent locks)"},
      {"cache.memory.max_stale_s", Type::kInt, "3600",
       "how long L1 keeps expired entries for stale-if-error"},
      {"cache.disk.path", Type::kString, "", "L2 RocksDB directory; empty disables the disk tier"},
      {"cache.disk.max_bytes", Type::kInt, "1073741824", "L2 size cap in bytes"},
      {"cache.disk.file_ttl_s", Type::kInt, "604800",
       "L2 files older than this are dropped whatever they hold (0: never)"},
      {"cache.redis.url", Type::kString, "",
       "L3 Redis, redis://[[user]:password@]host[:port][/db]; empty disables it"},
      {"cache.redis.key_prefix", Type::kString, "inferd:", "prefix of every Redis key"},
      {"cache.redis.timeout_ms", Type::kInt, "5", "Redis connect and operation timeout"},
      {"cache.coalesce_timeout_ms", Type::kInt, "30000",
       "longest wait for an identical request in flight (unless the request sets "
       "parameters.timeout)"},
      {"cache.exact_repeat_max_bytes", Type::kInt, "4096",
       "request bodies up to this size are also keyed by their bytes, so that an exact repeat "
       "is answered without decoding the request or encoding the response; 0: off"},
      {"cache.exact_repeat_share", Type::kDouble, "0.1",
       "at most this share of L1 (0-1) holds exact-repeat responses: they are larger than the "
       "entries they copy, so an unbounded share costs hit ratio"},
      {"cache_warm", Type::kString, "", "file of requests (JSON lines) replayed before serving"},
  };
  return specs;
}

void AddServeCommand(CLI::App& root) {
  auto flags = std::make_shared<ServeFlags>();
  CLI::App* cmd = root.add_subcommand("serve", "Serve the models of a repository over HTTP");
  cmd->add_option("--config", flags->config_file, "TOML config file (env INFERD_CONFIG)");
  for (const auto& spec : ServeSettingSpecs()) {
    std::string help = spec.help + " [env " + Settings::EnvName(spec.key) + ", default '" +
                       spec.default_value + "']";
    CLI::Option* opt = cmd->add_option(Settings::FlagName(spec.key), flags->values[spec.key], help);
    // The values are kept as text (settings parse them), so name the type.
    switch (spec.type) {
      case Type::kInt:
        opt->type_name("INT");
        break;
      case Type::kDouble:
        opt->type_name("FLOAT");
        break;
      case Type::kBool:
        opt->type_name("BOOL");
        break;
      case Type::kString:
        opt->type_name("TEXT");
        break;
    }
    // --load-model a --load-model b: "a,b".
    if (spec.key == "load_model")
      opt->multi_option_policy(CLI::MultiOptionPolicy::Join)->delimiter(',');
    flags->options[spec.key] = opt;
  }
  cmd->callback([flags] {
    int rc = RunServe(*flags);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace inferd
