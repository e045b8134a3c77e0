#pragma once
// CacheKeyBuilder: the canonical form of everything that determines a
// response, hashed into a CacheKey. Callers add the parts in a canonical
// order (inputs in the model's declared order, requested outputs sorted and
// deduplicated); every part is
// tagged and length-prefixed, so different requests can never produce the
// same canonical bytes. The JSON and the binary encoding of one tensor give
// the same key, since only the decoded tensor (datatype, shape, bytes) is
// hashed.
//
// The digest is XXH3-128 over the canonical bytes. The check stored with an
// entry is the canonical bytes themselves while they are at most
// kMaxInlineCheck bytes, else 'S' + their SHA-256: XXH3 is fast but not
// collision-resistant, SHA-256 is.
//
// Not thread-safe; one builder per request.

#include <memory>
#include <string>
#include <string_view>

#include "cache/cache_entry.h"
#include "tensor/tensor.h"

namespace inferd {

class CacheKeyBuilder {
 public:
  static constexpr size_t kMaxInlineCheck = 512;

  // `ns` is the cache namespace (the tenant, once tenants exist);
  // `revision` what the version was loaded from (0: not part of the key).
  CacheKeyBuilder(std::string_view ns, std::string_view model, int64_t version,
                  uint64_t revision = 0);
  ~CacheKeyBuilder();
  CacheKeyBuilder(const CacheKeyBuilder&) = delete;
  CacheKeyBuilder& operator=(const CacheKeyBuilder&) = delete;

  void AddInput(std::string_view name, const Tensor& tensor);
  void AddOutput(std::string_view name);
  void AddParameter(std::string_view key, std::string_view value);
  CacheKey Finish();

 private:
  void Feed(std::string_view bytes);
  void FeedTagged(char tag, std::string_view bytes);

  struct Hashers;
  std::unique_ptr<Hashers> h_;
  std::string model_;
  std::string inline_;  // canonical bytes while small
  bool spilled_ = false;
};

// The key of a request in its encoded form, for an API's memo of exact
// repeats: the namespace, model, resolved version, the encoding (protocol
// and framing, e.g. "kserve-v2;json") and the request bytes as received.
// Its parts carry their own tags, so it never equals a canonical key. One
// pass, no allocation beyond the check: the check is the canonical bytes
// while they are at most `max_inline` long, else their SHA-256.
CacheKey EncodedRequestKey(std::string_view ns, std::string_view model, int64_t version,
                           std::string_view encoding, std::string_view bytes,
                           size_t max_inline = CacheKeyBuilder::kMaxInlineCheck,
                           uint64_t revision = 0);

}  // namespace inferd
