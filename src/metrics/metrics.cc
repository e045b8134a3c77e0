#include "metrics/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <set>
#include <type_traits>

namespace inferd {
namespace {

using metrics_internal::FamilyBase;
using metrics_internal::MetricType;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "inferd metrics: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

bool IsValidName(std::string_view s, bool allow_colon) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

template <typename T>
constexpr MetricType TypeOf() {
  if constexpr (std::is_same_v<T, Counter>) {
    return MetricType::kCounter;
  } else if constexpr (std::is_same_v<T, Gauge>) {
    return MetricType::kGauge;
  } else {
    static_assert(std::is_same_v<T, Histogram>, "Family<T> needs Counter, Gauge or Histogram");
    return MetricType::kHistogram;
  }
}

std::vector<double> NormalizeBounds(std::vector<double> bounds) {
  std::erase_if(bounds, [](double b) { return !std::isfinite(b); });
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  return bounds;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Appends `name{l1="v1",...,extra}` followed by " value\n". `extra` is an
// already formatted label pair (le="...") or empty.
void AppendSample(std::string* out, std::string_view name, std::string_view suffix,
                  const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values, std::string_view extra,
                  std::string_view value) {
  out->append(name).append(suffix);
  if (!label_names.empty() || !extra.empty()) {
    out->push_back('{');
    for (size_t i = 0; i < label_names.size(); ++i) {
      if (i > 0) out->push_back(',');
      out->append(label_names[i]).append("=\"").append(EscapeLabelValue(label_values[i]));
      out->push_back('"');
    }
    if (!extra.empty()) {
      if (!label_names.empty()) out->push_back(',');
      out->append(extra);
    }
    out->push_back('}');
  }
  out->push_back(' ');
  out->append(value).push_back('\n');
}

void AppendChild(std::string* out, const FamilyBase& f, const std::vector<std::string>& values,
                 const Counter& c) {
  AppendSample(out, f.name(), "", f.label_names(), values, "", FormatMetricValue(c.Value()));
}

void AppendChild(std::string* out, const FamilyBase& f, const std::vector<std::string>& values,
                 const Gauge& g) {
  AppendSample(out, f.name(), "", f.label_names(), values, "", FormatMetricValue(g.Value()));
}

void AppendChild(std::string* out, const FamilyBase& f, const std::vector<std::string>& values,
                 const Histogram& h) {
  Histogram::Snapshot s = h.Snap();
  for (size_t i = 0; i < s.cumulative_counts.size(); ++i) {
    std::string le = "le=\"";
    le += i < s.bounds.size() ? FormatMetricValue(s.bounds[i]) : "+Inf";
    le += '"';
    AppendSample(out, f.name(), "_bucket", f.label_names(), values, le,
                 std::to_string(s.cumulative_counts[i]));
  }
  AppendSample(out, f.name(), "_sum", f.label_names(), values, "", FormatMetricValue(s.sum));
  AppendSample(out, f.name(), "_count", f.label_names(), values, "", std::to_string(s.count));
}

}  // namespace

// ---- Histogram ----

namespace metrics_internal {

size_t ThisThreadStripe() {
  static std::atomic<size_t> next{0};
  thread_local const size_t stripe = next.fetch_add(1, std::memory_order_relaxed) % kStripes;
  return stripe;
}

}  // namespace metrics_internal

void Histogram::FreeAligned::operator()(std::atomic<uint64_t>* p) const {
  ::operator delete[](p, std::align_val_t{64});
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(NormalizeBounds(std::move(bounds))) {
  constexpr size_t kPerLine = 64 / sizeof(std::atomic<uint64_t>);
  row_ = (bounds_.size() + 2 + kPerLine - 1) / kPerLine * kPerLine;
  const size_t n = row_ * metrics_internal::kStripes;
  auto* raw = static_cast<std::atomic<uint64_t>*>(
      ::operator new[](n * sizeof(std::atomic<uint64_t>), std::align_val_t{64}));
  for (size_t i = 0; i < n; ++i) new (&raw[i]) std::atomic<uint64_t>(0);
  slots_.reset(raw);
}

void Histogram::Observe(double v) {
  // First bound >= v; NaN compares false everywhere and goes to +Inf.
  size_t i = std::isnan(v)
                 ? bounds_.size()
                 : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                       bounds_.begin());
  std::atomic<uint64_t>* row = &slots_[row_ * metrics_internal::ThisThreadStripe()];
  row[1 + i].fetch_add(1, std::memory_order_relaxed);
  // The sum: a double kept as its bits. Only this thread's stripe sees
  // updates from this thread, so the loop rarely retries.
  uint64_t old = row[0].load(std::memory_order_relaxed);
  while (!row[0].compare_exchange_weak(old, std::bit_cast<uint64_t>(std::bit_cast<double>(old) + v),
                                       std::memory_order_relaxed)) {
  }
}

Histogram::Snapshot Histogram::Snap() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative_counts.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    for (size_t k = 0; k < metrics_internal::kStripes; ++k)
      running += slots_[row_ * k + 1 + i].load(std::memory_order_relaxed);
    s.cumulative_counts[i] = running;
  }
  s.count = running;
  for (size_t k = 0; k < metrics_internal::kStripes; ++k)
    s.sum += std::bit_cast<double>(slots_[row_ * k].load(std::memory_order_relaxed));
  return s;
}

// ---- Family ----

template <typename T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds)
    : FamilyBase(std::move(name), std::move(help), std::move(label_names), TypeOf<T>()),
      bounds_(std::move(bounds)) {}

template <typename T>
T* Family<T>::WithLabels(const std::vector<std::string>& label_values) {
  if (label_values.size() != label_names().size()) {
    Die("metric " + name() + " has " + std::to_string(label_names().size()) +
        " label names but WithLabels got " + std::to_string(label_values.size()) + " values");
  }
  MutexLock lock(&mu_);
  auto it = children_.find(label_values);
  if (it != children_.end()) return it->second.get();
  std::unique_ptr<T> child;
  if constexpr (std::is_same_v<T, Histogram>) {
    child = std::make_unique<Histogram>(bounds_);
  } else {
    child = std::make_unique<T>();
  }
  T* raw = child.get();
  children_.emplace(label_values, std::move(child));
  return raw;
}

template <typename T>
void Family<T>::AppendText(std::string* out) const {
  out->append("# HELP ").append(name()).push_back(' ');
  out->append(EscapeHelp(help())).push_back('\n');
  out->append("# TYPE ").append(name()).push_back(' ');
  out->append(TypeName(type())).push_back('\n');
  MutexLock lock(&mu_);
  for (const auto& [values, child] : children_) AppendChild(out, *this, values, *child);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---- Registry ----

template <typename T>
Family<T>* Registry::Add(std::string name, std::string help, std::vector<std::string> label_names,
                         std::vector<double> bounds) {
  constexpr MetricType type = TypeOf<T>();
  if (!IsValidName(name, /*allow_colon=*/true)) Die("invalid metric name \"" + name + "\"");
  std::set<std::string_view> seen;
  for (const std::string& l : label_names) {
    if (!IsValidName(l, /*allow_colon=*/false) || l.starts_with("__")) {
      Die("metric " + name + ": invalid label name \"" + l + "\"");
    }
    if (type == MetricType::kHistogram && l == "le") {
      Die("histogram " + name + ": label name \"le\" is reserved");
    }
    if (!seen.insert(l).second) Die("metric " + name + ": duplicate label name \"" + l + "\"");
  }

  MutexLock lock(&mu_);
  auto it = by_name_.find(name);
  if (it != by_name_.end()) {
    FamilyBase* existing = it->second;
    if (existing->type() != type) {
      Die("metric " + name + " registered as " + std::string(TypeName(existing->type())) +
          " and again as " + std::string(TypeName(type)));
    }
    auto* family = static_cast<Family<T>*>(existing);
    if (family->label_names() != label_names || family->bucket_bounds() != bounds) {
      Die("metric " + name + " registered twice with different label names or buckets");
    }
    return family;
  }
  std::unique_ptr<Family<T>> family(
      new Family<T>(name, std::move(help), std::move(label_names), std::move(bounds)));
  Family<T>* raw = family.get();
  if (raw->label_names().empty()) raw->WithLabels({});  // the single child, exposed from the start
  by_name_.emplace(std::move(name), raw);
  families_.push_back(std::move(family));
  return raw;
}

Family<Counter>* Registry::AddCounter(std::string name, std::string help,
                                      std::vector<std::string> label_names) {
  return Add<Counter>(std::move(name), std::move(help), std::move(label_names), {});
}

Family<Gauge>* Registry::AddGauge(std::string name, std::string help,
                                  std::vector<std::string> label_names) {
  return Add<Gauge>(std::move(name), std::move(help), std::move(label_names), {});
}

Family<Histogram>* Registry::AddHistogram(std::string name, std::string help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bucket_bounds) {
  return Add<Histogram>(std::move(name), std::move(help), std::move(label_names),
                        NormalizeBounds(std::move(bucket_bounds)));
}

void Registry::AddCollectHook(std::function<void()> hook) {
  MutexLock lock(&mu_);
  hooks_.push_back(std::move(hook));
}

std::string Registry::ExposeText() {
  MutexLock expose_lock(&expose_mu_);
  std::vector<std::function<void()>> hooks;
  {
    MutexLock lock(&mu_);
    hooks = hooks_;
  }
  for (const auto& hook : hooks) hook();

  // Families are never removed, so the pointers outlive the lock.
  std::vector<const FamilyBase*> families;
  {
    MutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& f : families_) families.push_back(f.get());
  }
  std::string out;
  for (const FamilyBase* f : families) f->AppendText(&out);
  return out;
}

// ---- Free functions ----

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  if (!(start > 0) || !(factor > 1) || count < 1) return bounds;
  bounds.reserve(count);
  for (int i = 0; i < count; ++i) {
    double raw = start * std::pow(factor, i);
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.12g", raw);
    bounds.push_back(std::strtod(buf, nullptr));
  }
  return bounds;
}

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,     0.25,   0.5,     1,      2.5,   5,      10,    25,   60};
}

int64_t ProcessResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long long size_pages = 0;
  long long resident_pages = 0;
  int n = std::fscanf(f, "%lld %lld", &size_pages, &resident_pages);
  std::fclose(f);
  long page = sysconf(_SC_PAGESIZE);
  if (n != 2 || page <= 0 || resident_pages < 0) return -1;
  return static_cast<int64_t>(resident_pages) * page;
}

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  constexpr double kExactIntegerLimit = 9007199254740992.0;  // 2^53
  if (v == std::trunc(v) && std::fabs(v) < kExactIntegerLimit) {
    return std::to_string(static_cast<int64_t>(v));  // also turns -0 into "0"
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "NaN";  // cannot happen: 64 bytes fit any double
  return std::string(buf, end);
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace inferd
