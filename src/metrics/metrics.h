#pragma once
// Metrics: Counter, Gauge and Histogram, grouped into labelled families that
// live in a Registry, which renders them in the Prometheus text exposition
// format 0.0.4 for the /metrics endpoint.
//
// Hot path: look a child metric up once with Family<T>::WithLabels (takes the
// family's lock), cache the returned pointer, and from then on only call
// Increment / Set / Add / Observe, which are lock-free atomics.
//
// Lifetime: families and their children are owned by the Registry and never
// removed, so every pointer handed out stays valid until the Registry dies.
//
// Programmer errors (an invalid metric or label name, a wrong number of label
// values, registering one name twice with different types, label names or
// buckets) print a message to stderr and abort(), in every build type. They
// happen at start-up with constant arguments, so they surface at once in any
// test; this mirrors MustRegister in the Go client and keeps the API free of
// Status plumbing on the hot path.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/mutex.h"

namespace inferd {

// The Content-Type to serve Registry::ExposeText() with.
inline constexpr std::string_view kPrometheusTextContentType =
    "text/plain; version=0.0.4; charset=utf-8";

static_assert(std::atomic<double>::is_always_lock_free, "metrics need lock-free double atomics");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "metrics need lock-free 64-bit atomics");

namespace metrics_internal {

// Hot metrics are striped: each thread adds into its own cache line (the
// stripe it took at its first update, in turn), and a read sums the
// stripes. Two I/O threads on two cores then never bounce one line per
// update, as a single atomic would (docs/benchmarks.md, "The memo hit's
// CPU"). Reads are rare (a scrape) and pay the sum.
inline constexpr size_t kStripes = 4;
size_t ThisThreadStripe();

struct alignas(64) PaddedDouble {
  std::atomic<double> v{0};
};

inline double SumStripes(const std::array<PaddedDouble, kStripes>& s) {
  double total = 0;
  for (const PaddedDouble& p : s) total += p.v.load(std::memory_order_relaxed);
  return total;
}

}  // namespace metrics_internal

// A monotonically increasing value (requests served, bytes sent).
// Invariant: Value() never decreases; negative and NaN increments are ignored.
// Threading: every method is lock-free and safe from any thread; updates
// from different threads touch different cache lines (striped).
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void Increment(double v = 1) {
    if (!(v >= 0)) return;  // also rejects NaN
    stripes_[metrics_internal::ThisThreadStripe()].v.fetch_add(v, std::memory_order_relaxed);
  }
  double Value() const { return metrics_internal::SumStripes(stripes_); }

 private:
  std::array<metrics_internal::PaddedDouble, metrics_internal::kStripes> stripes_;
};

// A value that goes up and down (queue depth, resident bytes). A gauge is
// either Set (a sampled value) or moved with Add (in-flight requests), not
// both at once: Set replaces the striped sum, and an Add racing with it
// may be lost.
// Threading: every method is lock-free and safe from any thread.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) {
    stripes_[0].v.store(v, std::memory_order_relaxed);
    for (size_t i = 1; i < stripes_.size(); ++i) stripes_[i].v.store(0, std::memory_order_relaxed);
  }
  void Add(double v) {
    stripes_[metrics_internal::ThisThreadStripe()].v.fetch_add(v, std::memory_order_relaxed);
  }
  double Value() const { return metrics_internal::SumStripes(stripes_); }

 private:
  std::array<metrics_internal::PaddedDouble, metrics_internal::kStripes> stripes_;
};

// Counts observations (latencies, sizes) into buckets with fixed upper bounds.
// A value v lands in the first bucket whose bound b satisfies v <= b, or in the
// implicit +Inf bucket (NaN included).
// Invariants: bounds are finite, strictly increasing and fixed at
// construction (the constructor sorts them and drops duplicates and
// non-finite values, so any input yields a valid histogram).
// Threading: Observe is lock-free (one atomic add on a bucket, one on the
// sum, both in the calling thread's stripe). Snap may run concurrently with Observe; it then sees
// each observation either fully in the counts or not at all, but the sum may be a few observations
// ahead of or behind the counts, as in other Prometheus clients.
class Histogram {
 public:
  struct Snapshot {
    std::vector<double> bounds;               // finite upper bounds, ascending
    std::vector<uint64_t> cumulative_counts;  // bounds.size() + 1 entries; last is +Inf
    double sum = 0;
    uint64_t count = 0;  // == cumulative_counts.back()
  };

  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double v);
  Snapshot Snap() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  struct FreeAligned {
    void operator()(std::atomic<uint64_t>* p) const;
  };
  std::vector<double> bounds_;
  // Per stripe, a row of row_ slots (a whole number of cache lines): the
  // sum (as the bits of a double) then bounds_.size() + 1 non-cumulative
  // counts, the last one the +Inf bucket.
  size_t row_ = 0;
  std::unique_ptr<std::atomic<uint64_t>[], FreeAligned> slots_;
};

namespace metrics_internal {

enum class MetricType { kCounter, kGauge, kHistogram };

// The type-independent part of a family, so the Registry can hold all kinds
// in one list. Immutable fields only; children live in Family<T>.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  MetricType type() const { return type_; }

  // Appends "# HELP", "# TYPE" and one sample line per child (several for a
  // histogram) in the text format. Children appear sorted by label values.
  virtual void AppendText(std::string* out) const = 0;

 protected:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names,
             MetricType type)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        type_(type) {}

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const MetricType type_;
};

}  // namespace metrics_internal

class Registry;

// A metric name with its label names; one child metric T per distinct tuple
// of label values. A family without label names has exactly one child, made
// at registration (so it is exposed as 0 before first use) and returned by
// WithLabels({}).
// T is Counter, Gauge or Histogram (explicitly instantiated in metrics.cc).
// Threading: WithLabels is thread-safe (takes the family's mutex); the
// returned pointer is stable for the Registry's lifetime, so callers cache it.
template <typename T>
class Family final : public metrics_internal::FamilyBase {
 public:
  // `label_values` must have one entry per label name (any UTF-8 text;
  // escaped on exposition); a wrong count aborts.
  T* WithLabels(const std::vector<std::string>& label_values) EXCLUDES(mu_);

  // Bucket bounds of every child (histogram families only; empty otherwise).
  const std::vector<double>& bucket_bounds() const { return bounds_; }

  void AppendText(std::string* out) const override EXCLUDES(mu_);

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds);

  const std::vector<double> bounds_;
  mutable Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_ GUARDED_BY(mu_);
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

// Owns metric families and renders them in the Prometheus text format.
//
// Names: metric names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
// [a-zA-Z_][a-zA-Z0-9_]* without a leading "__", and histograms may not use
// the label "le". Follow Prometheus conventions, which `promtool check
// metrics` enforces: an "inferd_" prefix, base units in the name
// (_seconds, _bytes) and a "_total" suffix on counters.
//
// Registering a name that already exists returns the existing family when
// the type, label names and (for histograms) bucket bounds are the same (the
// new help text is ignored); any other clash aborts. So two components may
// both "register" a shared metric and get the same object.
//
// Invariants: families are exposed in registration order and never removed.
// Threading: every method is thread-safe. ExposeText calls are serialized,
// so collect hooks never run concurrently with each other.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Family<Counter>* AddCounter(std::string name, std::string help,
                              std::vector<std::string> label_names) EXCLUDES(mu_);
  Family<Gauge>* AddGauge(std::string name, std::string help, std::vector<std::string> label_names)
      EXCLUDES(mu_);
  // `bucket_bounds` are normalized as in Histogram (sorted, deduplicated,
  // non-finite values dropped); +Inf is always implied.
  Family<Histogram>* AddHistogram(std::string name, std::string help,
                                  std::vector<std::string> label_names,
                                  std::vector<double> bucket_bounds) EXCLUDES(mu_);

  // `hook` runs (on the exposing thread, with no registry lock held) at the
  // start of every ExposeText, e.g. to refresh a gauge from /proc. It may use
  // any metric and may register new families.
  void AddCollectHook(std::function<void()> hook) EXCLUDES(mu_);

  // Runs the collect hooks, then renders every family: "# HELP", "# TYPE",
  // samples; histograms as _bucket{le="..."} (cumulative, ending with +Inf),
  // _sum and _count. Numbers: integers without exponent where exact, else the
  // shortest round-trip form; +Inf, -Inf, NaN spelled as Prometheus expects.
  std::string ExposeText() EXCLUDES(mu_, expose_mu_);

 private:
  template <typename T>
  Family<T>* Add(std::string name, std::string help, std::vector<std::string> label_names,
                 std::vector<double> bounds) EXCLUDES(mu_);

  Mutex expose_mu_;  // serializes ExposeText (and so the hooks); taken before mu_
  Mutex mu_;
  std::vector<std::unique_ptr<metrics_internal::FamilyBase>> families_ GUARDED_BY(mu_);
  std::unordered_map<std::string, metrics_internal::FamilyBase*> by_name_ GUARDED_BY(mu_);
  std::vector<std::function<void()>> hooks_ GUARDED_BY(mu_);
};

// `count` bounds start, start*factor, start*factor^2, ... each rounded to 12
// significant digits (so 0.1 * 3 gives 0.3, not 0.30000000000000004).
// Returns {} unless start > 0, factor > 1 and count >= 1.
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// Bounds in seconds for request and inference latency: a 1-2.5-5 series from
// 50us to 25s, then 60s (19 bounds).
std::vector<double> LatencyBuckets();

// Resident set size of this process in bytes, from /proc/self/statm; -1 if
// it cannot be read.
int64_t ProcessResidentBytes();

// Text-format helpers, exposed for tests and for other exposition code.
// FormatMetricValue: "+Inf", "-Inf", "NaN", integers without exponent when
// exact (|v| < 2^53), else the shortest representation that round-trips.
std::string FormatMetricValue(double v);
// Escapes a label value: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view v);

}  // namespace inferd
