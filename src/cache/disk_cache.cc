#include "cache/disk_cache.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/table_properties.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

namespace inferd {
namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kMaxBatch = 64;               // entries per RocksDB write
constexpr size_t kBlockCacheBytes = 8 * kMiB;  // L1 holds the hot set

std::string PathContext(const std::string& path) { return "disk cache at '" + path + "'"; }

void AppendBigEndian(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

// The best compression this RocksDB build offers, zstd first.
rocksdb::CompressionType ChooseCompression() {
  std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
  auto has = [&](rocksdb::CompressionType t) {
    return std::find(supported.begin(), supported.end(), t) != supported.end();
  };
  for (auto t : {rocksdb::kZSTD, rocksdb::kLZ4Compression, rocksdb::kSnappyCompression}) {
    if (has(t)) return t;
  }
  return rocksdb::kNoCompression;
}

const char* CompressionName(rocksdb::CompressionType t) {
  switch (t) {
    case rocksdb::kZSTD:
      return "zstd";
    case rocksdb::kLZ4Compression:
      return "lz4";
    case rocksdb::kSnappyCompression:
      return "snappy";
    default:
      return "none";
  }
}

std::unique_ptr<rocksdb::Options> MakeDbOptions(const DiskCache::Options& o) {
  auto db = std::make_unique<rocksdb::Options>();
  db->create_if_missing = true;
  if (o.env != nullptr) db->env = o.env;
  // Size cap (see the header): FIFO compaction deletes the oldest SST files
  // once they exceed max_bytes minus the memtables. allow_compaction merges
  // small L0 files (never ones larger than a memtable).
  db->compaction_style = rocksdb::kCompactionStyleFIFO;
  db->write_buffer_size = std::clamp(o.max_bytes / 16, 64 * size_t{1024}, 64 * kMiB);
  db->max_write_buffer_number = 2;
  db->compaction_options_fifo.max_table_files_size =
      o.max_bytes - db->max_write_buffer_number * db->write_buffer_size;
  db->compaction_options_fifo.allow_compaction = true;
  // FIFO: files older than this are deleted; 0 = never. Needs
  // max_open_files = -1 (the default: every SST stays open).
  db->ttl = o.file_ttl_s;
  db->max_compaction_bytes = db->write_buffer_size;
  db->level0_file_num_compaction_trigger = 4;
  // With FIFO every file is in L0; never stall writes on the file count
  // (Flush and shutdown wait for the writer thread).
  db->level0_slowdown_writes_trigger = 1 << 20;
  db->level0_stop_writes_trigger = 1 << 20;
  db->max_background_jobs = 2;

  rocksdb::CompressionType compression = ChooseCompression();
  db->compression = compression;
  db->compression_per_level.clear();
  db->bottommost_compression = rocksdb::kDisableCompressionOption;  // same as `compression`
  if (compression == rocksdb::kZSTD) db->compression_opts.level = o.zstd_level;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(kBlockCacheBytes);
  table.checksum = rocksdb::kXXH3;  // verified on every read (ReadOptions below)
  if (o.bloom_bits_per_key > 0) {
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(o.bloom_bits_per_key));
    table.whole_key_filtering = true;
    // Filters and indexes stay in memory beside the block cache, not in it,
    // so that a burst of data blocks never evicts them.
    table.cache_index_and_filter_blocks = false;
  }
  db->table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  // Keep RocksDB's own files small: its LOG and MANIFEST count on disk too.
  db->info_log_level = rocksdb::WARN_LEVEL;
  db->keep_log_file_num = 2;
  db->max_log_file_size = kMiB;
  db->max_manifest_file_size = 4 * kMiB;
  return db;
}

rocksdb::ReadOptions VerifyingReadOptions() {
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  return ro;
}

// Live entries (puts) of a table file, from its properties.
uint64_t EntriesOf(const rocksdb::TablePropertiesCollection& props, const std::string& file) {
  auto it = props.find(file);
  if (it == props.end() || !it->second) return 0;
  const rocksdb::TableProperties& p = *it->second;
  return p.num_entries - std::min(p.num_deletions, p.num_entries);
}

}  // namespace

// FIFO compaction evicts by deleting whole SST files: a "compaction" with
// reason kFIFOMaxSize (size cap) or kFIFOTtl (file age) whose inputs are the
// deleted files and which has no outputs. RocksDB reports it to listeners
// with the inputs' table properties; the entries that disappeared are the
// inputs' minus the outputs'. Called on RocksDB's compaction threads before
// the compaction counts as done, so a Compact() that waited for it sees it.
class DiskCache::EvictionCounter final : public rocksdb::EventListener {
 public:
  void OnCompactionCompleted(rocksdb::DB* /*db*/, const rocksdb::CompactionJobInfo& ci) override {
    if (!ci.status.ok()) return;
    if (ci.compaction_reason != rocksdb::CompactionReason::kFIFOMaxSize &&
        ci.compaction_reason != rocksdb::CompactionReason::kFIFOTtl) {
      return;
    }
    uint64_t in = 0, out = 0;
    for (const std::string& f : ci.input_files) in += EntriesOf(ci.table_properties, f);
    for (const std::string& f : ci.output_files) out += EntriesOf(ci.table_properties, f);
    if (in > out) evicted_.fetch_add(in - out, std::memory_order_relaxed);
  }
  uint64_t evicted() const { return evicted_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> evicted_{0};
};

// Invalidations are acknowledged only once durable: the write-ahead log is
// synced before DeleteRange returns, so a power loss right after the
// answer cannot bring the erased entries back.
static rocksdb::WriteOptions SyncedWrite() {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return wo;
}

std::string DiskCache::StorageKey(const CacheKey& key) {
  std::string k;
  k.reserve(key.model.size() + 17);
  k.append(key.model);
  k.push_back('\0');
  AppendBigEndian(&k, key.digest.hi);
  AppendBigEndian(&k, key.digest.lo);
  return k;
}

Status DiskCache::OpenDb(const std::string& path, const rocksdb::Options& db_options,
                         std::unique_ptr<rocksdb::DB>* db) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, &raw);
  if (!s.ok()) {
    return UnavailableError(PathContext(path) + ": cannot open RocksDB: " + s.ToString());
  }
  db->reset(raw);
  return Status::OK();
}

// Opens the database; if RocksDB finds it damaged (a truncated or corrupt
// SST file, a bad CURRENT or MANIFEST), moves the directory aside to
// "<path>.damaged-<unix time>", logs what it did and starts empty, rather
// than run without the tier on every restart. Other failures (permissions,
// a lock held by another process) are returned as they are.
Status DiskCache::OpenOrRecover(const std::string& path, const rocksdb::Options& db_options,
                                std::unique_ptr<rocksdb::DB>* db, bool* recovered) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, &raw);
  if (s.ok()) {
    db->reset(raw);
    return Status::OK();
  }
  bool damaged = s.IsCorruption() ||
                 (s.IsIOError() && s.ToString().find("No such file") != std::string::npos) ||
                 s.IsNotFound();
  if (!damaged) {
    return UnavailableError(PathContext(path) + ": cannot open RocksDB: " + s.ToString());
  }
  std::string aside = path + ".damaged-" + std::to_string(std::time(nullptr));
  std::error_code ec;
  std::filesystem::rename(path, aside, ec);
  if (!ec) std::filesystem::create_directories(path, ec);
  if (ec) {
    return UnavailableError(PathContext(path) + ": the database is damaged (" + s.ToString() +
                            ") and could not be moved aside: " + ec.message());
  }
  INFERD_LOG_ERROR(
      "{}: the database is damaged ({}); moved it to '{}' and started an empty one. Delete "
      "that directory once inspected.",
      PathContext(path), s.ToString(), aside);
  *recovered = true;
  return OpenDb(path, db_options, db);
}

StatusOr<std::unique_ptr<DiskCache>> DiskCache::Create(const Options& options) {
  if (options.path.empty()) return InvalidArgumentError("disk cache: path is empty");
  if (options.max_bytes < kMiB) {
    return InvalidArgumentError(PathContext(options.path) + ": max_bytes must be >= 1 MiB");
  }
  if (options.write_queue_size < 1) {
    return InvalidArgumentError(PathContext(options.path) + ": write_queue_size must be >= 1");
  }
  if (options.zstd_level < 1 || options.zstd_level > 19) {
    return InvalidArgumentError(PathContext(options.path) + ": zstd_level must be in 1..19");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  if (ec) {
    return UnavailableError(PathContext(options.path) +
                            ": cannot create the directory: " + ec.message());
  }
  std::unique_ptr<rocksdb::Options> db_options = MakeDbOptions(options);
  auto evictions = std::make_shared<EvictionCounter>();
  db_options->listeners.push_back(evictions);
  if (db_options->compression != rocksdb::kZSTD) {
    INFERD_LOG_WARN("disk cache: this RocksDB has no zstd; using {}",
                    CompressionName(db_options->compression));
  }
  std::unique_ptr<rocksdb::DB> db;
  bool recovered = false;
  INFERD_RETURN_IF_ERROR(OpenOrRecover(options.path, *db_options, &db, &recovered));
  INFERD_LOG_INFO("disk cache at '{}': max {} MiB, {} compression", options.path,
                  options.max_bytes / kMiB, CompressionName(db_options->compression));
  Clock* clock = options.clock ? options.clock : Clock::System();
  std::unique_ptr<DiskCache> cache(
      new DiskCache(options, clock, std::move(db_options), std::move(db), std::move(evictions)));
  if (recovered) {
    cache->recoveries_ = 1;
    cache->errors_.fetch_add(1, std::memory_order_relaxed);
  }
  WriteBehindQueue::Options q;
  q.capacity = options.write_queue_size;
  q.max_batch = kMaxBatch;
  // One batch is one WriteBatch into one memtable: kept under half a
  // memtable, no flush makes an SST so large that FIFO deletion (which drops
  // whole files) would take the newest entries with it under a small cap.
  q.max_batch_bytes = cache->db_options_->write_buffer_size / 2;
  q.name = PathContext(options.path);
  DiskCache* raw = cache.get();
  INFERD_ASSIGN_OR_RETURN(
      cache->queue_, WriteBehindQueue::Create(q, [raw](const std::vector<PendingWrite>& batch) {
        raw->WriteBatchToDb(batch);
      }));
  return cache;
}

DiskCache::DiskCache(const Options& options, Clock* clock,
                     std::unique_ptr<rocksdb::Options> db_options, std::unique_ptr<rocksdb::DB> db,
                     std::shared_ptr<EvictionCounter> evictions)
    : options_(options),
      clock_(clock),
      db_options_(std::move(db_options)),
      evictions_(std::move(evictions)),
      db_(std::move(db)) {}

DiskCache::~DiskCache() {
  if (queue_) queue_->Shutdown();  // drains: the batch writer needs db_
  WriterLock lock(&db_mu_);
  if (!db_) return;
  // Puts skip the WAL: persist the memtables so a restart sees them.
  rocksdb::Status s = db_->Flush(rocksdb::FlushOptions());
  if (!s.ok()) INFERD_LOG_WARN("{}: flush at close: {}", PathContext(path()), s.ToString());
  s = db_->Close();
  if (!s.ok()) INFERD_LOG_WARN("{}: close: {}", PathContext(path()), s.ToString());
  db_.reset();
}

Status DiskCache::Miss(Status status, bool error) {
  misses_.fetch_add(1, std::memory_order_relaxed);
  if (error) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    int64_t suppressed = 0;
    if (error_log_.ShouldLog(&suppressed)) {
      INFERD_LOG_WARN("{}: {} ({} similar suppressed)", PathContext(path()), status.message(),
                      suppressed);
    }
  }
  return status;
}

StatusOr<std::shared_ptr<const CacheEntry>> DiskCache::Get(const CacheKey& key) {
  if (key.model.find('\0') != std::string::npos) return Miss(NotFoundError("not cached"));
  const std::string skey = StorageKey(key);
  ReaderLock lock(&db_mu_);
  if (!db_) return Miss(UnavailableError("database is closed"));
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(VerifyingReadOptions(), db_->DefaultColumnFamily(), skey, &value);
  if (s.IsNotFound()) return Miss(NotFoundError("not cached"));
  if (s.IsCorruption()) {
    DeleteKey(skey);
    return Miss(NotFoundError("corrupt entry dropped: " + s.ToString()), /*error=*/true);
  }
  if (!s.ok()) return Miss(UnavailableError("read failed: " + s.ToString()), /*error=*/true);

  auto entry = CacheEntry::Deserialize(std::string_view(value.data(), value.size()));
  value.Reset();
  if (!entry.ok()) {
    DeleteKey(skey);
    return Miss(NotFoundError("corrupt entry dropped: " + entry.status().message()),
                /*error=*/true);
  }
  if ((*entry)->check != key.check) return Miss(NotFoundError("digest collision"));
  if (clock_->WallMicros() > (*entry)->expires_us) {
    expired_.fetch_add(1, std::memory_order_relaxed);
    DeleteKey(skey);
    return Miss(NotFoundError("expired"));
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  return std::move(entry).value();
}

void DiskCache::DeleteKey(const std::string& storage_key) {
  rocksdb::Status s = db_->Delete(rocksdb::WriteOptions(), storage_key);
  if (!s.ok()) INFERD_LOG_WARN("{}: delete failed: {}", PathContext(path()), s.ToString());
}

void DiskCache::Put(const CacheKey& key, std::shared_ptr<const CacheEntry> entry) {
  if (!entry || entry->check != key.check || key.model.find('\0') != std::string::npos) return;
  if (clock_->WallMicros() > entry->expires_us) return;
  queue_->Push({key, std::move(entry)});  // counts its drops
}

void DiskCache::WriteBatchToDb(const std::vector<PendingWrite>& batch) {
  rocksdb::WriteBatch wb;
  for (const PendingWrite& w : batch) wb.Put(StorageKey(w.key), w.entry->Serialize());
  ReaderLock lock(&db_mu_);
  rocksdb::Status s = db_ ? rocksdb::Status::OK() : rocksdb::Status::Aborted("database is closed");
  if (db_) {
    // Through the write-ahead log, not synced: a process crash loses
    // nothing written, a power loss what the OS had not yet written out
    // (see header). The writer thread pays for it, not the request path.
    rocksdb::WriteOptions wo;
    wo.disableWAL = !options_.write_ahead_log;
    s = db_->Write(wo, &wb);
  }
  if (s.ok()) {
    writes_.fetch_add(batch.size(), std::memory_order_relaxed);
    return;
  }
  errors_.fetch_add(batch.size(), std::memory_order_relaxed);
  int64_t suppressed = 0;
  if (error_log_.ShouldLog(&suppressed)) {
    INFERD_LOG_WARN("{}: write of {} entries failed: {} ({} similar suppressed)",
                    PathContext(path()), batch.size(), s.ToString(), suppressed);
  }
}

StatusOr<size_t> DiskCache::EraseModel(std::string_view model) {
  // Such a model is never stored (see Put): nothing to delete.
  if (model.find('\0') != std::string_view::npos) return size_t{0};
  StatusOr<size_t> stored = size_t{0};
  size_t queued = queue_->DropIf([model](const PendingWrite& w) { return w.key.model == model; },
                                 [&] { stored = EraseStoredModel(model); });
  if (!stored.ok()) return stored.status();
  return queued + *stored;
}

Status DiskCache::DeleteFailed(const std::string& what, const std::string& why) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  std::string msg = PathContext(path()) + ": " + what + " failed: " + why;
  INFERD_LOG_WARN("{}", msg);
  return UnavailableError(std::move(msg));
}

StatusOr<size_t> DiskCache::EraseStoredModel(std::string_view model) {
  const std::string what = "erasing model '" + std::string(model) + "'";
  std::string begin(model), end(model);
  begin.push_back('\0');
  end.push_back('\1');  // keys of `model` are exactly [model\0, model\1)
  ReaderLock lock(&db_mu_);
  if (!db_) return DeleteFailed(what, "the database is closed (a Clear could not reopen it)");
  // The count is informative: a failed scan is logged, not an error of the
  // deletion.
  size_t erased = 0;
  rocksdb::ReadOptions ro = VerifyingReadOptions();
  ro.fill_cache = false;
  rocksdb::Slice upper(end);
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(begin); it->Valid(); it->Next()) ++erased;
  if (!it->status().ok()) {
    INFERD_LOG_WARN("{}: counting the entries of model '{}': {}", PathContext(path()), model,
                    it->status().ToString());
  }
  it.reset();
  rocksdb::Status s = db_->DeleteRange(SyncedWrite(), db_->DefaultColumnFamily(), begin, end);
  if (!s.ok()) return DeleteFailed(what, s.ToString());
  return erased;
}

Status DiskCache::DeleteAll() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->SeekToLast();
  if (!it->Valid()) {
    // Empty, unless the seek itself failed.
    if (!it->status().ok()) return DeleteFailed("finding the last key", it->status().ToString());
    return Status::OK();
  }
  std::string end = it->key().ToString() + '\0';  // just past the last key
  it.reset();
  rocksdb::Status s =
      db_->DeleteRange(SyncedWrite(), db_->DefaultColumnFamily(), rocksdb::Slice(), end);
  if (!s.ok()) return DeleteFailed("deleting every entry", s.ToString());
  return Status::OK();
}

Status DiskCache::Clear() {
  Status st;
  queue_->DropIf([](const PendingWrite&) { return true; }, [&] { st = RecreateDb(); });
  return st;
}

Status DiskCache::RecreateDb() {
  WriterLock lock(&db_mu_);
  // Destroying the database frees its space at once (a DeleteRange would
  // leave the files until FIFO compaction ages them out).
  if (db_) {
    // A failed close loses nothing that matters here: the files go next.
    rocksdb::Status s = db_->Close();
    if (!s.ok()) INFERD_LOG_WARN("{}: close: {}", PathContext(path()), s.ToString());
    db_.reset();
  }
  rocksdb::Status destroyed = rocksdb::DestroyDB(path(), *db_options_);
  Status opened = OpenDb(path(), *db_options_, &db_);
  if (!opened.ok()) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    std::string msg = opened.message() + "; the disk cache is closed until a Clear reopens it";
    if (!destroyed.ok())
      msg += " (and its files could not be deleted: " + destroyed.ToString() + ")";
    INFERD_LOG_ERROR("{}", msg);
    return UnavailableError(std::move(msg));
  }
  if (destroyed.ok()) return Status::OK();
  INFERD_LOG_WARN("{}: destroy failed ({}); deleting entries instead", PathContext(path()),
                  destroyed.ToString());
  return DeleteAll();
}

void DiskCache::Flush() { queue_->Flush(); }

Status DiskCache::Compact() {
  ReaderLock lock(&db_mu_);
  if (!db_) return UnavailableError(PathContext(path()) + ": database is closed");
  rocksdb::Status s = db_->Flush(rocksdb::FlushOptions());
  // An exclusive manual FIFO compaction first waits for the background
  // ones, then runs one picked job (a deletion when over the cap).
  rocksdb::CompactRangeOptions cro;
  cro.exclusive_manual_compaction = true;
  if (s.ok()) s = db_->CompactRange(cro, nullptr, nullptr);
  if (!s.ok()) return InternalError(PathContext(path()) + ": compaction: " + s.ToString());
  return Status::OK();
}

DiskCache::Stats DiskCache::GetStats() {
  Stats st;
  st.hits = hits_.load(std::memory_order_relaxed);
  st.misses = misses_.load(std::memory_order_relaxed);
  st.errors = errors_.load(std::memory_order_relaxed);
  st.recoveries = recoveries_;
  st.writes = writes_.load(std::memory_order_relaxed);
  st.dropped_writes = queue_->GetStats().dropped;
  st.expired = expired_.load(std::memory_order_relaxed);
  st.evictions = evictions_->evicted();
  ReaderLock lock(&db_mu_);
  if (!db_) return st;
  uint64_t sst = 0, mem = 0, keys = 0;
  db_->GetIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &sst);
  db_->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &mem);
  db_->GetIntProperty(rocksdb::DB::Properties::kEstimateNumKeys, &keys);
  st.approx_bytes = sst + mem;
  st.approx_entries = keys;
  return st;
}

void DiskCache::PauseWriterForTesting(bool paused) { queue_->PauseForTesting(paused); }

}  // namespace inferd
