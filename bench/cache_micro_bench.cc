// Micro-benchmarks of the L1 MemoryCache (issue 3, item 8a): Get hit, Get
// miss and Put with small values (100-byte payload, 33-byte check as for a
// SHA-256 fingerprint), on 1 and 2 threads, with the real system clock.
//
// BM_GetHit arguments: `exclusive` selects the shard lock mode for Get
// (0 = shared, the default; 1 = Options::exclusive_reads) to show what
// shared locking buys; `keys` is the number of stored keys (1024 fit in the
// CPU caches, 65536 with their keys and entries do not); `zipf` 0 walks the
// keys uniformly, 1 draws them from Zipf(1.0). Times are wall time per
// operation per thread; items_per_second is the total over threads.
//
//   cache_micro_bench --benchmark_min_time=0.5

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <benchmark/benchmark.h>

#include "cache/memory_cache.h"

namespace inferd {
namespace {

constexpr size_t kMaxKeys = 1 << 16;
constexpr size_t kPayload = 100;

uint64_t Mix(uint64_t x) {  // splitmix64 finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

CacheKey MakeKey(uint64_t i) {
  CacheKey k;
  k.digest = {Mix(i), Mix(~i)};
  k.check = "S" + std::string(32, static_cast<char>('a' + i % 26));
  k.check += std::to_string(i);  // unique per key
  k.model = "resnet18";
  return k;
}

std::shared_ptr<const CacheEntry> MakeEntry(const CacheKey& k) {
  auto e = std::make_shared<CacheEntry>();
  e->check = k.check;
  e->model = k.model;
  e->expires_us = INT64_MAX;
  e->payload.assign(kPayload, 'p');
  return e;
}

// Keys, entries and a cache, built once per configuration and shared by the
// benchmark threads (built before any thread enters its timing loop).
struct Fixture {
  std::vector<CacheKey> keys;    // stored when `fill`
  std::vector<CacheKey> absent;  // never stored
  std::vector<std::shared_ptr<const CacheEntry>> entries;
  std::unique_ptr<MemoryCache> cache;
};

Fixture* GetFixture(bool exclusive, size_t keys, size_t max_bytes, bool fill) {
  static std::mutex mu;
  static std::map<std::tuple<bool, size_t, size_t, bool>, std::unique_ptr<Fixture>> fixtures;
  std::lock_guard<std::mutex> lock(mu);
  auto& f = fixtures[{exclusive, keys, max_bytes, fill}];
  if (f) return f.get();
  f = std::make_unique<Fixture>();
  for (uint64_t i = 0; i < keys; ++i) {
    f->keys.push_back(MakeKey(i));
    f->absent.push_back(MakeKey(i + keys));
    f->entries.push_back(MakeEntry(f->keys.back()));
  }
  MemoryCache::Options o;
  o.max_bytes = max_bytes;
  o.exclusive_reads = exclusive;
  f->cache = std::move(MemoryCache::Create(o)).value();
  if (fill) {
    for (size_t i = 0; i < keys; ++i) f->cache->Put(f->keys[i], f->entries[i]);
  }
  return f.get();
}

// A per-thread sequence of kMaxKeys indices into `keys` keys: a shuffled
// walk (uniform), or Zipf(1.0) draws with ranks scattered over the keys.
std::vector<uint32_t> Order(int thread, size_t keys, bool zipf) {
  std::vector<uint32_t> order(kMaxKeys);
  std::mt19937 rng(thread + 1);
  if (!zipf) {
    for (size_t i = 0; i < kMaxKeys; ++i) order[i] = static_cast<uint32_t>(i % keys);
    std::shuffle(order.begin(), order.end(), rng);
    return order;
  }
  std::vector<double> cdf(keys);
  double sum = 0;
  for (size_t r = 0; r < keys; ++r) cdf[r] = (sum += 1.0 / static_cast<double>(r + 1));
  std::uniform_real_distribution<double> u(0, sum);
  for (auto& o : order) {
    size_t rank = std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin();
    o = static_cast<uint32_t>(Mix(std::min(rank, keys - 1)) % keys);
  }
  return order;
}

// Args: exclusive (0/1), number of keys, zipf (0 = uniform walk, 1 = Zipf 1.0).
void BM_GetHit(benchmark::State& state) {
  const size_t keys = static_cast<size_t>(state.range(1));
  Fixture* f = GetFixture(state.range(0) != 0, keys, 256 << 20, true);
  std::vector<uint32_t> order = Order(state.thread_index(), keys, state.range(2) != 0);
  size_t i = 0;
  uint64_t misses = 0;
  for (auto _ : state) {
    auto hit = f->cache->Get(f->keys[order[i++ & (kMaxKeys - 1)]]);
    misses += hit ? 0 : 1;
    benchmark::DoNotOptimize(hit);
  }
  if (misses > 0) state.SkipWithError("unexpected misses");
  state.SetItemsProcessed(state.iterations());
}

// Every thread hits the same key: the worst case for sharing (one shard
// lock, one entry's reference count), the best for CPU caches.
void BM_GetHitSameKey(benchmark::State& state) {
  Fixture* f = GetFixture(state.range(0) != 0, 1024, 256 << 20, true);
  const CacheKey& key = f->keys[7];
  for (auto _ : state) {
    auto hit = f->cache->Get(key);
    benchmark::DoNotOptimize(hit);
  }
  state.SetItemsProcessed(state.iterations());
}

// Args: number of keys (the absent set is as large).
void BM_GetMiss(benchmark::State& state) {
  const size_t keys = static_cast<size_t>(state.range(0));
  Fixture* f = GetFixture(false, keys, 256 << 20, true);
  std::vector<uint32_t> order = Order(state.thread_index(), keys, false);
  size_t i = 0;
  for (auto _ : state) {
    auto hit = f->cache->Get(f->absent[order[i++ & (kMaxKeys - 1)]]);
    benchmark::DoNotOptimize(hit);
  }
  state.SetItemsProcessed(state.iterations());
}

// Puts 64K keys in a random walk into a 4 MiB cache (about 9K entries fit),
// so in the steady state nearly every Put also evicts.
void BM_Put(benchmark::State& state) {
  Fixture* f = GetFixture(false, kMaxKeys, 4 << 20, false);
  std::vector<uint32_t> order = Order(state.thread_index(), kMaxKeys, false);
  size_t i = 0;
  for (auto _ : state) {
    uint32_t k = order[i++ & (kMaxKeys - 1)];
    f->cache->Put(f->keys[k], f->entries[k]);
  }
  state.SetItemsProcessed(state.iterations());
}

// 90% Gets, 10% Puts (replacing the key's entry) over 65,536 keys drawn
// from Zipf(1.0): hits that are replayed into the policy by the next Put,
// and Puts that find buffered hits to replay, as in a server whose cache
// keeps changing.
void BM_Mixed(benchmark::State& state) {
  Fixture* f = GetFixture(false, kMaxKeys, 256 << 20, true);
  std::vector<uint32_t> order = Order(state.thread_index(), kMaxKeys, true);
  size_t i = 0;
  for (auto _ : state) {
    const uint32_t k = order[i & (kMaxKeys - 1)];
    if (i++ % 10 == 9) {
      f->cache->Put(f->keys[k], f->entries[k]);
    } else {
      auto hit = f->cache->Get(f->keys[k]);
      benchmark::DoNotOptimize(hit);
    }
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_GetHit)
    ->ArgNames({"exclusive", "keys", "zipf"})
    ->Args({0, 1024, 0})
    ->Args({1, 1024, 0})
    ->Args({0, kMaxKeys, 1})
    ->Args({1, kMaxKeys, 1})
    ->Args({0, kMaxKeys, 0})
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK(BM_GetHitSameKey)
    ->ArgName("exclusive")
    ->Arg(0)
    ->Arg(1)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK(BM_GetMiss)
    ->ArgName("keys")
    ->Arg(1024)
    ->Arg(kMaxKeys)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();
BENCHMARK(BM_Put)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Mixed)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace inferd

BENCHMARK_MAIN();
