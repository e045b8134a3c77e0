// DiskCache's invalidations when RocksDB's file I/O fails: the faults are
// injected below RocksDB (a FileSystem wrapper given through
// DiskCache::Options::env), so EraseModel and Clear see RocksDB's own
// errors, return them, and ResponseCache passes them on naming the tier.

#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "cache/cache_test_util.h"
#include "cache/disk_cache.h"
#include "cache/lower_tiers.h"
#include "cache/response_cache.h"
#include "common/clock.h"

namespace inferd {
namespace {

using cache_test::Holds;
using cache_test::Key;
using rocksdb::FileOptions;
using rocksdb::FSWritableFile;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// The default file system, except that writes (new files, appends, syncs)
// and deletions (but those of the info logs) fail while told to.
class FaultyFs final : public rocksdb::FileSystemWrapper {
 public:
  FaultyFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  static const char* kClassName() { return "FaultyFs"; }
  const char* Name() const override { return kClassName(); }

  void FailWrites(bool on) { fail_writes_.store(on); }
  void FailDeletes(bool on) { fail_deletes_.store(on); }
  bool failing_writes() const { return fail_writes_.load(); }
  static IOStatus Injected() { return IOStatus::IOError("injected fault"); }

  IOStatus NewWritableFile(const std::string& f, const FileOptions& o,
                           std::unique_ptr<FSWritableFile>* r, IODebugContext* d) override {
    if (failing_writes()) return Injected();
    IOStatus s = target()->NewWritableFile(f, o, r, d);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }
  IOStatus ReopenWritableFile(const std::string& f, const FileOptions& o,
                              std::unique_ptr<FSWritableFile>* r, IODebugContext* d) override {
    if (failing_writes()) return Injected();
    IOStatus s = target()->ReopenWritableFile(f, o, r, d);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }
  IOStatus DeleteFile(const std::string& f, const IOOptions& o, IODebugContext* d) override {
    // RocksDB's own info logs excepted: opening a database rotates them.
    if (fail_deletes_.load() && f.find("/LOG") == std::string::npos) return Injected();
    return target()->DeleteFile(f, o, d);
  }

 private:
  class File final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<FSWritableFile> f, const FaultyFs* fs)
        : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs) {}
    IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* d) override {
      return fs_->failing_writes() ? Injected() : target()->Append(data, o, d);
    }
    IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& v,
                    IODebugContext* d) override {
      return fs_->failing_writes() ? Injected() : target()->Append(data, o, v, d);
    }
    IOStatus PositionedAppend(const Slice& data, uint64_t off, const IOOptions& o,
                              IODebugContext* d) override {
      return fs_->failing_writes() ? Injected() : target()->PositionedAppend(data, off, o, d);
    }
    IOStatus PositionedAppend(const Slice& data, uint64_t off, const IOOptions& o,
                              const rocksdb::DataVerificationInfo& v, IODebugContext* d) override {
      return fs_->failing_writes() ? Injected() : target()->PositionedAppend(data, off, o, v, d);
    }
    IOStatus Flush(const IOOptions& o, IODebugContext* d) override {
      return fs_->failing_writes() ? Injected() : target()->Flush(o, d);
    }
    IOStatus Sync(const IOOptions& o, IODebugContext* d) override {
      return fs_->failing_writes() ? Injected() : target()->Sync(o, d);
    }
    IOStatus Fsync(const IOOptions& o, IODebugContext* d) override {
      return fs_->failing_writes() ? Injected() : target()->Fsync(o, d);
    }

   private:
    const FaultyFs* const fs_;
  };

  std::atomic<bool> fail_writes_{false}, fail_deletes_{false};
};

std::shared_ptr<const CacheEntry> Entry(const CacheKey& k, Clock* clock) {
  auto e = std::make_shared<CacheEntry>();
  e->check = k.check;
  e->model = k.model;
  e->created_us = clock->WallMicros();
  e->expires_us = clock->WallMicros() + int64_t{3600} * 1'000'000;
  e->payload = "payload of " + k.check;
  return e;
}

class DiskCacheFaultTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

  std::unique_ptr<DiskCache> Make() {
    DiskCache::Options o;
    o.path = (std::filesystem::path(dir_.path()) / "db").string();
    o.clock = &clock_;
    o.env = env_.get();
    auto c = DiskCache::Create(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  // Entries 0..n-1 of `model`, written.
  void Fill(DiskCache* cache, const std::string& model, int n) {
    for (int i = 0; i < n; ++i) cache->Put(Key(i, model), Entry(Key(i, model), &clock_));
    cache->Flush();
  }

  FakeClock clock_;
  cache_test::TempDir dir_{"disk_cache_fault_test"};
  std::shared_ptr<FaultyFs> fs_ = std::make_shared<FaultyFs>();
  std::unique_ptr<rocksdb::Env> env_ = rocksdb::NewCompositeEnv(fs_);
};

TEST_F(DiskCacheFaultTest, EraseModelReturnsTheFailedDeletion) {
  auto cache = Make();
  ASSERT_TRUE(cache);
  Fill(cache.get(), "a", 3);
  const uint64_t errors = cache->GetStats().errors;

  fs_->FailWrites(true);  // the synced DeleteRange cannot reach the WAL
  StatusOr<size_t> erased = cache->EraseModel("a");
  fs_->FailWrites(false);
  ASSERT_FALSE(erased.ok());
  EXPECT_EQ(erased.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(erased.status().message().find("erasing model 'a' failed"), std::string::npos)
      << erased.status().ToString();
  EXPECT_NE(erased.status().message().find("injected fault"), std::string::npos)
      << erased.status().ToString();
  EXPECT_EQ(cache->GetStats().errors, errors + 1);
  EXPECT_TRUE(cache->Get(Key(1, "a")).ok());  // not deleted, and said so

  // RocksDB now refuses writes until reopened; Clear reopens it.
  Status cleared = cache->Clear();
  ASSERT_TRUE(cleared.ok()) << cleared.ToString();
  EXPECT_FALSE(cache->Get(Key(1, "a")).ok());
  Fill(cache.get(), "a", 2);
  EXPECT_TRUE(Holds(cache->EraseModel("a"), 2u));
}

TEST_F(DiskCacheFaultTest, ClearFailsWhenTheNewDatabaseCannotBeOpened) {
  auto cache = Make();
  ASSERT_TRUE(cache);
  Fill(cache.get(), "a", 3);

  fs_->FailWrites(true);  // the new database's files cannot be written
  Status cleared = cache->Clear();
  fs_->FailWrites(false);
  EXPECT_EQ(cleared.code(), StatusCode::kUnavailable) << cleared.ToString();
  EXPECT_NE(cleared.message().find("injected fault"), std::string::npos) << cleared.ToString();
  EXPECT_NE(cleared.message().find("closed until a Clear reopens it"), std::string::npos)
      << cleared.ToString();

  // Closed: reads fail, erases say so, writes are lost (counted).
  EXPECT_EQ(cache->Get(Key(1, "a")).status().code(), StatusCode::kUnavailable);
  StatusOr<size_t> erased = cache->EraseModel("a");
  EXPECT_EQ(erased.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(erased.status().message().find("closed"), std::string::npos)
      << erased.status().ToString();

  // A later Clear opens it again, empty.
  cleared = cache->Clear();
  ASSERT_TRUE(cleared.ok()) << cleared.ToString();
  EXPECT_EQ(cache->Get(Key(1, "a")).status().code(), StatusCode::kNotFound);
  Fill(cache.get(), "a", 1);
  EXPECT_TRUE(cache->Get(Key(0, "a")).ok());
}

TEST_F(DiskCacheFaultTest, ClearDeletesTheEntriesWhenTheFilesCannotBeRemoved) {
  auto cache = Make();
  ASSERT_TRUE(cache);
  Fill(cache.get(), "a", 3);
  ASSERT_TRUE(cache->Compact().ok());  // in SST files, which stay

  fs_->FailDeletes(true);
  Status cleared = cache->Clear();
  fs_->FailDeletes(false);
  ASSERT_TRUE(cleared.ok()) << cleared.ToString();
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(cache->Get(Key(i, "a")).ok()) << i;
}

TEST_F(DiskCacheFaultTest, ResponseCacheNamesTheFailingDiskTier) {
  auto disk = Make();
  ASSERT_TRUE(disk);
  DiskCache* raw = disk.get();
  ResponseCache::Options o;
  o.memory.max_bytes = 1 << 20;
  o.memory.clock = &clock_;
  o.clock = &clock_;
  o.lower_tiers.push_back(MakeDiskTier(std::move(disk)));
  auto made = ResponseCache::Create(std::move(o));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::unique_ptr<ResponseCache> cache = std::move(made).value();
  const CacheKey k = Key(1, "a");
  cache->Store(k, Entry(k, &clock_));
  cache->Flush();

  fs_->FailWrites(true);
  Status st = cache->InvalidateModel("a");
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("the disk tier could not erase model 'a'"), std::string::npos)
      << st.ToString();
  EXPECT_NE(st.message().find("injected fault"), std::string::npos) << st.ToString();
  EXPECT_FALSE(cache->Probe(k));  // L1 was erased all the same
  EXPECT_TRUE(raw->Get(k).ok());

  st = cache->Clear();
  fs_->FailWrites(false);
  EXPECT_NE(st.message().find("the disk tier could not clear"), std::string::npos) << st.ToString();

  st = cache->Clear();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_FALSE(raw->Get(k).ok());
  st = cache->InvalidateModel("a");
  EXPECT_TRUE(st.ok()) << st.ToString();
}

}  // namespace
}  // namespace inferd
