// Micro-benchmark of the L2 DiskCache lookups (issue 7, item 14): Get of a
// stored key (hit) and of an absent key (miss) with and without the SST
// bloom filters, measured in the same run. The database is filled with
// incompressible 4 KiB entries to about 0.8 of a 128 MiB cap, which FIFO
// compaction keeps as about 14 files that each span the whole key range
// (the layout of a full disk tier); the files sit in the OS page cache and
// RocksDB's block cache, so this measures the CPU and block reads a lookup
// does, not the device.
//
//   build/bench/disk_cache_bench --benchmark_min_time=1

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cache/cache_test_util.h"
#include "cache/disk_cache.h"

namespace inferd {
namespace {

constexpr size_t kEntries = 25000;
constexpr size_t kPayload = 4096;

using cache_test::Mix;

CacheKey Key(uint64_t i) {
  CacheKey k;
  k.digest = {Mix(i), Mix(~i)};
  k.check = "S" + std::to_string(Mix(i * 7 + 1));
  k.model = "resnet18";
  return k;
}

struct Fixture {
  std::string dir;
  std::unique_ptr<DiskCache> cache;
  int files = 0;
};

Fixture fixtures[2];

// Closes the caches and deletes their directories; called from main, before
// static destruction (RocksDB's own statics may be gone by then).
void CleanUp() {
  for (Fixture& x : fixtures) {
    x.cache.reset();
    if (!x.dir.empty()) std::filesystem::remove_all(x.dir);
  }
}

Fixture& Get(int bloom_bits) {
  Fixture& f = fixtures[bloom_bits > 0 ? 1 : 0];
  if (f.cache) return f;
  char tmpl[] = "/tmp/inferd-disk-bench-XXXXXX";
  f.dir = mkdtemp(tmpl);
  DiskCache::Options o;
  o.path = f.dir;
  o.max_bytes = 128u << 20;
  o.bloom_bits_per_key = bloom_bits;
  o.write_queue_size = 1 << 16;
  f.cache = std::move(DiskCache::Create(o)).value();
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < kEntries; ++i) {
    CacheKey k = Key(i);
    auto e = std::make_shared<CacheEntry>();
    e->check = k.check;
    e->model = k.model;
    e->expires_us = INT64_MAX;
    e->payload.resize(kPayload);
    for (size_t j = 0; j + 8 <= kPayload; j += 8) {
      uint64_t r = rng();
      std::memcpy(e->payload.data() + j, &r, 8);
    }
    f.cache->Put(k, std::move(e));
    if (i % 1000 == 999) f.cache->Flush();
  }
  f.cache->Flush();
  (void)f.cache->Compact();
  for (const auto& entry : std::filesystem::directory_iterator(f.dir)) {
    if (entry.path().extension() == ".sst") ++f.files;
  }
  return f;
}

void BM_DiskGet(benchmark::State& state) {
  const int bloom = static_cast<int>(state.range(0));
  const bool hit = state.range(1) != 0;
  Fixture& f = Get(bloom);
  uint64_t i = 0, found = 0;
  for (auto _ : state) {
    // Hits: the newest 60% of the keys (older files may have been dropped
    // by the size cap); misses: keys never written.
    uint64_t n = hit ? kEntries - 1 - Mix(i++) % (kEntries * 6 / 10) : kEntries + i++;
    auto r = f.cache->Get(Key(n));
    found += r.ok();
    benchmark::DoNotOptimize(r);
  }
  state.counters["found"] =
      benchmark::Counter(static_cast<double>(found) / static_cast<double>(state.iterations()));
  state.counters["sst_files"] = f.files;
}
// The disk writer's throughput with and without the write-ahead log (item
// 12: what crash survival costs). Each iteration queues 1,000 incompressible
// 4 KiB entries and waits until the writer has written them; the request
// path only queues, so this cost is the writer thread's.
void BM_DiskWrite(benchmark::State& state) {
  const bool wal = state.range(0) != 0;
  char tmpl[] = "/tmp/inferd-disk-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  {
    DiskCache::Options o;
    o.path = dir;
    o.max_bytes = 256u << 20;
    o.write_queue_size = 1 << 16;
    o.write_ahead_log = wal;
    auto cache = std::move(DiskCache::Create(o)).value();
    std::mt19937_64 rng(7);
    std::vector<std::shared_ptr<CacheEntry>> entries;
    for (int i = 0; i < 1000; ++i) {
      auto e = std::make_shared<CacheEntry>();
      e->expires_us = INT64_MAX;
      e->payload.resize(kPayload);
      for (size_t j = 0; j + 8 <= kPayload; j += 8) {
        uint64_t r = rng();
        std::memcpy(e->payload.data() + j, &r, 8);
      }
      entries.push_back(std::move(e));
    }
    uint64_t n = 0;
    for (auto _ : state) {
      for (auto& e : entries) {
        CacheKey k = Key(n++);
        e->check = k.check;
        e->model = k.model;
        cache->Put(k, e);
      }
      cache->Flush();
    }
    state.SetItemsProcessed(static_cast<int64_t>(n));
    state.SetBytesProcessed(static_cast<int64_t>(n * kPayload));
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_DiskWrite)->ArgNames({"wal"})->Arg(0)->Arg(1)->UseRealTime();

BENCHMARK(BM_DiskGet)
    ->ArgNames({"bloom_bits", "hit"})
    ->Args({0, 1})
    ->Args({10, 1})
    ->Args({0, 0})
    ->Args({10, 0});

}  // namespace
}  // namespace inferd

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  inferd::CleanUp();
  return 0;
}
