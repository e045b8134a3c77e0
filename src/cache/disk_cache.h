#pragma once
// DiskCache: the L2 response cache, on local disk through RocksDB.
//
// Purpose: keep far more responses than memory can, across restarts, at the
// cost of a blocking read (callers run Get off the request path) and an
// asynchronous write.
//
// Storage:
//   - One RocksDB database in Options::path. Key = model + '\0' + digest
//     (hi, lo; 16 bytes big-endian), so one model's entries are one key
//     range (EraseModel is a DeleteRange). Model names containing '\0' are
//     never stored. Value = CacheEntry::Serialize() (has its own checksum).
//   - Compression: zstd at Options::zstd_level for every level; if this
//     RocksDB lacks zstd, LZ4, then Snappy, then none (logged at Create).
//   - Lookups: each SST file has a bloom filter (Options::bloom_bits_per_key,
//     10: about 1% false positives), kept in memory with its index, so a Get
//     reads a data block of about one file instead of one per file; a
//     damaged file then hurts only the lookups of the keys it holds.
//   - Integrity: RocksDB block checksums are verified on every read, and the
//     value's own checksum by CacheEntry::Deserialize. A corrupt entry (either
//     check) is a miss, counted in `errors`, and deleted.
//   - Size cap: FIFO compaction (RocksDB deletes the oldest SST files once
//     they sum to more than a limit), chosen over a hand-made evictor since
//     a deletion is a metadata operation. Memtables are w = max_bytes / 16
//     (64 KiB..64 MiB), at most 2; the FIFO limit is max_bytes - 2w, so once
//     compaction has caught up, SSTs + memtables (approx_bytes) <=
//     max_bytes. allow_compaction merges small flushed files so the file
//     count stays near 16 (more, smaller files for very compressible data).
//     During a write burst the background deletion lags the flushes:
//     measured with incompressible 16 KiB entries written as fast as the
//     writer goes, approx_bytes peaked at 1.01x the cap for a 64 MiB cap
//     and 1.4x for a 4 MiB cap (tiny memtables flush every few ms).
//     RocksDB's LOG (<= 2 MiB) and MANIFEST (<= 4 MiB) are outside the cap.
//   - TTL: entries past expires_us (Options::clock->WallMicros()) are misses
//     and deleted when read (counted in `expired`); files older than
//     Options::file_ttl_s are dropped by FIFO compaction whatever they hold
//     (counted in `evictions`).
//   - Durability: Puts go through the RocksDB WAL without sync (written by
//     the background writer, off the request path): a process crash (kill
//     -9) loses only what was still in the write queue; a power loss may
//     also lose what the OS had not written out. The destructor flushes
//     memtables. Deletions by invalidation (EraseModel, and the DeleteRange
//     fallback of Clear) are synced writes, so once acknowledged an
//     invalidation survives a crash and a power loss.
//
// Writes: Put never blocks. It appends to a WriteBehindQueue
// (Options::write_queue_size) drained by one background writer thread in
// batches; when the queue is full, the write is dropped and counted.
// EraseModel and Clear also remove matching writes still in the queue, and
// are ordered against the writer (WriteBehindQueue::DropIf): no write queued
// before them survives them. They return what RocksDB said of the deletion
// (DeleteRange, or destroying and reopening the database): OK only when it
// is done and durable.
//
// Counting: every Get adds exactly one of `hits` or `misses`; `errors`
// (corrupt entries, I/O failures, failed batch writes) and `expired` are
// counted in addition. `evictions` counts the entries held by the SST files
// that FIFO compaction deleted (size cap or file TTL), read from the files'
// table properties (num_entries minus tombstones) when the compaction
// completes (a rocksdb::EventListener); an entry already overwritten or
// deleted in a newer file still counts. Counters are relaxed atomics.
//
// Threading: every method is safe from any thread. Clear briefly excludes
// Gets (it recreates the database to free its space at once). Lock order:
// the write queue's writer lock (held by batch writes, EraseModel, Clear)
// before db_mu_.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache_entry.h"
#include "cache/write_behind.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "common/status.h"

namespace rocksdb {
class DB;
class Env;
struct Options;
}  // namespace rocksdb

namespace inferd {

class DiskCache {
 public:
  struct Options {
    // Directory of the database (cache.disk.path); created if missing.
    std::string path;
    // Size cap, SST files + memtables (cache.disk.max_bytes); >= 1 MiB.
    size_t max_bytes = 1 << 30;
    // Puts waiting for the writer; beyond it writes are dropped; >= 1.
    size_t write_queue_size = 1024;
    // zstd level, 1..19 (higher: smaller, slower writes).
    int zstd_level = 3;
    // Files older than this are dropped by compaction; 0 disables. Keep it
    // above the longest entry TTL.
    uint64_t file_ttl_s = 7 * 24 * 3600;
    // Source of wall time for TTLs; nullptr means Clock::System().
    Clock* clock = nullptr;
    // Bits per key of each SST file's bloom filter; 0 disables the filters
    // (for benchmarks). With FIFO compaction every file spans the whole key
    // range, so without them a lookup reads a block of every file.
    int bloom_bits_per_key = 10;
    // Batches go through RocksDB's write-ahead log (not synced), so a
    // process crash keeps every written batch. false: the memtable only, as
    // before (for benchmarks: a crash then loses everything not yet flushed).
    bool write_ahead_log = true;
    // RocksDB's environment (files, threads); nullptr means the default.
    // For tests that inject I/O faults; must outlive the cache.
    rocksdb::Env* env = nullptr;
  };

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t errors = 0;          // corrupt entries, I/O errors, failed writes
    uint64_t writes = 0;          // entries written to RocksDB
    uint64_t dropped_writes = 0;  // Puts dropped because the queue was full
    uint64_t expired = 0;         // entries found past expires_us (also misses)
    uint64_t evictions = 0;       // entries in SST files deleted by the size cap or file TTL
    uint64_t approx_bytes = 0;    // SST files + memtables
    uint64_t approx_entries = 0;  // RocksDB's estimate (counts some deleted keys)
    uint64_t recoveries = 0;      // 1 when a damaged database was moved aside at open
  };

  // Fails with a Status naming the path and the reason when the directory
  // cannot be created or the database cannot be opened there.
  static StatusOr<std::unique_ptr<DiskCache>> Create(const Options& options);
  // Drains the write queue, joins the writer, flushes memtables, closes.
  ~DiskCache();
  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;

  // Blocking. NotFound on a miss (including corrupt, expired and
  // check-mismatched entries); Unavailable on an I/O error.
  StatusOr<std::shared_ptr<const CacheEntry>> Get(const CacheKey& key);
  // Never blocks: queues the write, or drops it when the queue is full.
  // Entries whose check differs from key.check, or already expired, are not
  // stored.
  void Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry);
  // Deletes every entry of `model` (stored or queued); returns how many
  // (the stored ones as counted just before the deletion). Blocking (a
  // synced write). Unavailable, with RocksDB's message, when the deletion
  // failed or the database is closed (a failed Clear); the entries may
  // then still be stored.
  StatusOr<size_t> EraseModel(std::string_view model);
  // Deletes everything and frees the disk space: destroys the database and
  // opens a new one (falling back to deleting every key if it cannot be
  // destroyed). Unavailable, with RocksDB's message, when that failed; if
  // the new database could not be opened, the tier stays closed (Gets
  // fail) until a later Clear manages to open it.
  Status Clear();
  // Waits until every Put queued before the call has been written (or
  // dropped by EraseModel/Clear). Must not be called while the writer is
  // paused.
  void Flush();
  // Flushes memtables and runs compaction now, so the size cap and file TTL
  // apply at once (tests, maintenance); when it returns, every compaction
  // that completed is counted in `evictions`. Does not wait for the queue.
  Status Compact();

  Stats GetStats();
  const std::string& path() const { return options_.path; }

  // The RocksDB key of `key` (model + '\0' + 16 digest bytes); for tests
  // and tools that open the database directly.
  static std::string StorageKey(const CacheKey& key);

  // Test hook: while paused the writer takes nothing from the queue, so a
  // test can fill it deterministically. The destructor still drains it.
  void PauseWriterForTesting(bool paused);

 private:
  // Counts the entries of SST files deleted by FIFO compaction (a RocksDB
  // EventListener, in disk_cache.cc).
  class EvictionCounter;

  DiskCache(const Options& options, Clock* clock, std::unique_ptr<rocksdb::Options> db_options,
            std::unique_ptr<rocksdb::DB> db, std::shared_ptr<EvictionCounter> evictions);
  static Status OpenOrRecover(const std::string& path, const rocksdb::Options& db_options,
                              std::unique_ptr<rocksdb::DB>* db, bool* recovered);
  static Status OpenDb(const std::string& path, const rocksdb::Options& db_options,
                       std::unique_ptr<rocksdb::DB>* db);
  // The write queue's batch writer (runs on its writer thread).
  void WriteBatchToDb(const std::vector<PendingWrite>& batch);
  // The stored part of EraseModel and Clear; run by the write queue's
  // DropIf, ordered against the batch writes. Failures are counted in
  // `errors` and logged here.
  StatusOr<size_t> EraseStoredModel(std::string_view model);
  Status RecreateDb();
  // Deletes `storage_key` (through the WAL); requires db_mu_ (shared) and
  // a non-null db_.
  void DeleteKey(const std::string& storage_key) REQUIRES_SHARED(db_mu_);
  // Deletes every stored key (synced); same requirements.
  Status DeleteAll() REQUIRES_SHARED(db_mu_);
  // Counts and logs a failed deletion (`what`: "erasing model 'm'",
  // `why`: RocksDB's message); returns it as Unavailable.
  Status DeleteFailed(const std::string& what, const std::string& why);
  // Counts a Get's miss (and an error if `error`); returns `status`.
  Status Miss(Status status, bool error = false);

  const Options options_;
  Clock* const clock_;
  const std::unique_ptr<rocksdb::Options> db_options_;  // its listeners: evictions_
  const std::shared_ptr<EvictionCounter> evictions_;

  // Shared by readers and writers of db_; exclusive only in Clear, which
  // replaces the database. db_ is null if reopening failed in Clear.
  SharedMutex db_mu_;
  std::unique_ptr<rocksdb::DB> db_ GUARDED_BY(db_mu_);

  RateLimitedLog error_log_;
  std::atomic<uint64_t> hits_{0}, misses_{0}, errors_{0}, writes_{0}, expired_{0};
  uint64_t recoveries_ = 0;  // set once in Create

  // Set by Create once the object is built (its batch writer uses `this`);
  // shut down first by the destructor.
  std::unique_ptr<WriteBehindQueue> queue_;
};

}  // namespace inferd
