#pragma once
// The vocabulary shared by every cache tier.
//
// CacheKey: a 128-bit digest (XXH3-128) of the canonical request indexes
// the caches; `check` holds what must match before a hit is served: the
// canonical request bytes themselves when they are small, else their
// SHA-256. A stored entry keeps its check, and every tier compares it on
// lookup, so neither a digest collision nor a crafted input can return
// another request's response.
//
// CacheEntry: one cached response (its output tensors, serialized), with
// its check, its model (for invalidation) and its wall-clock times. Entries
// are immutable and shared: tiers hand out shared_ptr<const CacheEntry>.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace inferd {

struct Digest128 {
  uint64_t hi = 0;
  uint64_t lo = 0;
  bool operator==(const Digest128&) const = default;
  std::string Hex() const;  // 32 lowercase hex digits
};

struct CacheKey {
  Digest128 digest;
  std::string check;  // 'C' + canonical bytes (small) or 'S' + SHA-256 (32 bytes)
  std::string model;  // model name, for per-model invalidation
};

struct CacheEntry {
  std::string check;  // CacheKey::check of the request that produced it
  std::string model;
  int64_t created_us = 0;  // wall clock, microseconds since the epoch
  int64_t expires_us = 0;  // wall clock; after it the entry is stale
  std::string payload;     // serialized response (server/response_codec.h)

  // Bytes this entry accounts for in a memory budget.
  size_t charge() const {
    return sizeof(CacheEntry) + check.size() + model.size() + payload.size();
  }

  // Self-describing byte form for the disk and Redis tiers, with a checksum
  // over everything; Deserialize fails (DataLoss-like InvalidArgument) on
  // any corruption.
  std::string Serialize() const;
  static StatusOr<std::shared_ptr<const CacheEntry>> Deserialize(std::string_view bytes);
};

}  // namespace inferd
