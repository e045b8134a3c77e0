// SseParser against the WHATWG EventSource parsing rules, including line
// ends cut between pieces (every split of the input gives the same events).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/client_sse.h"

namespace inferd::http {
namespace {

std::vector<SseEvent> ParseWhole(std::string_view text) {
  SseParser parser;
  std::vector<SseEvent> events;
  parser.Feed(text, &events);
  return events;
}

std::vector<SseEvent> ParseByteByByte(std::string_view text) {
  SseParser parser;
  std::vector<SseEvent> events;
  for (char c : text) parser.Feed(std::string_view(&c, 1), &events);
  return events;
}

std::string Describe(const std::vector<SseEvent>& events) {
  std::string out;
  for (const SseEvent& e : events) out += "[" + e.event + "|" + e.data + "|" + e.id + "]";
  return out;
}

// Every way of feeding `text` yields `expected`.
void ExpectEvents(std::string_view text, std::string_view expected) {
  EXPECT_EQ(Describe(ParseWhole(text)), expected) << text;
  EXPECT_EQ(Describe(ParseByteByByte(text)), expected) << text;
  for (size_t cut = 1; cut < text.size(); ++cut) {
    SseParser parser;
    std::vector<SseEvent> events;
    parser.Feed(text.substr(0, cut), &events);
    parser.Feed(text.substr(cut), &events);
    EXPECT_EQ(Describe(events), expected) << "cut at " << cut << ": " << text;
  }
}

TEST(SseParserTest, JoinsDataLines) {
  ExpectEvents("data: YHOO\ndata: +2\ndata: 10\n\n", "[message|YHOO\n+2\n10|]");
}

TEST(SseParserTest, CommentsIdsAndOneStrippedSpace) {
  ExpectEvents(
      ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
      "data:  third event\n\n",
      "[message|first event|1][message|second event|][message| third event|]");
}

TEST(SseParserTest, FieldWithoutColonAndEmptyData) {
  // "data" alone is an empty data line; an unterminated event is dropped.
  ExpectEvents("data\n\ndata\ndata\n\ndata:", "[message||][message|\n|]");
}

TEST(SseParserTest, AllLineEnds) {
  const std::string expected = "[add|1|][remove|2|a]";
  ExpectEvents("event: add\ndata: 1\n\nevent: remove\ndata: 2\nid: a\n\n", expected);
  ExpectEvents("event: add\r\ndata: 1\r\n\r\nevent: remove\r\ndata: 2\r\nid: a\r\n\r\n", expected);
  ExpectEvents("event: add\rdata: 1\r\revent: remove\rdata: 2\rid: a\r\r", expected);
  ExpectEvents("event: add\r\ndata: 1\r\revent: remove\ndata: 2\rid: a\n\r\n", expected);
}

TEST(SseParserTest, EventWithoutDataIsNotDispatchedAndResetsItsType) {
  ExpectEvents("event: ping\n\ndata: x\n\n", "[message|x|]");
}

TEST(SseParserTest, LastEventIdPersistsAndNulIsIgnored) {
  using namespace std::string_literals;
  ExpectEvents("id: 5\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\n"s,
               "[message|a|5][message|b|5][message|c|5]");
}

TEST(SseParserTest, LeadingBomIsDropped) {
  ExpectEvents(
      "\xEF\xBB\xBF"
      "data: x\n\n",
      "[message|x|]");
  // Only at the start of the stream.
  EXPECT_EQ(Describe(ParseWhole("data: a\n\n\xEF\xBB\xBF"
                                "data: b\n\n")),
            "[message|a|]");
}

TEST(SseParserTest, UnknownFieldsAreIgnored) {
  ExpectEvents("foo: bar\ndata: x\nDATA: y\n\n", "[message|x|]");
}

TEST(SseParserTest, Retry) {
  SseParser parser;
  std::vector<SseEvent> events;
  parser.Feed("retry: 1500\n", &events);
  EXPECT_EQ(parser.retry_ms(), 1500u);
  parser.Feed("retry: 15x\nretry:\nretry: -1\n", &events);
  EXPECT_EQ(parser.retry_ms(), 1500u);
  EXPECT_TRUE(events.empty());
}

}  // namespace
}  // namespace inferd::http
