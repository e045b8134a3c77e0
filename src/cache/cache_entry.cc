#include "cache/cache_entry.h"

#include <xxhash.h>

#include <cstring>

namespace inferd {
namespace {

constexpr uint32_t kMagic = 0x31434E49;  // "INC1"

void PutU32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }
void PutI64(std::string* out, int64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }
void PutBytes(std::string* out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

// Reads fields from a byte string, failing (instead of overrunning) on a
// truncated input.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U32(uint32_t* v) { return Raw(v, 4); }
  bool I64(int64_t* v) { return Raw(v, 8); }
  bool Bytes(std::string* s) {
    uint32_t n;
    if (!U32(&n) || in_.size() - pos_ < n) return false;
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  bool Raw(void* v, size_t n) {
    if (in_.size() - pos_ < n) return false;
    std::memcpy(v, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace

std::string Digest128::Hex() const {
  static const char* kHex = "0123456789abcdef";
  std::string s(32, '0');
  for (int i = 0; i < 16; ++i) {
    s[static_cast<size_t>(15 - i)] = kHex[(hi >> (4 * i)) & 0xf];
    s[static_cast<size_t>(31 - i)] = kHex[(lo >> (4 * i)) & 0xf];
  }
  return s;
}

std::string CacheEntry::Serialize() const {
  std::string out;
  out.reserve(40 + check.size() + model.size() + payload.size());
  PutU32(&out, kMagic);
  PutI64(&out, created_us);
  PutI64(&out, expires_us);
  PutBytes(&out, model);
  PutBytes(&out, check);
  PutBytes(&out, payload);
  uint64_t sum = XXH3_64bits(out.data(), out.size());
  out.append(reinterpret_cast<const char*>(&sum), 8);
  return out;
}

StatusOr<std::shared_ptr<const CacheEntry>> CacheEntry::Deserialize(std::string_view bytes) {
  if (bytes.size() < 12) return InvalidArgumentError("cache entry is truncated");
  uint64_t sum;
  std::memcpy(&sum, bytes.data() + bytes.size() - 8, 8);
  std::string_view body = bytes.substr(0, bytes.size() - 8);
  if (XXH3_64bits(body.data(), body.size()) != sum) {
    return InvalidArgumentError("cache entry checksum mismatch");
  }
  auto e = std::make_shared<CacheEntry>();
  Reader r(body);
  uint32_t magic;
  if (!r.U32(&magic) || magic != kMagic) return InvalidArgumentError("not a cache entry");
  if (!r.I64(&e->created_us) || !r.I64(&e->expires_us) || !r.Bytes(&e->model) ||
      !r.Bytes(&e->check) || !r.Bytes(&e->payload) || !r.done()) {
    return InvalidArgumentError("cache entry is malformed");
  }
  return std::shared_ptr<const CacheEntry>(std::move(e));
}

}  // namespace inferd
