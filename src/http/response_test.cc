#include "http/response.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace inferd::http {
namespace {

using Field = Response::Field;
using Status = Response::Status;

std::string Header(const Response& res) {
  std::string out;
  res.SerializeHeader(&out);
  return out;
}

TEST(ResponseTest, SetReplacesEveryFieldOfTheNameCaseInsensitively) {
  Response res{Status::ok};
  res.insert("X-Tag", "a");
  res.insert("x-tag", "b");
  res.set(Field::content_type, "text/plain");
  EXPECT_EQ(res.count("X-TAG"), 2u);
  EXPECT_EQ(res["X-Tag"], "a");
  res.set("X-Tag", "c");
  EXPECT_EQ(res.count("x-tag"), 1u);
  EXPECT_EQ(res["x-tag"], "c");
  EXPECT_EQ(res[Field::content_type], "text/plain");
  EXPECT_EQ(res["Content-Typf"], "");  // same length, another name
  res.erase(Field::content_type);
  EXPECT_EQ(res.count(Field::content_type), 0u);
  EXPECT_EQ(res["X-Tag"], "c");
}

TEST(ResponseTest, NamesDifferingOnlyInNonLettersAreDifferent) {
  Response res;
  res.set("A@", "1");
  res.set("a`", "2");  // '@' | 0x20 == '`': must not fold
  EXPECT_EQ(res["A@"], "1");
  EXPECT_EQ(res["a`"], "2");
}

TEST(ResponseTest, SetMayTakeAValueOfItsOwnFields) {
  Response res;
  res.set("A", "first-value-long-enough-to-move");
  res.set("B", "2");
  res.set("B", res["A"]);
  res.set("A", res["A"]);
  EXPECT_EQ(res["B"], "first-value-long-enough-to-move");
  EXPECT_EQ(res["A"], "first-value-long-enough-to-move");
}

TEST(ResponseTest, InsertMayTakeAValueOfItsOwnFieldsWhileTheyGrow) {
  Response res;
  res.insert("X-A", std::string(100, 'a'));
  // Each insert copies X-A's value from the fields themselves; the fields
  // grow (and move) on the way.
  for (int i = 0; i < 20; ++i) res.insert("X-B", res["X-A"]);
  EXPECT_EQ(res.count("X-B"), 20u);
  EXPECT_EQ(res["X-B"], std::string(100, 'a'));
}

TEST(ResponseTest, CopiesAndMovesKeepTheFieldsPastTheFirstBlock) {
  Response res;
  for (int i = 0; i < 40; ++i)
    res.insert("X-" + std::to_string(i), std::string(20, static_cast<char>('a' + i % 26)));
  const std::string header = Header(res);
  Response copy = res;  // the fields span several blocks
  EXPECT_EQ(Header(copy), header);
  copy.erase("X-0");
  EXPECT_EQ(Header(res), header);  // the copy owns its bytes
  Response moved = std::move(res);
  EXPECT_EQ(Header(moved), header);
  moved = copy;
  EXPECT_EQ(Header(moved), Header(copy));
  EXPECT_EQ(moved.count("X-0"), 0u);
  EXPECT_EQ(moved["X-39"], std::string(20, static_cast<char>('a' + 39 % 26)));
  Response empty;
  moved = empty;
  EXPECT_EQ(Header(moved), Header(empty));
}

TEST(ResponseTest, ForEachFieldVisitsInOrder) {
  Response res;
  res.set("B", "2");
  res.set("A", "1");
  res.insert("B", "3");
  std::vector<std::pair<std::string, std::string>> seen;
  res.ForEachField([&](std::string_view n, std::string_view v) { seen.emplace_back(n, v); });
  std::vector<std::pair<std::string, std::string>> want = {{"B", "2"}, {"A", "1"}, {"B", "3"}};
  EXPECT_EQ(seen, want);
}

TEST(ResponseTest, LineBreaksInValuesCannotSplitTheHeader) {
  Response res{Status::ok};
  res.set("X-Request-Id", "abc\r\nSet-Cookie: x=1");
  res.set("X-Evil", std::string("v\0w", 3));
  const std::string h = Header(res);
  EXPECT_NE(h.find("X-Request-Id: abc  Set-Cookie: x=1\r\n"), std::string::npos) << h;
  EXPECT_NE(h.find("X-Evil: v w\r\n"), std::string::npos) << h;
  EXPECT_EQ(h.find("\r\nSet-Cookie"), std::string::npos) << h;
}

TEST(ResponseTest, ControlBytesAnywhereInLongAndShortValuesAreFound) {
  // Every length up to 40 and every position: the eight-byte test, its
  // overlapping tail and the byte loop for short values.
  for (size_t len = 1; len <= 40; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (char bad : {'\r', '\n', '\0'}) {
        std::string value(len, 'v');
        value[at] = bad;
        Response res;
        res.set("X-V", value);
        std::string want(len, 'v');
        want[at] = ' ';
        ASSERT_EQ(res["X-V"], want) << len << " " << at;
      }
    }
  }
  Response res;
  res.set("X-V", "a\tb\x01c\x7f\x80\xff-0123456789");  // other bytes stay as they are
  EXPECT_EQ(res["X-V"], "a\tb\x01c\x7f\x80\xff-0123456789");
}

TEST(ResponseTest, ServerIsKeptApartAndWrittenAfterTheFields) {
  Response res{Status::ok};
  res.set(Field::server, "first");
  res.insert("X-A", "1");
  res.set("server", "inferd");  // replaces, by either spelling
  EXPECT_EQ(res.count(Field::server), 1u);
  EXPECT_EQ(res["SERVER"], "inferd");
  EXPECT_EQ(Header(res),
            "HTTP/1.1 200 OK\r\nX-A: 1\r\nServer: inferd\r\nContent-Length: 0\r\n\r\n");
  std::vector<std::string> names;
  res.ForEachField([&](std::string_view n, std::string_view) { names.emplace_back(n); });
  EXPECT_EQ(names, std::vector<std::string>{"X-A"});
  res.insert(Field::server, "bad\r\nX-B: 2");
  EXPECT_EQ(res[Field::server], "bad  X-B: 2");
  res.erase("Server");
  EXPECT_EQ(res.count("Server"), 0u);
  EXPECT_EQ(res[Field::server], "");
  EXPECT_EQ(Header(res).find("Server"), std::string::npos);
}

TEST(ResponseTest, TheDefaultServerIsWrittenUnlessTheResponseNamesOne) {
  Response res{Status::ok};
  res.insert("X-A", "1");
  std::string out;
  res.SerializeHeader(&out, "inferd");
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nX-A: 1\r\nServer: inferd\r\nContent-Length: 0\r\n\r\n");
  res.set(Field::server, "proxy");
  out.clear();
  res.SerializeHeader(&out, "inferd");
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nX-A: 1\r\nServer: proxy\r\nContent-Length: 0\r\n\r\n");
}

TEST(ResponseTest, SerializesStatusFieldsLengthAndConnection) {
  Response res{Status::not_found};
  res.set(Field::content_type, "application/json");
  res.body() = "{}";
  EXPECT_EQ(Header(res),
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
            "Content-Length: 2\r\n\r\n");
  res.keep_alive(false);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(Header(res),
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
            "Content-Length: 2\r\nConnection: close\r\n\r\n");
  res.version(10);
  EXPECT_EQ(Header(res).rfind("Connection"), std::string::npos);
  res.keep_alive(true);
  EXPECT_NE(Header(res).find("HTTP/1.0 404 Not Found\r\n"), std::string::npos);
  EXPECT_NE(Header(res).find("Connection: keep-alive\r\n"), std::string::npos);
}

TEST(ResponseTest, KeepAliveDefaultsByVersion) {
  EXPECT_TRUE(Response(Status::ok, 11).keep_alive());
  EXPECT_FALSE(Response(Status::ok, 10).keep_alive());
  Response res{Status::ok};
  res.set(Field::connection, "close");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(res.count(Field::connection), 0u);  // owned by keep_alive(), written once
}

TEST(ResponseTest, PreparedLengthSurvivesClearingTheBodyForHead) {
  Response res{Status::ok};
  res.body() = "hello";
  res.prepare_payload();
  res.body().clear();
  EXPECT_NE(Header(res).find("Content-Length: 5\r\n"), std::string::npos);
}

TEST(ResponseTest, NoLengthForNoContentOrAfterErase) {
  Response none{Status::no_content};
  none.body() = "dropped";
  none.prepare_payload();
  EXPECT_TRUE(none.body().empty());
  EXPECT_EQ(Header(none).find("Content-Length"), std::string::npos);
  Response chunked{Status::ok};
  chunked.body() = "x";
  chunked.erase(Field::content_length);
  chunked.set(Field::transfer_encoding, "chunked");
  EXPECT_EQ(Header(chunked), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
}

}  // namespace
}  // namespace inferd::http
