#include "cache/cache_key.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include <charconv>
#include <cstring>

namespace inferd {

struct CacheKeyBuilder::Hashers {
  XXH3_state_t* xxh = XXH3_createState();
  EVP_MD_CTX* sha = nullptr;  // created when the canonical bytes outgrow the inline check
  ~Hashers() {
    XXH3_freeState(xxh);
    if (sha) EVP_MD_CTX_free(sha);
  }
};

CacheKeyBuilder::CacheKeyBuilder(std::string_view ns, std::string_view model, int64_t version,
                                 uint64_t revision)
    : h_(std::make_unique<Hashers>()), model_(model) {
  XXH3_128bits_reset(h_->xxh);
  FeedTagged('N', ns);
  FeedTagged('M', model);
  FeedTagged('V', std::to_string(version));
  if (revision != 0) FeedTagged('R', std::string_view(reinterpret_cast<const char*>(&revision), 8));
}

CacheKeyBuilder::~CacheKeyBuilder() = default;

void CacheKeyBuilder::Feed(std::string_view bytes) {
  XXH3_128bits_update(h_->xxh, bytes.data(), bytes.size());
  if (!spilled_ && inline_.size() + bytes.size() <= kMaxInlineCheck) {
    inline_.append(bytes);
    return;
  }
  if (!spilled_) {
    spilled_ = true;
    h_->sha = EVP_MD_CTX_new();
    EVP_DigestInit_ex(h_->sha, EVP_sha256(), nullptr);
    EVP_DigestUpdate(h_->sha, inline_.data(), inline_.size());
    inline_.clear();
  }
  EVP_DigestUpdate(h_->sha, bytes.data(), bytes.size());
}

void CacheKeyBuilder::FeedTagged(char tag, std::string_view bytes) {
  char head[9];
  head[0] = tag;
  uint64_t n = bytes.size();
  std::memcpy(head + 1, &n, 8);
  Feed(std::string_view(head, 9));
  Feed(bytes);
}

void CacheKeyBuilder::AddInput(std::string_view name, const Tensor& tensor) {
  FeedTagged('I', name);
  FeedTagged('T', DataTypeName(tensor.dtype()));
  std::string shape;
  for (int64_t d : tensor.shape()) shape.append(reinterpret_cast<const char*>(&d), 8);
  FeedTagged('S', shape);
  FeedTagged('D', tensor.bytes());
}

void CacheKeyBuilder::AddOutput(std::string_view name) { FeedTagged('O', name); }

void CacheKeyBuilder::AddParameter(std::string_view key, std::string_view value) {
  FeedTagged('P', key);
  FeedTagged('Q', value);
}

namespace {

// Writes `tag`, the length of `bytes` (8 bytes, host order) and `bytes` at
// `p`, in a buffer sized for them; returns the end.
char* PutTagged(char* p, char tag, std::string_view bytes) {
  *p = tag;
  const uint64_t n = bytes.size();
  std::memcpy(p + 1, &n, 8);
  if (n > 0) std::memcpy(p + 9, bytes.data(), n);
  return p + 9 + n;
}

std::string Sha256(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md), len);
}

}  // namespace

CacheKey EncodedRequestKey(std::string_view ns, std::string_view model, int64_t version,
                           std::string_view encoding, std::string_view bytes, size_t max_inline,
                           uint64_t revision) {
  char v[20];
  auto [end, ec] = std::to_chars(v, v + sizeof(v), version);
  std::string_view version_text(v, static_cast<size_t>(end - v));
  CacheKey key;
  std::string& c = key.check;  // 'C' + the canonical bytes
  const std::string_view rev(reinterpret_cast<const char*>(&revision), revision != 0 ? 8 : 0);
  const std::string_view parts[] = {ns, model, version_text, rev, encoding, bytes};
  const char tags[] = {'n', 'm', 'v', 'r', 'e', 'b'};
  size_t total = 1;
  for (size_t i = 0; i < 6; ++i) total += i == 3 && revision == 0 ? 0 : 9 + parts[i].size();
  // Sized once and written in place: this runs on every memo probe.
  c.resize(total);
  char* p = c.data();
  *p++ = 'C';
  for (size_t i = 0; i < 6; ++i) {
    if (i == 3 && revision == 0) continue;
    p = PutTagged(p, tags[i], parts[i]);
  }
  XXH128_hash_t d = XXH3_128bits(c.data() + 1, c.size() - 1);
  key.digest = {d.high64, d.low64};
  key.model = std::string(model);
  if (c.size() - 1 > max_inline) c = 'S' + Sha256(std::string_view(c).substr(1));
  return key;
}

CacheKey CacheKeyBuilder::Finish() {
  CacheKey key;
  XXH128_hash_t d = XXH3_128bits_digest(h_->xxh);
  key.digest = {d.high64, d.low64};
  key.model = model_;
  if (!spilled_) {
    key.check = 'C' + inline_;
  } else {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(h_->sha, md, &len);
    key.check = 'S' + std::string(reinterpret_cast<const char*>(md), len);
  }
  return key;
}

}  // namespace inferd
