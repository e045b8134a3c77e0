// Fuzz target: Redis replies as inferd reads them: bytes through hiredis'
// reply reader, then what RedisCache does with each reply (a GET value is
// a zstd frame holding a cache entry; a SCAN reply is a cursor and keys).
// Invariants: a decoded value compresses and decodes back to the same
// entry; a SCAN reply is accepted only when every key is a string; no
// announced array is allocated beyond kRedisMaxReplyElements.
#include <hiredis/hiredis.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "cache/redis_support.h"
#include "fuzz_check.h"

namespace {

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
  redisReader* reader = redisReaderCreate();
  FUZZ_CHECK(reader != nullptr);
  inferd::BoundRedisReplies(reader);  // as RedisCache's connections do
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
