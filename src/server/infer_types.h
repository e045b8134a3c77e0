#pragma once
// The protocol-neutral request and response of the inference pipeline. API
// adapters (KServe v2 today, OpenAI-compatible later) decode into these and
// encode from them; the server never sees HTTP or JSON.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cache/cache_entry.h"
#include "common/status.h"
#include "tensor/tensor.h"

namespace inferd {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

struct InferRequest {
  std::string model;
  std::string version;  // empty: the model's default (highest) version
  std::string id;       // echoed back
  std::vector<NamedTensor> inputs;
  std::vector<std::string> outputs;  // requested outputs; empty = all
  // Cache-Control of the request: no_cache skips the lookup (and refreshes
  // the entry), no_store keeps the response out of the cache.
  bool no_cache = false;
  bool no_store = false;
  // parameters.timeout: the deadline, counted from arrival; 0: the server's
  // default (InferenceServer::Options::default_timeout).
  int64_t timeout_us = 0;
  // parameters.priority: the level asked for (1 is the highest); 0: the
  // model's default. The X-Inferd-Priority header (RequestContext) wins.
  int priority = 0;
};

// Where a response came from (X-Inferd-Cache).
enum class CacheStatus { kNone, kMiss, kHitMemory, kHitDisk, kHitRedis, kCoalesced, kStale };
const char* CacheStatusName(CacheStatus s);  // "miss", "hit-memory", ...

struct InferResponse {
  std::string model;
  int64_t version = 0;
  std::string id;
  std::vector<NamedTensor> outputs;
  CacheStatus cache = CacheStatus::kNone;  // kNone: the model does not cache
  int64_t age_s = -1;                      // seconds since the cached response was made
  // The cache entry's wall-clock times (microseconds since the epoch) when
  // the response went through the cache; 0 otherwise.
  int64_t cache_created_us = 0;
  int64_t cache_expires_us = 0;
  // The digest of the canonical cache key, when the response went through
  // the cache: an encoded copy of it (the exact-repeat memo) is stored as
  // a copy of that entry (MemoryCache::PutCopy).
  Digest128 cache_digest;
};

// Called exactly once per request, from any thread.
using InferCallback = std::function<void(StatusOr<InferResponse>)>;

}  // namespace inferd
