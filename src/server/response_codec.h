#pragma once
// The payload of a cached response: the output tensors (name, datatype,
// shape, bytes) in one byte string. Decoding makes tensor views into the
// cache entry, which they keep alive, so a hit copies no tensor data.

#include <memory>
#include <string>
#include <vector>

#include "cache/cache_entry.h"
#include "server/infer_types.h"

namespace inferd {

std::string EncodeOutputs(const std::vector<NamedTensor>& outputs);
StatusOr<std::vector<NamedTensor>> DecodeOutputs(std::shared_ptr<const CacheEntry> entry);

}  // namespace inferd
