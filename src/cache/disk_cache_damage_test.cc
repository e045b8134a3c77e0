// DiskCache with damaged files: a damaged database directory is moved aside
// and the tier starts empty (item 13); one damaged SST file fails only the
// lookups of its own keys, thanks to the bloom filters (item 14).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_reader.h>

#include "cache/cache_test_util.h"
#include "cache/disk_cache.h"
#include "common/clock.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
using cache_test::Key;

class DiskDamageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    root_ = dir_.path();
    path_ = (fs::path(root_) / "db").string();
  }

  std::unique_ptr<DiskCache> Make(int bloom_bits = 10) {
    DiskCache::Options o;
    o.path = path_;
    o.clock = &clock_;
    o.max_bytes = 64u << 20;  // 4 MiB memtables
    o.write_queue_size = 1 << 16;
    o.bloom_bits_per_key = bloom_bits;
    auto c = DiskCache::Create(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  // Writes keys [begin, end) with incompressible 2 KiB payloads, then makes
  // them one SST file of their own.
  void Fill(DiskCache* cache, uint64_t begin, uint64_t end) {
    std::mt19937_64 rng(begin);
    for (uint64_t i = begin; i < end; ++i) {
      CacheKey k = Key(i);
      auto e = std::make_shared<CacheEntry>();
      e->check = k.check;
      e->model = k.model;
      e->expires_us = clock_.WallMicros() + 3'600'000'000;
      e->payload.resize(2048);
      for (char& c : e->payload) c = static_cast<char>(rng());
      cache->Put(k, std::move(e));
    }
    cache->Flush();
    ASSERT_TRUE(cache->Compact().ok());
  }

  std::vector<fs::path> Files(const std::string& ext) const {
    std::vector<fs::path> out;
    for (const auto& f : fs::directory_iterator(path_)) {
      if (f.path().extension() == ext) out.push_back(f.path());
    }
    std::sort(out.begin(), out.end());  // RocksDB numbers files in order
    return out;
  }

  bool MovedAside() const {
    for (const auto& f : fs::directory_iterator(root_)) {
      if (f.path().filename().string().starts_with("db.damaged-")) return true;
    }
    return false;
  }

  void ExpectRecoveredAndWorking() {
    auto cache = Make();
    ASSERT_TRUE(cache);
    EXPECT_EQ(cache->GetStats().recoveries, 1u);
    EXPECT_TRUE(MovedAside());
    Fill(cache.get(), 9000, 9010);
    EXPECT_TRUE(cache->Get(Key(9005)).ok());
  }

  FakeClock clock_;
  cache_test::TempDir dir_{"disk_damage_test"};
  std::string root_, path_;
};

TEST_F(DiskDamageTest, BadCurrentFileIsMovedAside) {
  Fill(Make().get(), 0, 100);
  std::ofstream(fs::path(path_) / "CURRENT", std::ios::trunc) << "garbage\n";
  ExpectRecoveredAndWorking();
}

TEST_F(DiskDamageTest, ZeroedManifestIsMovedAside) {
  Fill(Make().get(), 0, 100);
  for (const auto& f : fs::directory_iterator(path_)) {
    if (f.path().filename().string().starts_with("MANIFEST-")) {
      std::ofstream(f.path(), std::ios::binary | std::ios::trunc) << std::string(4096, '\0');
    }
  }
  ExpectRecoveredAndWorking();
}

TEST_F(DiskDamageTest, TruncatedSstIsMovedAside) {
  Fill(Make().get(), 0, 500);
  auto ssts = Files(".sst");
  ASSERT_FALSE(ssts.empty());
  fs::resize_file(ssts.back(), fs::file_size(ssts.back()) / 2);
  ExpectRecoveredAndWorking();
}

TEST_F(DiskDamageTest, AHealthyDirectoryIsNotMovedAside) {
  Fill(Make().get(), 0, 100);
  auto cache = Make();
  EXPECT_EQ(cache->GetStats().recoveries, 0u);
  EXPECT_FALSE(MovedAside());
  EXPECT_TRUE(cache->Get(Key(42)).ok());
}

// RocksDB's key for `k` (DiskCache's layout: model, '\0', digest big-endian).
std::string StorageKey(const CacheKey& k) {
  std::string s = k.model;
  s.push_back('\0');
  for (uint64_t part : {k.digest.hi, k.digest.lo}) {
    for (int b = 7; b >= 0; --b) s.push_back(static_cast<char>((part >> (8 * b)) & 0xff));
  }
  return s;
}

TEST_F(DiskDamageTest, OneDamagedFileFailsOnlyItsOwnKeys) {
  constexpr uint64_t kKeys = 4000;
  {
    auto cache = Make();
    for (uint64_t batch = 0; batch < 4; ++batch)
      Fill(cache.get(), batch * 1000, batch * 1000 + 1000);
  }
  auto ssts = Files(".sst");
  ASSERT_GE(ssts.size(), 2u);
  // The keys of the newest file, read before it is damaged.
  std::set<std::string> damaged_keys;
  {
    rocksdb::Options options;
    rocksdb::SstFileReader reader(options);
    ASSERT_TRUE(reader.Open(ssts.back().string()).ok());
    std::unique_ptr<rocksdb::Iterator> it(reader.NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) damaged_keys.insert(it->key().ToString());
  }
  ASSERT_LT(damaged_keys.size(), kKeys);
  {
    // 32 bad bytes in the middle of the newest file (its data blocks).
    std::fstream f(ssts.back(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(ssts.back()) / 2));
    f.write(std::string(32, '\x5a').data(), 32);
  }
  auto cache = Make();
  // Every key held by another file still hits; the bloom filters keep its
  // lookup out of the damaged file.
  uint64_t elsewhere = 0, hits = 0;
  for (uint64_t i = 0; i < kKeys; ++i) {
    if (damaged_keys.count(StorageKey(Key(i)))) continue;
    ++elsewhere;
    hits += cache->Get(Key(i)).ok();
  }
  EXPECT_GT(elsewhere, 0u);
  EXPECT_EQ(hits, elsewhere);
}

}  // namespace
}  // namespace inferd
