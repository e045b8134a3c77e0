#include "bench/load_generator.h"

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <random>
#include <thread>

namespace inferd::bench {
namespace {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

struct Window {
  TimePoint start;        // load starts (warm-up begins)
  TimePoint record_from;  // warm-up ends
  TimePoint end;          // measurement ends
};

// One load's share on one I/O thread. Touched only from that thread's
// io_context until the thread has been joined.
struct LoadThread {
  LoadThread(const LoadSpec& spec, const Window& w, int index, asio::io_context& io)
      : ioc(io),
        window(w),
        url(spec.url),
        request(spec.request),
        unique_fraction(spec.unique_fraction),
        unique_offset(spec.unique_offset),
        rng(spec.seed * 7919 + static_cast<uint64_t>(index)),
        thread_index(static_cast<float>(index)),
        run_nonce(static_cast<float>(std::random_device{}() & 0xFFFFFF)) {
    conn_options.connect_timeout = spec.timeout;
    conn_options.request_timeout = spec.timeout;
  }

  // The next request to send: usually `request`; with probability
  // unique_fraction a copy made unique (see LoadSpec::unique_fraction).
  // `scratch` belongs to the calling client, so the returned reference
  // stays valid while that client's request is in flight.
  const http::ClientRequest& Next(std::optional<http::ClientRequest>* scratch) {
    if (unique_fraction <= 0 || coin(rng) >= unique_fraction) return request;
    if (!*scratch) scratch->emplace(request);
    http::ClientRequest& r = **scratch;
    r.body().assign(request.body());
    float mark[3] = {static_cast<float>(++unique_count), thread_index, run_nonce};
    static_assert(sizeof(mark) == LoadSpec::kUniqueMarkBytes);
    if (unique_offset + sizeof(mark) <= r.body().size()) {
      std::memcpy(r.body().data() + unique_offset, mark, sizeof(mark));
    }
    return r;
  }

  void Record(TimePoint sent_at, TimePoint done, const StatusOr<http::ClientResponse>& r) {
    const bool success = r.ok() && r->result() == http::Status::ok;
    if (sent_at >= window.record_from && sent_at < window.end) {
      ++sent;
      if (success) ++served;
    }
    if (done < window.record_from || done > window.end) return;  // completed in the window
    if (success) {
      latencies.push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(done - sent_at).count());
      ++ok;
      return;
    }
    ++errors;
    ++errors_by_kind[r.ok() ? std::to_string(r->result_int())
                            : std::string(http::TransportErrorKind(r.status()))];
  }

  // Completion handler for co_spawn: keeps the first exception's message.
  auto OnDone() {
    return [this](std::exception_ptr e) {
      if (!e || !failure.empty()) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        failure = ex.what();
      } catch (...) {
        failure = "unknown exception";
      }
    };
  }

  asio::io_context& ioc;
  const Window window;
  const http::Url url;
  http::ClientConnection::Options conn_options;
  const http::ClientRequest request;  // this thread's own copy
  const double unique_fraction;
  const size_t unique_offset;
  std::mt19937_64 rng;
  std::uniform_real_distribution<double> coin{0.0, 1.0};
  const float thread_index;
  uint32_t unique_count = 0;
  // Random per run: the unique requests of one run never repeat another's
  // (exact as a float below 2^24, like the counter).
  const float run_nonce;

  std::vector<int64_t> latencies;
  int64_t ok = 0;
  int64_t errors = 0;
  std::map<std::string, int64_t> errors_by_kind;
  int64_t sent = 0;
  int64_t served = 0;
  std::string failure;

  // Open loop only.
  std::deque<TimePoint> pending;          // due requests not yet sent
  std::vector<asio::steady_timer*> idle;  // wake-up timers of idle workers
  int workers = 0;
  int max_workers = 1;
  bool done = false;  // no more arrivals
  int64_t backlog = 0;
};

// Closed loop: one connection, one request outstanding, until the window ends.
asio::awaitable<void> ClosedLoopClient(LoadThread* t) {
  http::ClientConnection conn(co_await asio::this_coro::executor, t->url, t->conn_options);
  std::optional<http::ClientRequest> scratch;
  for (TimePoint sent = SteadyClock::now(); sent < t->window.end; sent = SteadyClock::now()) {
    StatusOr<http::ClientResponse> r = co_await conn.Send(t->Next(&scratch));
    t->Record(sent, SteadyClock::now(), r);
  }
}

// Open loop: takes due requests from the thread's queue, one at a time.
asio::awaitable<void> OpenLoopWorker(LoadThread* t) {
  auto executor = co_await asio::this_coro::executor;
  http::ClientConnection conn(executor, t->url, t->conn_options);
  asio::steady_timer wake(executor);
  std::optional<http::ClientRequest> scratch;
  boost::system::error_code ec;
  while (true) {
    if (t->pending.empty()) {
      if (t->done) break;
      wake.expires_at(TimePoint::max());
      t->idle.push_back(&wake);
      co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));  // cancel() wakes
      std::erase(t->idle, &wake);
      continue;
    }
    const TimePoint due = t->pending.front();
    t->pending.pop_front();
    StatusOr<http::ClientResponse> r = co_await conn.Send(t->Next(&scratch));
    t->Record(due, SteadyClock::now(), r);  // from the intended time: no coordinated omission
  }
}

// Arrival times of one thread's share of the rate.
class Arrivals {
 public:
  Arrivals(const LoadSpec& spec, int index, TimePoint start)
      : start_(start),
        poisson_(spec.poisson),
        rng_(spec.seed + static_cast<uint64_t>(index)),
        exp_(spec.rate / spec.threads),
        offset_s_(static_cast<double>(index) / spec.rate),
        interval_s_(static_cast<double>(spec.threads) / spec.rate),
        next_(start) {}

  TimePoint Next() {
    if (poisson_) {
      next_ += std::chrono::duration_cast<SteadyClock::duration>(
          std::chrono::duration<double>(exp_(rng_)));
      return next_;
    }
    const double s = offset_s_ + static_cast<double>(k_++) * interval_s_;
    return start_ +
           std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(s));
  }

 private:
  TimePoint start_;
  bool poisson_;
  std::mt19937_64 rng_;
  std::exponential_distribution<double> exp_;
  double offset_s_;
  double interval_s_;
  int64_t k_ = 0;
  TimePoint next_;
};

// Open loop: queues each request at its due time and hands it to an idle
// worker, starting a new worker (connection) when none is idle.
asio::awaitable<void> OpenLoopDispatcher(LoadThread* t, Arrivals arrivals) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  boost::system::error_code ec;
  for (TimePoint due = arrivals.Next(); due < t->window.end; due = arrivals.Next()) {
    if (SteadyClock::now() < due) {
      timer.expires_at(due);
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    t->pending.push_back(due);
    if (!t->idle.empty()) {
      t->idle.back()->cancel();
      t->idle.pop_back();
    } else if (t->workers < t->max_workers) {
      ++t->workers;
      asio::co_spawn(executor, OpenLoopWorker(t), t->OnDone());
    }
  }
  timer.expires_at(t->window.end);
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  t->done = true;
  t->backlog = static_cast<int64_t>(t->pending.size());
  t->pending.clear();
  for (asio::steady_timer* w : t->idle) w->cancel();
  t->idle.clear();
}

// I/O threads a load uses: its share of the rate on every thread (open
// loop), or at most one thread per connection (closed loop).
int ThreadsFor(const LoadSpec& spec) {
  return spec.rate > 0 ? spec.threads : std::min(spec.threads, spec.concurrency);
}

Status CheckSpecs(const std::vector<LoadSpec>& specs) {
  if (specs.empty()) return InvalidArgumentError("no load to run");
  for (const LoadSpec& spec : specs) {
    if (spec.rate <= 0 && spec.concurrency < 1) {
      return InvalidArgumentError("concurrency must be >= 1");
    }
    if (spec.threads < 1) return InvalidArgumentError("threads must be >= 1");
    if (spec.threads != specs[0].threads || spec.warmup != specs[0].warmup ||
        spec.duration != specs[0].duration) {
      return InvalidArgumentError("loads run together must agree on threads, warmup and duration");
    }
  }
  return Status::OK();
}

// Starts `spec`'s coroutines on its threads' io_contexts.
std::vector<std::unique_ptr<LoadThread>> StartLoad(
    const LoadSpec& spec, const Window& window,
    std::vector<std::unique_ptr<asio::io_context>>& iocs) {
  const bool open_loop = spec.rate > 0;
  const int threads = ThreadsFor(spec);
  std::vector<std::unique_ptr<LoadThread>> states;
  for (int i = 0; i < threads; ++i) {
    auto t = std::make_unique<LoadThread>(spec, window, i, *iocs[i]);
    if (open_loop) {
      t->max_workers = std::max(1, (spec.max_connections + threads - 1) / threads);
      LoadSpec share = spec;
      share.threads = threads;
      asio::co_spawn(t->ioc, OpenLoopDispatcher(t.get(), Arrivals(share, i, window.start)),
                     t->OnDone());
    }
    states.push_back(std::move(t));
  }
  if (!open_loop) {
    for (int c = 0; c < spec.concurrency; ++c) {
      LoadThread* t = states[c % threads].get();
      asio::co_spawn(t->ioc, ClosedLoopClient(t), t->OnDone());
    }
  }
  return states;
}

StatusOr<LoadResult> Collect(const LoadSpec& spec,
                             const std::vector<std::unique_ptr<LoadThread>>& states) {
  const bool open_loop = spec.rate > 0;
  LoadResult result;
  result.window_s = std::chrono::duration<double>(spec.duration).count();
  for (const auto& t : states) {
    if (!t->failure.empty()) return InternalError("load generator failed: " + t->failure);
    result.ok += t->ok;
    result.errors += t->errors;
    for (const auto& [kind, n] : t->errors_by_kind) result.errors_by_kind[kind] += n;
    result.latencies_ns.insert(result.latencies_ns.end(), t->latencies.begin(), t->latencies.end());
    result.connections += open_loop ? t->workers : 0;
    result.backlog += t->backlog;
    result.sent += t->sent;
    result.served += t->served;
  }
  if (!open_loop) result.connections = spec.concurrency;
  return result;
}

}  // namespace

StatusOr<LoadResult> RunLoad(const LoadSpec& spec) {
  INFERD_ASSIGN_OR_RETURN(std::vector<LoadResult> results, RunLoads({spec}));
  return std::move(results.front());
}

StatusOr<std::vector<LoadResult>> RunLoads(const std::vector<LoadSpec>& specs) {
  INFERD_RETURN_IF_ERROR(CheckSpecs(specs));
  int threads = 0;
  for (const LoadSpec& spec : specs) threads = std::max(threads, ThreadsFor(spec));

  Window window;
  window.start = SteadyClock::now();
  window.record_from =
      window.start + std::chrono::duration_cast<SteadyClock::duration>(specs[0].warmup);
  window.end =
      window.record_from + std::chrono::duration_cast<SteadyClock::duration>(specs[0].duration);

  // Declared first, destroyed last: coroutines left in an io_context (one
  // whose thread failed to start) point into these.
  std::vector<std::vector<std::unique_ptr<LoadThread>>> loads;
  std::vector<std::unique_ptr<asio::io_context>> iocs;
  for (int i = 0; i < threads; ++i) iocs.push_back(std::make_unique<asio::io_context>(1));
  for (const LoadSpec& spec : specs) loads.push_back(StartLoad(spec, window, iocs));

  std::vector<std::thread> runners;
  std::string thread_error;
  for (auto& ioc : iocs) {
    try {
      runners.emplace_back([&ioc = *ioc] { ioc.run(); });
    } catch (const std::exception& e) {
      thread_error = e.what();
      ioc->stop();  // its coroutines never start; the window still runs elsewhere
    }
  }
  for (std::thread& r : runners) r.join();
  if (!thread_error.empty()) return InternalError("cannot start load thread: " + thread_error);

  std::vector<LoadResult> results;
  for (size_t i = 0; i < specs.size(); ++i) {
    INFERD_ASSIGN_OR_RETURN(LoadResult result, Collect(specs[i], loads[i]));
    results.push_back(std::move(result));
  }
  return results;
}

}  // namespace inferd::bench
