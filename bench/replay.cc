#include "replay.h"

#include <array>
#include <cstring>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "cache/cache_entry.h"
#include "cache/memory_cache.h"

namespace inferd {
namespace {

// Replays `trace` through `policy`: on a miss, evict while the policy's
// charge plus the newcomer's size exceeds `capacity`, then insert (an
// object larger than the whole capacity is not admitted).
template <EvictionPolicy Policy>
Misses ReplayPolicy(const Trace& trace, uint64_t capacity, bool bytes, Policy& policy) {
  auto nodes = std::make_unique<EvictionNode[]>(trace.distinct());
  std::vector<uint8_t> resident(trace.distinct(), 0);
  Misses m;
  for (uint32_t key : trace.keys) {
    EvictionNode& n = nodes[key];
    if (resident[key]) {
      policy.OnHit(&n);
      continue;
    }
    const uint64_t size = trace.SizeOf(key, bytes);
    ++m.count;
    m.bytes += size;
    if (size > capacity) continue;
    while (policy.charge() + size > capacity) {
      EvictionNode* victim = policy.EvictOne();
      resident[victim->id] = 0;
    }
    n.id = key;
    n.charge = size;
    policy.Insert(&n);
    resident[key] = 1;
  }
  return m;
}

// A key's digest, and a check of 33 bytes ('S' + 32 bytes derived from the
// id, like a SHA-256 check) so that every key charges the same and checks
// differ per id. The memo key (`memo`) uses other digests, and a check as
// long as a real memo key's: the whole request body (kMemoCheckBytes, the
// size of the small KServe JSON request of bench/cache_e2e_bench.py), too
// long to be copied into MemoryCache's index record.
constexpr size_t kMemoCheckBytes = 160;

CacheKey MakeKey(uint64_t id, bool memo) {
  const uint64_t salt = memo ? 0xA5A5A5A5A5A5A5A5ull : 0;
  CacheKey key;
  key.digest.hi = Mix(id ^ salt);
  key.digest.lo = Mix(~id ^ salt);
  key.check.resize(memo ? kMemoCheckBytes : 33);
  key.check[0] = memo ? 'E' : 'S';
  for (uint64_t i = 0; 1 + 8 * (i + 1) <= key.check.size(); ++i) {
    const uint64_t word = Mix(key.digest.hi + i + 1);
    std::memcpy(key.check.data() + 1 + 8 * i, &word, sizeof(word));
  }
  key.model.push_back('m');  // (not = "m": GCC 12 -Wrestrict false positive)
  return key;
}

std::shared_ptr<const CacheEntry> MakeEntry(const CacheKey& key, size_t payload) {
  auto e = std::make_shared<CacheEntry>();
  e->check = key.check;
  e->model = key.model;
  e->expires_us = INT64_MAX;  // TTL off
  e->payload.assign(payload, 'x');
  return e;
}

// server/inference_server.h: InferenceServer::kSeenSlots.
constexpr size_t kSeenSlots = size_t{1} << 16;

}  // namespace

Misses ReplayLru(const Trace& trace, uint64_t capacity, bool bytes) {
  LruPolicy lru;
  return ReplayPolicy(trace, capacity, bytes, lru);
}

Misses ReplayS3Fifo(const Trace& trace, uint64_t capacity, bool bytes,
                    S3FifoPolicy::Options options) {
  options.capacity = capacity;
  S3FifoPolicy s3(options);
  return ReplayPolicy(trace, capacity, bytes, s3);
}

// Belady's MIN. Residents sit in a max-heap by next request index, with
// lazy deletion: a hit pushes the key again with its new next index, and a
// popped record is stale unless the key is resident with that very index
// (next indices of a key only grow, so an old record never matches again).
// On a miss that needs room, the furthest residents are taken while their
// next request is later than the newcomer's; if they free enough room they
// are evicted, else the newcomer bypasses the cache and they stay. In unit
// mode that is the textbook rule: bypass when the newcomer's next request
// is later than every resident's (or never), else evict the furthest. In
// bytes mode it is not size-aware (like libCacheSim's Belady, unlike its
// BeladySize). O(n log n); in bytes mode a miss looks at most
// (object size / smallest size) residents.
Misses ReplayOpt(const Trace& trace, uint64_t capacity, bool bytes) {
  std::vector<uint8_t> resident(trace.distinct(), 0);
  std::vector<uint32_t> current(trace.distinct(), kNever);  // next index of a resident
  std::priority_queue<uint64_t> heap;                       // next << 32 | key
  auto pack = [](uint32_t next, uint32_t key) { return (uint64_t{next} << 32) | key; };
  std::vector<uint64_t> taken;
  uint64_t used = 0;
  Misses m;
  for (size_t i = 0; i < trace.requests(); ++i) {
    const uint32_t key = trace.keys[i];
    const uint32_t next = trace.next[i];
    if (resident[key]) {
      current[key] = next;
      heap.push(pack(next, key));
      continue;
    }
    const uint64_t size = trace.SizeOf(key, bytes);
    ++m.count;
    m.bytes += size;
    if (size > capacity) continue;
    taken.clear();
    uint64_t freed = 0;
    bool bypass = false;
    while (used - freed + size > capacity) {
      const uint64_t top = heap.top();
      const uint32_t k = static_cast<uint32_t>(top);
      const uint32_t n = static_cast<uint32_t>(top >> 32);
      if (!resident[k] || current[k] != n) {  // stale
        heap.pop();
        continue;
      }
      if (n <= next) {  // the newcomer is needed no sooner: keep the residents
        bypass = true;
        break;
      }
      heap.pop();
      taken.push_back(top);
      freed += trace.SizeOf(k, bytes);
    }
    if (bypass) {
      for (uint64_t t : taken) heap.push(t);
      continue;
    }
    for (uint64_t t : taken) resident[static_cast<uint32_t>(t)] = 0;
    used = used - freed + size;
    resident[key] = 1;
    current[key] = next;
    heap.push(pack(next, key));
  }
  return m;
}

size_t UnitEntryCharge() {
  // Measured, not derived: what MemoryCache's budget holds after one Put
  // (its formula has changed before: entry->charge() + kEntryOverhead, later
  // plus a copy of the check). The formula is the fallback should the
  // probe be refused.
  static const size_t charge = [] {
    const CacheKey key = MakeKey(0, false);
    auto entry = MakeEntry(key, kUnitPayload);
    const size_t formula = MemoryCache::Charge(*entry);
    MemoryCache::Options options;
    options.max_bytes = 64 << 20;
    options.shards = 1;
    auto cache = MemoryCache::Create(options);
    if (!cache.ok()) return formula;
    (*cache)->Put(key, entry);
    const MemoryCache::Stats st = (*cache)->GetStats();
    return st.entries == 1 && st.bytes > 0 ? static_cast<size_t>(st.bytes) : formula;
  }();
  return charge;
}

StatusOr<Misses> ReplayInferd(const Trace& trace, const InferdSetup& setup) {
  MemoryCache::Options options;
  options.max_bytes = setup.bytes ? setup.capacity : setup.capacity * UnitEntryCharge();
  options.shards = setup.shards;
  options.clock = nullptr;
  options.seed = setup.seed;  // repeatable (the server draws a random seed)
  options.policy = setup.tuning;
  if (setup.copy_share >= 0) options.copy_share = setup.copy_share;
  INFERD_ASSIGN_OR_RETURN(std::unique_ptr<MemoryCache> cache, MemoryCache::Create(options));

  std::vector<CacheKey> keys(trace.distinct());
  std::vector<CacheKey> memo_keys(setup.memo ? trace.distinct() : 0);
  for (size_t k = 0; k < trace.distinct(); ++k) {
    keys[k] = MakeKey(trace.ids[k], false);
    if (setup.memo) memo_keys[k] = MakeKey(trace.ids[k], true);
  }
  std::vector<uint64_t> seen(setup.memo ? kSeenSlots : 0);  // the memo's doorkeeper

  Misses m;
  for (uint32_t k : trace.keys) {
    const size_t payload = setup.bytes ? trace.sizes[k] : kUnitPayload;
    // LookupEncoded: the memo probe comes first; its hit is the answer.
    if (setup.memo && cache->Probe(memo_keys[k]) != nullptr) continue;
    const bool hit = cache->Get(keys[k]).has_value();
    if (!hit) {
      ++m.count;
      m.bytes += setup.bytes ? trace.sizes[k] : 1;
      cache->Put(keys[k], MakeEntry(keys[k], payload));
    }
    if (!setup.memo) continue;
    // AdmitEncoded: record the sighting; memoize a hit seen before.
    uint64_t& slot = seen[memo_keys[k].digest.lo & (kSeenSlots - 1)];
    const uint64_t tag = memo_keys[k].digest.hi | 1;
    const bool seen_before = slot == tag;
    if (!seen_before) slot = tag;
    // StoreEncoded: the memo entry is a copy of the canonical one.
    if (hit && seen_before) {
      if (setup.memo_plain) {
        cache->Put(memo_keys[k], MakeEntry(memo_keys[k], payload));
      } else {
        cache->PutCopy(memo_keys[k], MakeEntry(memo_keys[k], payload), keys[k].digest);
      }
    }
  }

  // Our count must be MemoryCache's own: every request is one counted
  // lookup (a memo probe counts only when it hits).
  const MemoryCache::Stats st = cache->GetStats();
  if (st.misses != m.count || st.hits + st.misses != trace.requests() || st.collisions != 0) {
    return InternalError("MemoryCache stats disagree with the replay: hits " +
                         std::to_string(st.hits) + ", misses " + std::to_string(st.misses) +
                         ", collisions " + std::to_string(st.collisions) + "; counted misses " +
                         std::to_string(m.count));
  }
  return m;
}

}  // namespace inferd
