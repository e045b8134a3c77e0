// The bounded hiredis reply builders (BoundRedisReplies), without a server.
#include "cache/redis_support.h"

#include <hiredis/hiredis.h>

#include <string>

#include <gtest/gtest.h>

namespace inferd {
namespace {

struct Reader {
  Reader() : r(redisReaderCreate()) { BoundRedisReplies(r); }
  ~Reader() { redisReaderFree(r); }
  // The next reply, or nullptr; *ok is false on a reader error.
  redisReply* Next(const std::string& bytes, bool* ok) {
    redisReaderFeed(r, bytes.data(), bytes.size());
    void* reply = nullptr;
    *ok = redisReaderGetReply(r, &reply) == REDIS_OK;
    return static_cast<redisReply*>(reply);
  }
  redisReader* r;
};

TEST(BoundRedisRepliesTest, BuildsRepliesAsHiredisDoes) {
  Reader reader;
  bool ok = false;
  redisReply* reply = reader.Next("*3\r\n$3\r\nabc\r\n:42\r\n*1\r\n$-1\r\n", &ok);
  ASSERT_TRUE(ok);
  ASSERT_NE(reply, nullptr);
  ASSERT_EQ(reply->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(reply->elements, 3u);
  EXPECT_EQ(std::string(reply->element[0]->str, reply->element[0]->len), "abc");
  EXPECT_EQ(reply->element[1]->integer, 42);
  EXPECT_EQ(reply->element[2]->element[0]->type, REDIS_REPLY_NIL);
  freeReplyObject(reply);  // hiredis frees what the bounded builders made
  reply = reader.Next("-ERR no\r\n", &ok);
  ASSERT_TRUE(ok && reply);
  EXPECT_EQ(reply->type, REDIS_REPLY_ERROR);
  freeReplyObject(reply);
}

TEST(BoundRedisRepliesTest, RefusesHugeArraysBeforeAllocating) {
  Reader reader;
  bool ok = true;
  redisReply* reply = reader.Next("*" + std::to_string(kRedisMaxReplyElements + 1) + "\r\n", &ok);
  EXPECT_FALSE(ok);
  EXPECT_EQ(reply, nullptr);
  Reader again;
  reply = again.Next("*2147483647\r\n", &ok);
  EXPECT_FALSE(ok);
}

}  // namespace
}  // namespace inferd
