// raw_torch_bench: the raw libtorch ceiling for model serving (DESIGN.md section 6).
//
// Loads a TorchScript model and measures in-process forward throughput (items/s)
// over a grid of batch size x instances x intra-op threads. Each instance is a
// thread running its own module copy (with --share-module, all run one module)
// with its own intra-op thread count; combinations with instances x threads >
// cores are skipped. VmRSS is reported after the load, after each
// configuration's warm-up and at its peak in the timed windows. For each
// configuration the workers warm up, then run `--repeats` timed windows of
// `--duration-s` each; the median items/s is reported. The best configuration
// over the grid is the ceiling that inferd's serving figures are quoted against.
//
// Example:
//   raw_torch_bench --model examples/models/resnet18/1/model.pt --shape 3,224,224
//       --json bench/results/raw_resnet18.json

#include <ATen/Parallel.h>
#include <sched.h>
#include <torch/script.h>
#include <torch/version.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string model_path;
  std::vector<int64_t> shape;  // non-batch dims
  std::vector<int> batch_sizes{1, 2, 4, 8, 16, 32};
  std::vector<int> instances{1, 2};
  std::vector<int> threads{1, 2};
  double duration_s = 3.0;
  int repeats = 3;
  int warmup = 3;  // forward calls per worker before timing
  int cores = 0;   // 0 = detect from the CPU affinity mask
  std::string json_path;
  bool optimize = false;      // torch::jit::freeze + optimize_for_inference, as inferd's default
  bool share_module = false;  // every instance runs the same module (inferd's default)
};

// One measured configuration.
struct Row {
  int batch = 0;
  int instances = 0;
  int threads = 0;
  std::vector<double> items_per_s;  // one per repeat
  double median = 0;
  double batch_latency_ms = 0;  // mean forward time of one batch, median repeat
  double rss_ready_mib = 0;     // VmRSS after the warm-up, before the first timed window
  double rss_peak_mib = 0;      // highest VmRSS sampled (every 20 ms) in the timed windows
};

// A reusable thread barrier that blocks on a condition variable, so threads
// waiting for a window to start or end never spin on a core that the OpenMP
// team being measured could use.
class BlockingBarrier {
 public:
  explicit BlockingBarrier(int count) : count_(count) {}

  void ArriveAndWait() {
    std::unique_lock lock(mu_);
    const uint64_t generation = generation_;
    if (++arrived_ == count_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != generation; });
  }

 private:
  const int count_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;          // guarded by mu_
  uint64_t generation_ = 0;  // guarded by mu_
};

// What one worker did in one timed window.
struct WorkerWindow {
  int64_t iterations = 0;
  Clock::time_point end;
};

int DetectCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// OpenMP settings that change the figures (busy-wait policy matters when the
// cores are shared), echoed so a result can be reproduced.
std::string OmpEnv() {
  std::string s;
  for (const char* name : {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"}) {
    const char* value = std::getenv(name);
    s += std::string(s.empty() ? "" : " ") + name + "=" + (value ? value : "");
  }
  return s;
}

// The process's resident memory (VmRSS), from /proc/self/statm.
double ResidentMib() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Runs `instances` workers, each with its own module and `threads` intra-op
// threads, for one batch size; returns one row with all repeats measured.
// Threading: workers and this thread meet at a barrier before and after each
// timed window; per-worker results are written before the barrier and read
// after it, so no further synchronization is needed.
class ConfigRun {
 public:
  ConfigRun(const Options& opts, std::vector<torch::jit::Module>& modules, int batch, int instances,
            int threads)
      : opts_(opts),
        modules_(modules),
        batch_(batch),
        instances_(instances),
        threads_(threads),
        sync_(instances + 1),
        windows_(instances),
        errors_(instances) {}

  std::optional<Row> Run() {
    std::vector<std::thread> workers;
    for (int i = 0; i < instances_; ++i) workers.emplace_back([this, i] { Worker(i); });
    sync_.ArriveAndWait();  // threads configured
    sync_.ArriveAndWait();  // warm-up done
    Row row{batch_, instances_, threads_, {}, 0, 0, ResidentMib(), 0};
    std::vector<double> latencies;
    for (int r = 0; r < opts_.repeats; ++r) {
      start_ = Clock::now();
      deadline_ = start_ + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(opts_.duration_s));
      sync_.ArriveAndWait();  // start window
      // Sample the resident memory while the workers run (this thread sleeps
      // between samples, so it takes no measurable core time from them).
      for (Clock::time_point now = Clock::now(); now < deadline_; now = Clock::now()) {
        row.rss_peak_mib = std::max(row.rss_peak_mib, ResidentMib());
        std::this_thread::sleep_for(
            std::min<Clock::duration>(std::chrono::milliseconds(20), deadline_ - now));
      }
      sync_.ArriveAndWait();  // window done
      int64_t iterations = 0;
      Clock::time_point end = start_;
      for (const WorkerWindow& w : windows_) {
        iterations += w.iterations;
        end = std::max(end, w.end);
      }
      const double elapsed = std::chrono::duration<double>(end - start_).count();
      row.items_per_s.push_back(elapsed > 0 ? iterations * batch_ / elapsed : 0);
      latencies.push_back(iterations > 0 ? 1e3 * elapsed * instances_ / iterations : 0);
    }
    stop_.store(true);
    sync_.ArriveAndWait();  // release workers
    for (std::thread& t : workers) t.join();
    for (const std::string& e : errors_) {
      if (!e.empty()) {
        std::fprintf(stderr, "error (batch %d, %d x %d): %s\n", batch_, instances_, threads_,
                     e.c_str());
        return std::nullopt;
      }
    }
    row.median = Median(row.items_per_s);
    row.batch_latency_ms = Median(latencies);
    return row;
  }

 private:
  void Worker(int index) {
    std::string& error = errors_[index];
    try {
      // Initialise this thread's intra-op pool first, so the lazy initialisation
      // inside the first parallel op cannot override the count set here.
      at::internal::lazy_init_num_threads();
      at::set_num_threads(threads_);
      if (at::get_num_threads() != threads_) {
        error = "at::set_num_threads(" + std::to_string(threads_) + ") gave " +
                std::to_string(at::get_num_threads());
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    // set_num_threads touches process-wide state: no one computes until all set.
    sync_.ArriveAndWait();
    c10::InferenceMode guard;
    torch::jit::Module& module = modules_[opts_.share_module ? 0 : index];
    std::vector<torch::jit::IValue> inputs;
    try {
      std::vector<int64_t> dims{batch_};
      dims.insert(dims.end(), opts_.shape.begin(), opts_.shape.end());
      inputs.emplace_back(torch::rand(dims));
      for (int i = 0; error.empty() && i < opts_.warmup; ++i) module.forward(inputs);
    } catch (const std::exception& e) {
      error = e.what();
    }
    sync_.ArriveAndWait();  // warm-up done
    while (true) {
      sync_.ArriveAndWait();  // start window, or stop
      if (stop_.load()) return;
      WorkerWindow& w = windows_[index];
      w = WorkerWindow{0, Clock::now()};
      try {
        while (error.empty() && Clock::now() < deadline_) {
          torch::jit::IValue out = module.forward(inputs);
          ++w.iterations;
        }
      } catch (const std::exception& e) {
        error = e.what();
      }
      w.end = Clock::now();
      sync_.ArriveAndWait();  // window done
    }
  }

  const Options& opts_;
  std::vector<torch::jit::Module>& modules_;
  const int batch_;
  const int instances_;
  const int threads_;
  BlockingBarrier sync_;
  // Written by the coordinator before a barrier, read by workers after it.
  Clock::time_point start_;
  Clock::time_point deadline_;
  std::atomic<bool> stop_{false};
  // Slot i is written only by worker i, read by the coordinator after a barrier.
  std::vector<WorkerWindow> windows_;
  std::vector<std::string> errors_;
};

std::string JoinInts(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out;
}

std::string RowJson(const Row& r) {
  std::ostringstream o;
  o << "{\"batch\": " << r.batch << ", \"instances\": " << r.instances
    << ", \"intra_op_threads\": " << r.threads << ", \"items_per_s\": " << r.median
    << ", \"batch_latency_ms\": " << r.batch_latency_ms
    << ", \"rss_ready_mib\": " << r.rss_ready_mib << ", \"rss_peak_mib\": " << r.rss_peak_mib
    << ", \"runs\": [";
  for (size_t i = 0; i < r.items_per_s.size(); ++i) o << (i ? ", " : "") << r.items_per_s[i];
  o << "]}";
  return o.str();
}

bool WriteJson(const Options& opts, int cores, double rss_after_load_mib,
               const std::vector<Row>& rows, const Row& best, const std::optional<Row>& best_b1) {
  std::ofstream f(opts.json_path);
  if (!f) return false;
  f << "{\n  \"model\": \"" << JsonEscape(opts.model_path) << "\",\n  \"shape\": ["
    << JoinInts(opts.shape) << "],\n  \"torch_version\": \"" << TORCH_VERSION_MAJOR << "."
    << TORCH_VERSION_MINOR << "." << TORCH_VERSION_PATCH << "\",\n  \"cores\": " << cores
    << ",\n  \"duration_s\": " << opts.duration_s << ",\n  \"repeats\": " << opts.repeats
    << ",\n  \"warmup\": " << opts.warmup
    << ",\n  \"optimize\": " << (opts.optimize ? "true" : "false")
    << ",\n  \"share_module\": " << (opts.share_module ? "true" : "false")
    << ",\n  \"rss_after_load_mib\": " << rss_after_load_mib << ",\n  \"omp_env\": \"" << OmpEnv()
    << "\",\n  \"rows\": [\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    f << "    " << RowJson(rows[i]) << (i + 1 < rows.size() ? ",\n" : "\n");
  }
  f << "  ],\n  \"best\": " << RowJson(best) << ",\n  \"best_batch1\": ";
  if (best_b1) {
    f << RowJson(*best_b1) << ",\n  \"raw_batching_gain\": "
      << (best_b1->median > 0 ? best.median / best_b1->median : 0);
  } else {
    f << "null";
  }
  f << "\n}\n";
  return static_cast<bool>(f);
}

void PrintRow(const Row& r) {
  std::printf("%6d %10d %8d %12.1f %12.2f %9.1f %9.1f  [", r.batch, r.instances, r.threads,
              r.median, r.batch_latency_ms, r.rss_ready_mib, r.rss_peak_mib);
  for (size_t i = 0; i < r.items_per_s.size(); ++i) {
    std::printf("%s%.1f", i ? " " : "", r.items_per_s[i]);
  }
  std::printf("]\n");
  std::fflush(stdout);
}

std::optional<Row> Measure(const Options& opts, std::vector<torch::jit::Module>& modules, int batch,
                           int instances, int threads) {
  return ConfigRun(opts, modules, batch, instances, threads).Run();
}

int ParseArgs(int argc, char** argv, Options& opts) {
  CLI::App app{"Raw libtorch forward throughput over batch x instances x intra-op threads"};
  app.add_option("--model", opts.model_path, "TorchScript model file")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--shape", opts.shape, "non-batch input dims, e.g. 3,224,224 (FP32)")
      ->required()
      ->delimiter(',');
  app.add_option("--batch-sizes", opts.batch_sizes, "batch sizes")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--instances", opts.instances, "instance counts (threads with own module)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--threads", opts.threads, "intra-op threads per instance")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--duration-s", opts.duration_s, "seconds per timed window")
      ->capture_default_str();
  app.add_option("--repeats", opts.repeats, "timed windows per configuration (median)")
      ->capture_default_str();
  app.add_option("--warmup", opts.warmup, "untimed forward calls per worker")
      ->capture_default_str();
  app.add_option("--cores", opts.cores, "cores available (0 = CPU affinity mask)");
  app.add_option("--json", opts.json_path, "write all rows and the best as JSON");
  app.add_flag("--optimize", opts.optimize,
               "freeze the module and apply optimize_for_inference (inferd's default)");
  app.add_flag("--share-module", opts.share_module,
               "load one module that every instance runs (inferd's default); else one each");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  const auto positive = [](const std::vector<int>& v) {
    return !v.empty() && std::all_of(v.begin(), v.end(), [](int x) { return x > 0; });
  };
  if (!positive(opts.batch_sizes) || !positive(opts.instances) || !positive(opts.threads) ||
      opts.duration_s <= 0 || opts.repeats < 1 || opts.warmup < 0) {
    std::fprintf(stderr, "batch sizes, instances, threads, duration, repeats must be > 0\n");
    return 2;
  }
  return -1;
}

// Loads `count` independent copies of the model (one per instance).
bool LoadModules(const Options& opts, int count, std::vector<torch::jit::Module>& modules) {
  try {
    for (int i = 0; i < count; ++i) {
      modules.push_back(torch::jit::load(opts.model_path));
      modules.back().eval();
      if (opts.optimize) modules.back() = torch::jit::optimize_for_inference(modules.back());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cannot load %s: %s\n", opts.model_path.c_str(), e.what());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  if (int rc = ParseArgs(argc, argv, opts); rc >= 0) return rc;
  const int cores = opts.cores > 0 ? opts.cores : DetectCores();
  at::set_num_interop_threads(1);
  std::vector<torch::jit::Module> modules;
  const int copies =
      opts.share_module ? 1 : *std::max_element(opts.instances.begin(), opts.instances.end());
  if (!LoadModules(opts, copies, modules)) return 1;
  const double rss_after_load_mib = ResidentMib();
  std::printf("model %s, shape [N,%s] FP32, %d cores, %.1f s x %d repeats, %d warm-up\n",
              opts.model_path.c_str(), JoinInts(opts.shape).c_str(), cores, opts.duration_s,
              opts.repeats, opts.warmup);
  std::printf("%s\n", OmpEnv().c_str());
  std::printf("%d module cop%s, VmRSS after load %.1f MiB\n", copies, copies == 1 ? "y" : "ies",
              rss_after_load_mib);
  std::printf("%6s %10s %8s %12s %12s %9s %9s  %s\n", "batch", "instances", "threads", "items/s",
              "batch_ms", "rss_MiB", "peak_MiB", "runs");
  std::vector<Row> rows;
  for (int instances : opts.instances) {
    for (int threads : opts.threads) {
      if (instances * threads > cores) {
        std::printf("# skip %d instances x %d threads > %d cores\n", instances, threads, cores);
        continue;
      }
      for (int batch : opts.batch_sizes) {
        std::optional<Row> row = Measure(opts, modules, batch, instances, threads);
        if (!row) return 1;
        PrintRow(*row);
        rows.push_back(*row);
      }
    }
  }
  if (rows.empty()) {
    std::fprintf(stderr, "no configuration fits in %d cores\n", cores);
    return 1;
  }
  const Row best = *std::max_element(
      rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.median < b.median; });
  std::optional<Row> best_b1;
  for (const Row& r : rows) {
    if (r.batch == 1 && r.instances == best.instances && r.threads == best.threads) best_b1 = r;
  }
  if (!best_b1) {
    std::printf("# measuring batch 1 for the best (instances, threads)\n");
    best_b1 = Measure(opts, modules, 1, best.instances, best.threads);
    if (!best_b1) return 1;
    PrintRow(*best_b1);
  }
  std::printf("best: batch %d, %d instances x %d intra-op threads: %.1f items/s\n", best.batch,
              best.instances, best.threads, best.median);
  std::printf("best (instances, threads) at batch 1: %.1f items/s; raw batching gain %.2fx\n",
              best_b1->median, best_b1->median > 0 ? best.median / best_b1->median : 0.0);
  if (!opts.json_path.empty() && !WriteJson(opts, cores, rss_after_load_mib, rows, best, best_b1)) {
    std::fprintf(stderr, "cannot write %s\n", opts.json_path.c_str());
    return 1;
  }
  return 0;
}
