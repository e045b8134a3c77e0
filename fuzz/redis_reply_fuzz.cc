// Fuzz target: Redis replies as inferd reads them: bytes through hiredis'
// reply reader, then what RedisCache does with each reply (a GET value is
// a zstd frame holding a cache entry; a SCAN reply is a cursor and keys).
// Invariants: a decoded value compresses and decodes back to the same
// entry; a SCAN reply is accepted only when every key is a string.
#include <hiredis/hiredis.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "cache/redis_support.h"
#include "fuzz_check.h"

namespace {

// hiredis 0.14 allocates an array of the announced length as soon as it
// reads "*N" (up to 2^31 - 1 pointers, 16 GiB) before any element arrives;
// the fuzzer's allocation limit would report that as a crash. RedisCache
// talks only to the configured server; see docs/fuzzing.md.
bool AnnouncesHugeArray(std::string_view in) {
  for (size_t pos = in.find('*'); pos != std::string_view::npos; pos = in.find('*', pos + 1)) {
    size_t digits = 0;
    while (pos + 1 + digits < in.size() && in[pos + 1 + digits] >= '0' &&
           in[pos + 1 + digits] <= '9') {
      ++digits;
    }
    if (digits > 6) return true;  // a million elements or more
  }
  return false;
}

void CheckReply(const redisReply& r) {
  using namespace inferd;
  if (r.type == REDIS_REPLY_STRING) {
    auto entry = DecodeRedisValue(std::string_view(r.str, r.len));
    if (entry.ok()) {
      std::string again = ZstdCompress((*entry)->Serialize(), 1);
      FUZZ_CHECK(!again.empty());
      auto round = DecodeRedisValue(again);
      FUZZ_CHECK(round.ok());
      FUZZ_CHECK((*round)->Serialize() == (*entry)->Serialize());
    }
  }
  std::string cursor;
  const redisReply* keys = nullptr;
  if (ParseScanReply(r, &cursor, &keys)) {
    FUZZ_CHECK(keys != nullptr && keys->type == REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < keys->elements; ++i) {
      FUZZ_CHECK(keys->element[i]->type == REDIS_REPLY_STRING);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (AnnouncesHugeArray(in)) return 0;
  redisReader* reader = redisReaderCreate();
  FUZZ_CHECK(reader != nullptr);
  redisReaderFeed(reader, in.data(), in.size());
  for (int i = 0; i < 64; ++i) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader, &reply) != REDIS_OK || reply == nullptr) break;
    CheckReply(*static_cast<redisReply*>(reply));
    freeReplyObject(reply);
  }
  redisReaderFree(reader);
  return 0;
}
