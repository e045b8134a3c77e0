#include "cache/disk_cache.h"
#include "cache/cache_test_util.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/clock.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kSecond = 1'000'000;
constexpr size_t kMiB = size_t{1} << 20;

using cache_test::Holds;
using cache_test::Key;
using cache_test::Mix;

// (Built by append: GCC 12 warns falsely on "v" + std::to_string(i).)
std::string Value(int i) {
  std::string s = "v";
  s += std::to_string(i);
  return s;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class DiskCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    root_ = dir_.path();
    path_ = (fs::path(root_) / "db").string();
  }

  std::unique_ptr<DiskCache> Make(DiskCache::Options o = {}) {
    if (o.path.empty()) o.path = path_;
    o.clock = &clock_;
    auto c = DiskCache::Create(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  std::shared_ptr<const CacheEntry> Entry(const CacheKey& k, std::string payload,
                                          int64_t ttl_us = 3600 * kSecond) {
    auto e = std::make_shared<CacheEntry>();
    e->check = k.check;
    e->model = k.model;
    e->created_us = clock_.WallMicros();
    e->expires_us = clock_.WallMicros() + ttl_us;
    e->payload = std::move(payload);
    return e;
  }

  // Writes `value` under `key` through a raw RocksDB handle (the cache must
  // be closed).
  void RawPut(const CacheKey& key, const std::string& value) {
    rocksdb::Options o;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, path_, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), DiskCache::StorageKey(key), value).ok());
    ASSERT_TRUE(db->Close().ok());
  }

  // Puts entries 0..n-1 of `payload` random bytes; every `every` Puts waits
  // for the writer (staying within the write queue) and, if `compact`,
  // compacts, so FIFO deletes files at points that do not depend on timing.
  void PutRandom(DiskCache* cache, int n, size_t payload, int every, bool compact) {
    for (int i = 0; i < n; ++i) {
      cache->Put(Key(i), Entry(Key(i), RandomBytes(payload, i)));
      if (i % every != every - 1) continue;
      cache->Flush();
      if (compact) {
        ASSERT_TRUE(cache->Compact().ok());
      }
    }
    cache->Flush();
    ASSERT_TRUE(cache->Compact().ok());  // every completed deletion is counted now
  }

  FakeClock clock_;
  cache_test::TempDir dir_{"disk_cache_test"};
  std::string root_, path_;
};

TEST_F(DiskCacheTest, RejectsInvalidOptions) {
  DiskCache::Options o;
  EXPECT_EQ(DiskCache::Create(o).status().code(), StatusCode::kInvalidArgument);  // no path
  o.path = path_;
  o.max_bytes = 1000;
  EXPECT_EQ(DiskCache::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.max_bytes = 8 * kMiB;
  o.write_queue_size = 0;
  EXPECT_EQ(DiskCache::Create(o).status().code(), StatusCode::kInvalidArgument);
  o.write_queue_size = 1;
  o.zstd_level = 0;
  EXPECT_EQ(DiskCache::Create(o).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(DiskCacheTest, PutFlushGet) {
  auto cache = Make();
  CacheKey a = Key(1), b = Key(2);
  cache->Put(a, Entry(a, "response a"));
  cache->Flush();
  auto got = cache->Get(a);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ((*got)->payload, "response a");
  EXPECT_EQ((*got)->check, a.check);
  EXPECT_EQ((*got)->model, "m");
  EXPECT_EQ(cache->Get(b).status().code(), StatusCode::kNotFound);
  DiskCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.writes, 1u);
  EXPECT_EQ(st.errors, 0u);
  EXPECT_GT(st.approx_bytes, 0u);
}

TEST_F(DiskCacheTest, SurvivesRestart) {
  constexpr int kN = 100;
  {
    auto cache = Make();
    for (int i = 0; i < kN; ++i) cache->Put(Key(i), Entry(Key(i), Value(i)));
    // No Flush: the destructor drains the queue and persists the memtable.
  }
  auto cache = Make();
  for (int i = 0; i < kN; ++i) {
    auto got = cache->Get(Key(i));
    ASSERT_TRUE(got.ok()) << i << ": " << got.status().ToString();
    EXPECT_EQ((*got)->payload, Value(i));
  }
  EXPECT_EQ(cache->GetStats().hits, static_cast<uint64_t>(kN));
}

TEST_F(DiskCacheTest, CorruptValueIsMissCountedAndDeleted) {
  CacheKey good = Key(1), bad = Key(2);
  {
    auto cache = Make();
    cache->Put(good, Entry(good, "fine"));
    cache->Put(bad, Entry(bad, "will be overwritten"));
  }
  std::string garbage = Entry(bad, "x")->Serialize();
  garbage[garbage.size() / 2] ^= 0x5A;  // breaks CacheEntry's own checksum
  RawPut(bad, garbage);

  auto cache = Make();
  EXPECT_EQ(cache->Get(bad).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(cache->GetStats().errors, 1u);
  EXPECT_EQ(cache->Get(bad).status().code(), StatusCode::kNotFound);  // deleted: plain miss
  EXPECT_EQ(cache->GetStats().errors, 1u);
  EXPECT_TRUE(cache->Get(good).ok());
  EXPECT_EQ(cache->GetStats().misses, 2u);
}

TEST_F(DiskCacheTest, CorruptBlockFailsRocksDbChecksum) {
  CacheKey k = Key(7);
  {
    auto cache = Make();
    cache->Put(k, Entry(k, RandomBytes(64 * 1024, 7)));  // one large data block
  }
  std::vector<fs::path> ssts;
  for (const auto& f : fs::directory_iterator(path_)) {
    if (f.path().extension() == ".sst") ssts.push_back(f.path());
  }
  ASSERT_EQ(ssts.size(), 1u);
  {
    std::fstream f(ssts[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);  // inside the data block, far from the index and footer
    const char junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    f.write(junk, sizeof(junk));
  }
  auto cache = Make();
  EXPECT_EQ(cache->Get(k).status().code(), StatusCode::kNotFound);
  DiskCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.errors, 1u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.hits, 0u);
}

TEST_F(DiskCacheTest, CheckMismatchIsMiss) {
  auto cache = Make();
  CacheKey a = Key(1);
  cache->Put(a, Entry(a, "a"));
  cache->Flush();
  CacheKey same_digest = a;
  same_digest.check = "another request";
  EXPECT_EQ(cache->Get(same_digest).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(cache->Get(a).ok());  // the stored entry is untouched
  // A Put whose entry does not belong to the key is not stored.
  cache->Put(same_digest, Entry(a, "mismatched"));
  cache->Flush();
  EXPECT_EQ((*cache->Get(a))->payload, "a");
  DiskCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.errors, 0u);
  EXPECT_EQ(st.writes, 1u);
}

TEST_F(DiskCacheTest, TtlExpiry) {
  auto cache = Make();
  CacheKey a = Key(1), b = Key(2);
  cache->Put(a, Entry(a, "short", 10 * kSecond));
  cache->Put(b, Entry(b, "long", 100 * kSecond));
  cache->Flush();
  EXPECT_TRUE(cache->Get(a).ok());
  clock_.Advance(std::chrono::seconds(10));
  EXPECT_TRUE(cache->Get(a).ok());  // at expires_us: still fresh
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(cache->Get(a).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(cache->Get(b).ok());
  DiskCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.expired, 1u);
  EXPECT_EQ(st.evictions, 0u);  // expiry is not an eviction
  EXPECT_EQ(st.hits, 3u);
  EXPECT_EQ(st.misses, 1u);
  // An entry already expired when put is not written.
  CacheKey c = Key(3);
  cache->Put(c, Entry(c, "stale", -kSecond));
  cache->Flush();
  EXPECT_EQ(cache->GetStats().writes, 2u);
}

TEST_F(DiskCacheTest, UnwritableDirectoryFailsCreate) {
  std::string file = (fs::path(root_) / "a_file").string();
  std::ofstream(file) << "not a directory";
  DiskCache::Options o;
  o.path = file + "/cache";
  auto c = DiskCache::Create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(o.path), std::string::npos) << c.status().ToString();
  if (geteuid() != 0) {  // root ignores permission bits
    fs::path locked = fs::path(root_) / "locked";
    fs::create_directory(locked);
    fs::permissions(locked, fs::perms::none);
    o.path = (locked / "cache").string();
    c = DiskCache::Create(o);
    fs::permissions(locked, fs::perms::owner_all);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.status().message().find(o.path), std::string::npos) << c.status().ToString();
  }
}

TEST_F(DiskCacheTest, FullQueueDropsAndCounts) {
  DiskCache::Options o;
  o.write_queue_size = 4;
  auto cache = Make(o);
  cache->PauseWriterForTesting(true);
  for (int i = 0; i < 10; ++i) cache->Put(Key(i), Entry(Key(i), "v"));
  EXPECT_EQ(cache->GetStats().dropped_writes, 6u);
  cache->PauseWriterForTesting(false);
  cache->Flush();
  DiskCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.writes, 4u);
  EXPECT_EQ(st.writes + st.dropped_writes, 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(cache->Get(Key(i)).ok(), i < 4) << i;
}

TEST_F(DiskCacheTest, EraseModel) {
  auto cache = Make();
  for (int i = 0; i < 5; ++i) {
    for (const char* m : {"a", "ab", "b"}) cache->Put(Key(i, m), Entry(Key(i, m), m));
  }
  cache->Flush();
  // A write still queued is erased too.
  cache->PauseWriterForTesting(true);
  cache->Put(Key(9, "a"), Entry(Key(9, "a"), "queued"));
  EXPECT_TRUE(Holds(cache->EraseModel("a"), 6u));
  cache->PauseWriterForTesting(false);
  cache->Flush();
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(cache->Get(Key(i, "a")).ok());
    EXPECT_TRUE(cache->Get(Key(i, "ab")).ok());  // a prefix of the name is another model
    EXPECT_TRUE(cache->Get(Key(i, "b")).ok());
  }
  EXPECT_FALSE(cache->Get(Key(9, "a")).ok());
  EXPECT_TRUE(Holds(cache->EraseModel("nothing"), 0u));
  // Entries written after the erase are served.
  cache->Put(Key(1, "a"), Entry(Key(1, "a"), "new"));
  cache->Flush();
  EXPECT_EQ((*cache->Get(Key(1, "a")))->payload, "new");
}

TEST_F(DiskCacheTest, EraseModelSurvivesRestart) {
  {
    auto cache = Make();
    cache->Put(Key(1, "a"), Entry(Key(1, "a"), "a"));
    cache->Flush();
    ASSERT_TRUE(cache->Compact().ok());  // the entry is in an SST file
    EXPECT_TRUE(Holds(cache->EraseModel("a"), 1u));
  }
  auto cache = Make();
  EXPECT_FALSE(cache->Get(Key(1, "a")).ok());
}

TEST_F(DiskCacheTest, Clear) {
  auto cache = Make();
  for (int i = 0; i < 50; ++i) cache->Put(Key(i), Entry(Key(i), RandomBytes(1000, i)));
  cache->Flush();
  ASSERT_TRUE(cache->Compact().ok());
  EXPECT_GT(cache->GetStats().approx_bytes, 50'000u);
  ASSERT_TRUE(cache->Clear().ok());
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(cache->Get(Key(i)).ok());
  DiskCache::Stats st = cache->GetStats();
  EXPECT_LT(st.approx_bytes, 50'000u);  // the space is freed at once
  EXPECT_EQ(st.approx_entries, 0u);
  cache->Put(Key(1), Entry(Key(1), "after"));
  cache->Flush();
  EXPECT_TRUE(cache->Get(Key(1)).ok());
}

TEST_F(DiskCacheTest, SizeCapDropsOldestData) {
  constexpr size_t kMax = 4 * kMiB;
  constexpr size_t kPayload = 16 * 1024;         // random: zstd cannot shrink it
  constexpr int kEntries = 6 * kMax / kPayload;  // 24 MiB written
  DiskCache::Options o;
  o.max_bytes = kMax;
  auto cache = Make(o);
  // Compacting after every memtable's worth (256 KiB) makes the FIFO
  // deletions happen at the same points in every run, whatever the load:
  // left to RocksDB's background thread on a busy machine, a lagging
  // compaction could delete many files at once and leave under kMax / 2.
  PutRandom(cache.get(), kEntries, kPayload, /*every=*/16, /*compact=*/true);
  DiskCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.writes, static_cast<uint64_t>(kEntries));
  EXPECT_EQ(st.dropped_writes, 0u);
  // Documented bound once compaction has run: SSTs + memtables <= max_bytes.
  EXPECT_LE(st.approx_bytes, kMax);
  EXPECT_GE(st.approx_bytes, kMax / 2);             // FIFO drops old files, not everything
  EXPECT_TRUE(cache->Get(Key(kEntries - 1)).ok());  // newest kept
  EXPECT_FALSE(cache->Get(Key(0)).ok());            // oldest dropped
}

TEST_F(DiskCacheTest, SmallCapKeepsTheNewestLargeEntries) {
  // 64 queued entries of 16 KiB are 1 MiB, the whole cap: written as one
  // batch they would make one SST larger than the FIFO limit, which would
  // then delete it, newest entries included. Batches are cut by bytes.
  constexpr size_t kMax = kMiB;
  constexpr size_t kPayload = 16 * 1024;
  DiskCache::Options o;
  o.max_bytes = kMax;
  auto cache = Make(o);
  cache->PauseWriterForTesting(true);  // the queue fills before the writer looks
  for (int i = 0; i < 64; ++i) cache->Put(Key(i), Entry(Key(i), RandomBytes(kPayload, i)));
  cache->PauseWriterForTesting(false);
  cache->Flush();
  ASSERT_TRUE(cache->Compact().ok());
  DiskCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.writes, 64u);
  EXPECT_LE(st.approx_bytes, kMax);
  EXPECT_TRUE(cache->Get(Key(63)).ok());  // the newest survive
  EXPECT_GT(st.approx_entries, 0u);
}

TEST_F(DiskCacheTest, SizeCapEvictionsAreCounted) {
  constexpr size_t kMax = kMiB;  // the smallest cap: 64 KiB memtables
  // Random, so zstd cannot shrink it; small enough that one write batch (at
  // most 64 entries, one memtable, one SST) stays well under the cap.
  constexpr size_t kPayload = 4 * 1024;
  constexpr int kEntries = 4 * kMax / kPayload;  // 4 MiB written
  DiskCache::Options o;
  o.max_bytes = kMax;
  auto cache = Make(o);
  PutRandom(cache.get(), kEntries, kPayload, /*every=*/64, /*compact=*/true);
  DiskCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.writes, static_cast<uint64_t>(kEntries));
  EXPECT_GT(st.evictions, 0u);
  EXPECT_EQ(st.expired, 0u);  // a separate figure: entries found past their TTL
  // Bounded by what the cap holds; every entry written is either still
  // stored or evicted (no overwrites or deletions here).
  EXPECT_LE(st.approx_entries, kMax / kPayload);
  EXPECT_EQ(st.evictions + st.approx_entries, st.writes);
  EXPECT_FALSE(cache->Get(Key(0)).ok());  // oldest evicted
  EXPECT_TRUE(cache->Get(Key(kEntries - 1)).ok());
}

TEST_F(DiskCacheTest, ConcurrentGetsPutsAndErases) {
  DiskCache::Options o;
  o.write_queue_size = 64;
  auto cache = Make(o);
  constexpr int kOps = 2000;
  std::atomic<uint64_t> gets{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        CacheKey k = Key(static_cast<uint64_t>(i % 100), t == 0 ? "a" : "b");
        cache->Put(k, Entry(k, "v"));
      }
    });
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        auto got = cache->Get(Key(static_cast<uint64_t>(i % 100), t == 0 ? "a" : "b"));
        if (got.ok()) {
          EXPECT_EQ((*got)->payload, "v");
        }
        gets.fetch_add(1);
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(cache->EraseModel("a").ok());
  });
  for (auto& t : threads) t.join();
  cache->Flush();
  DiskCache::Stats st = cache->GetStats();
  EXPECT_EQ(st.hits + st.misses, gets.load());
  EXPECT_EQ(st.errors, 0u);
}

}  // namespace
}  // namespace inferd
