#include "cache/response_cache.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <optional>

#include "common/logging.h"

namespace inferd {
namespace {

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

// Estimates quantile q from a histogram by interpolating inside its bucket.
double Quantile(const Histogram::Snapshot& s, double q) {
  if (s.count == 0) return 0;
  double rank = q * static_cast<double>(s.count);
  double lower = 0;
  uint64_t below = 0;
  for (size_t i = 0; i < s.bounds.size(); ++i) {
    uint64_t c = s.cumulative_counts[i];
    if (static_cast<double>(c) >= rank) {
      double in_bucket = static_cast<double>(c - below);
      double frac = in_bucket > 0 ? (rank - static_cast<double>(below)) / in_bucket : 0;
      return lower + frac * (s.bounds[i] - lower);
    }
    lower = s.bounds[i];
    below = c;
  }
  return s.bounds.empty() ? 0 : s.bounds.back();
}

std::vector<double> LookupBuckets() {
  return {1e-7, 2.5e-7, 5e-7,   1e-6, 2.5e-6, 5e-6,   1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4,
          5e-4, 1e-3,   2.5e-3, 5e-3, 1e-2,   2.5e-2, 5e-2, 0.1,    0.25, 0.5,  1};
}

// How a tier is called in error messages.
const char* TierTitle(CacheTier t) { return t == CacheTier::kRedis ? "Redis" : CacheTierName(t); }

int Index(CacheTier t) { return static_cast<int>(t); }

Status CheckTiers(const std::vector<std::unique_ptr<LowerTier>>& tiers) {
  bool seen[kCacheTierCount] = {};
  for (const auto& t : tiers) {
    if (!t) return InvalidArgumentError("a lower cache tier is null");
    CacheTier tier = t->tier();
    if (tier == CacheTier::kMemory || Index(tier) < 0 || Index(tier) >= kCacheTierCount) {
      return InvalidArgumentError("a lower cache tier must be disk or redis");
    }
    if (seen[Index(tier)]) {
      return InvalidArgumentError(std::string("two lower cache tiers are ") + CacheTierName(tier));
    }
    seen[Index(tier)] = true;
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<ResponseCache>> ResponseCache::Create(Options options) {
  if (options.lookup_threads < 1) return InvalidArgumentError("lookup_threads must be >= 1");
  INFERD_RETURN_IF_ERROR(CheckTiers(options.lower_tiers));
  auto memory = MemoryCache::Create(options.memory);
  if (!memory.ok()) return memory.status().WithContext("cache.memory");
  auto rc = std::unique_ptr<ResponseCache>(new ResponseCache(std::move(options)));
  rc->memory_ = std::move(memory).value();
  return rc;
}

ResponseCache::ResponseCache(Options options)
    : clock_(options.clock ? options.clock : Clock::System()),
      lower_(std::move(options.lower_tiers)),
      coalescer_(clock_),
      max_pending_(options.max_pending_lookups) {
  Registry* registry = options.registry;
  if (!registry) {
    own_registry_ = std::make_unique<Registry>();
    registry = own_registry_.get();
  }
  auto* latency =
      registry->AddHistogram("inferd_cache_lookup_duration_seconds",
                             "Cache lookup time per tier, in seconds", {"tier"}, LookupBuckets());
  auto* hits = registry->AddCounter("inferd_cache_hits_total", "Cache hits per tier", {"tier"});
  auto* misses =
      registry->AddCounter("inferd_cache_misses_total", "Cache misses per tier", {"tier"});
  auto* errors = registry->AddCounter(
      "inferd_cache_errors_total", "Cache tier errors (corrupt entries, I/O, timeouts)", {"tier"});
  auto* evictions =
      registry->AddCounter("inferd_cache_evictions_total", "Entries evicted per tier", {"tier"});
  auto* writes = registry->AddCounter("inferd_cache_writes_total",
                                      "Entries written per tier (L1: stored puts)", {"tier"});
  auto* dropped = registry->AddCounter(
      "inferd_cache_dropped_writes_total",
      "Writes not done per tier (L1: rejected; L2/L3: queue full or tier unavailable)", {"tier"});
  redis_circuit_open_ =
      registry
          ->AddGauge("inferd_cache_redis_circuit_open",
                     "1 while the Redis tier's circuit is open (tier skipped)", {})
          ->WithLabels({});
  auto* entries =
      registry->AddGauge("inferd_cache_entries", "Entries per tier (-1: unknown)", {"tier"});
  auto* bytes = registry->AddGauge("inferd_cache_bytes", "Bytes per tier (-1: unknown)", {"tier"});
  coalesced_ = registry
                   ->AddCounter("inferd_cache_coalesced_total",
                                "Requests answered by an identical request in flight", {})
                   ->WithLabels({});
  {
    MutexLock l(&metrics_mu_);
    for (int i = 0; i < kCacheTierCount; ++i) {
      std::string tier = SourceName(static_cast<Source>(i));
      lookup_latency_[i] = latency->WithLabels({tier});
      exported_[i] = {hits->WithLabels({tier}),    misses->WithLabels({tier}),
                      errors->WithLabels({tier}),  evictions->WithLabels({tier}),
                      writes->WithLabels({tier}),  dropped->WithLabels({tier}),
                      entries->WithLabels({tier}), bytes->WithLabels({tier})};
    }
  }
  registry->AddCollectHook([this] { RefreshMetrics(); });
  if (!lower_.empty()) {
    for (int i = 0; i < std::max(1, options.lookup_threads); ++i) {
      threads_.emplace_back([this] { LookupLoop(); });
    }
  }
}

ResponseCache::~ResponseCache() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  for (auto& t : threads_) t.join();
  // Lookups still queued are answered as misses; queued jobs run here.
  for (size_t i = pending_head_; i < pending_.size(); ++i) {
    if (pending_[i].job) {
      pending_[i].job();
    } else {
      pending_[i].done(std::nullopt);
    }
  }
}

void ResponseCache::Observe(Source s, Time start) {
  lookup_latency_[Index(s)]->Observe(Seconds(clock_->Now() - start));
}

// A memory lookup takes ~0.2 us, and timing it two precise clock reads
// (~70 ns on this VM): each thread times the first of its lookups that the
// histogram records, then one in 16 of them, so the histogram is a sample
// (the number of lookups: inferd_cache_hits_total + inferd_cache_misses_total).
namespace {
class MemoryTiming {
 public:
  explicit MemoryTiming(Clock* clock) : timed_(countdown_ == 0) {
    if (timed_) start_ = clock->Now();
  }
  // A lookup the histogram records: its time if it was timed.
  std::optional<Time> Recorded() {
    if (!timed_) {
      --countdown_;
      return std::nullopt;
    }
    countdown_ = kEvery - 1;
    return start_;
  }

 private:
  static constexpr uint32_t kEvery = 16;
  static thread_local uint32_t countdown_;  // recorded lookups before the next timed one
  const bool timed_;
  Time start_{};
};
thread_local uint32_t MemoryTiming::countdown_ = 0;
}  // namespace

void ResponseCache::Lookup(const CacheKey& key, LookupCallback done) {
  MemoryTiming timing(clock_);
  auto hit = memory_->Get(key);
  if (auto start = timing.Recorded()) Observe(Source::kMemory, *start);
  if (hit) {
    done(Hit{std::move(hit->entry), Source::kMemory, false});
    return;
  }
  if (lower_.empty()) {
    done(std::nullopt);
    return;
  }
  {
    MutexLock l(&mu_);
    if (!stopping_ && pending_.size() - pending_head_ < max_pending_) {
      pending_.push_back({key, std::move(done), nullptr});
      cv_.Signal();
      return;
    }
  }
  done(std::nullopt);  // overloaded or stopping: skip the lower tiers
}

std::shared_ptr<const CacheEntry> ResponseCache::Probe(const CacheKey& key) {
  MemoryTiming timing(clock_);
  auto entry = memory_->Probe(key);
  if (!entry) return entry;  // a probe's miss is not recorded
  if (auto start = timing.Recorded()) Observe(Source::kMemory, *start);
  return entry;
}

bool ResponseCache::ProbeVisit(const CacheKey& key, MemoryCache::Visit visit, void* arg) {
  MemoryTiming timing(clock_);
  bool hit = memory_->Probe(key, visit, arg);
  if (!hit) return false;  // a probe's miss is not recorded
  if (auto start = timing.Recorded()) Observe(Source::kMemory, *start);
  return hit;
}

void ResponseCache::StoreMemory(const CacheKey& key, std::shared_ptr<const CacheEntry> entry,
                                uint64_t generation, const Digest128* copy_of) {
  if (this->generation() != generation) return;
  if (copy_of != nullptr) {
    memory_->PutCopy(key, std::move(entry), *copy_of);
  } else {
    memory_->Put(key, std::move(entry));
  }
  // An invalidation that started meanwhile may have erased L1 before the Put.
  if (this->generation() != generation) memory_->Erase(key);
}

void ResponseCache::EraseMemory(const CacheKey& key) { memory_->Erase(key); }

std::optional<ResponseCache::Hit> ResponseCache::LookupStale(const CacheKey& key) {
  auto hit = memory_->Get(key, /*allow_stale=*/true);
  if (!hit) return std::nullopt;
  return Hit{std::move(hit->entry), Source::kMemory, hit->stale};
}

std::optional<ResponseCache::Hit> ResponseCache::LookupLower(const CacheKey& key) {
  for (size_t i = 0; i < lower_.size(); ++i) {
    LowerTier& tier = *lower_[i];
    Time start = clock_->Now();
    auto got = tier.Get(key);
    Observe(tier.tier(), start);
    if (!got.ok()) continue;  // a miss, or a failure the tier counted
    // Promote into every tier above this one.
    memory_->Put(key, *got);
    for (size_t above = 0; above < i; ++above) lower_[above]->Put(key, *got);
    return Hit{std::move(got).value(), tier.tier(), false};
  }
  return std::nullopt;
}

LowerTier* ResponseCache::FindTier(Source s) const {
  for (const auto& t : lower_) {
    if (t->tier() == s) return t.get();
  }
  return nullptr;
}

void ResponseCache::LookupLoop() {
  for (;;) {
    Pending p;
    {
      MutexLock l(&mu_);
      while (!stopping_ && pending_head_ == pending_.size()) cv_.Wait(&mu_);
      if (stopping_) return;
      p = std::move(pending_[pending_head_++]);
      if (pending_head_ == pending_.size()) {
        pending_.clear();
        pending_head_ = 0;
      }
    }
    if (p.job) {
      p.job();
    } else {
      p.done(LookupLower(p.key));
    }
  }
}

void ResponseCache::RunOnLookupThread(std::function<void()> job) {
  {
    MutexLock l(&mu_);
    if (!stopping_ && !threads_.empty()) {
      // Jobs (invalidations) are rare and never dropped: not bounded by
      // max_pending_.
      pending_.push_back({CacheKey{}, nullptr, std::move(job)});
      cv_.Signal();
      return;
    }
  }
  job();
}

void ResponseCache::InvalidateModelAsync(std::string model, std::function<void(Status)> done) {
  RunOnLookupThread(
      [this, model = std::move(model), done = std::move(done)] { done(InvalidateModel(model)); });
}

void ResponseCache::ClearAsync(std::function<void(Status)> done) {
  RunOnLookupThread([this, done = std::move(done)] { done(Clear()); });
}

void ResponseCache::Store(const CacheKey& key, std::shared_ptr<const CacheEntry> entry) {
  memory_->Put(key, entry);
  for (const auto& t : lower_) t->Put(key, entry);
}

Status ResponseCache::ForEachTier(std::string_view what,
                                  const std::function<Status(LowerTier&)>& op) {
  Status first;
  for (const auto& t : lower_) {
    Status st = op(*t);
    if (st.ok() || !first.ok()) continue;
    first = UnavailableError("the " + std::string(TierTitle(t->tier())) + " tier could not " +
                             std::string(what) + " (" + st.message() +
                             "): its entries may still be served; retry the request");
  }
  return first;
}

Status ResponseCache::InvalidateModel(std::string_view model) {
  generation_.fetch_add(1, std::memory_order_acq_rel);
  memory_->EraseModel(model);
  Status st = ForEachTier("erase model '" + std::string(model) + "'",
                          [model](LowerTier& t) { return t.EraseModel(model); });
  generation_.fetch_add(1, std::memory_order_acq_rel);
  return st;
}

Status ResponseCache::Clear() {
  generation_.fetch_add(1, std::memory_order_acq_rel);
  memory_->Clear();
  Status st = ForEachTier("clear", [](LowerTier& t) { return t.Clear(); });
  generation_.fetch_add(1, std::memory_order_acq_rel);
  return st;
}

void ResponseCache::Flush() {
  for (const auto& t : lower_) t->Flush();
}

LowerTier::Stats ResponseCache::MemoryStats() {
  MemoryCache::Stats m = memory_->GetStats();
  LowerTier::Stats s;
  s.hits = m.hits + m.stale_hits;
  s.misses = m.misses;
  s.errors = m.collisions;
  s.evictions = m.evictions;
  s.writes = m.inserts;
  s.dropped_writes = m.rejected;
  s.entries = static_cast<int64_t>(m.entries);
  s.bytes = static_cast<int64_t>(m.bytes);
  return s;
}

void ResponseCache::RefreshMetrics() {
  LowerTier::Stats tiers[kCacheTierCount];
  tiers[Index(Source::kMemory)] = MemoryStats();
  for (const auto& t : lower_) tiers[Index(t->tier())] = t->GetStats();
  MutexLock l(&metrics_mu_);
  for (int i = 0; i < kCacheTierCount; ++i) {
    Exported& e = exported_[i];
    const LowerTier::Stats& s = tiers[i];
    auto bump = [](Counter* c, uint64_t now, uint64_t* last) {
      if (now > *last) c->Increment(static_cast<double>(now - *last));
      *last = now;
    };
    bump(e.hits, s.hits, &e.last_hits);
    bump(e.misses, s.misses, &e.last_misses);
    bump(e.errors, s.errors, &e.last_errors);
    bump(e.evictions, s.evictions, &e.last_evictions);
    bump(e.writes, s.writes, &e.last_writes);
    bump(e.dropped, s.dropped_writes, &e.last_dropped);
    e.entries->Set(static_cast<double>(s.entries));
    e.bytes->Set(static_cast<double>(s.bytes));
  }
  redis_circuit_open_->Set(tiers[Index(Source::kRedis)].circuit_open > 0 ? 1 : 0);
  int64_t coalesced = coalescer_.coalesced_total();
  if (coalesced > last_coalesced_)
    coalesced_->Increment(static_cast<double>(coalesced - last_coalesced_));
  last_coalesced_ = coalesced;
}

std::string ResponseCache::StatsJson() {
  RefreshMetrics();
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("tiers");
  w.StartObject();
  auto tier = [&](Source src, bool enabled, const LowerTier::Stats& s) {
    w.Key(SourceName(src));
    w.StartObject();
    w.Key("enabled");
    w.Bool(enabled);
    w.Key("hits");
    w.Uint64(s.hits);
    w.Key("misses");
    w.Uint64(s.misses);
    w.Key("hit_ratio");
    w.Double(s.hits + s.misses
                 ? static_cast<double>(s.hits) / static_cast<double>(s.hits + s.misses)
                 : 0.0);
    w.Key("entries");
    w.Int64(s.entries);
    w.Key("bytes");
    w.Int64(s.bytes);
    w.Key("evictions");
    w.Uint64(s.evictions);
    w.Key("errors");
    w.Uint64(s.errors);
    w.Key("writes");
    w.Uint64(s.writes);
    w.Key("dropped_writes");
    w.Uint64(s.dropped_writes);
    if (s.circuit_open >= 0) {
      w.Key("circuit_open");
      w.Bool(s.circuit_open > 0);
    }
    auto snap = lookup_latency_[Index(src)]->Snap();
    w.Key("lookup_seconds");
    w.StartObject();
    for (auto [name, q] : {std::pair{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}}) {
      w.Key(name);
      w.Double(Quantile(snap, q));
    }
    w.EndObject();
    w.EndObject();
  };
  // Every tier is listed, in a fixed order, whether enabled or not.
  tier(Source::kMemory, true, MemoryStats());
  for (Source s : {Source::kDisk, Source::kRedis}) {
    LowerTier* t = FindTier(s);
    tier(s, t != nullptr, t ? t->GetStats() : LowerTier::Stats{});
  }
  w.EndObject();
  w.Key("coalesced");
  w.Int64(coalescer_.coalesced_total());
  w.Key("coalesce_waiting");
  w.Int64(coalescer_.waiting());
  w.EndObject();
  return sb.GetString();
}

}  // namespace inferd
