#include "http/request.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "http/ascii.h"
#include "http/request_reader.h"

namespace inferd::http {
namespace {

using Field = Request::Field;
using Verb = Request::Verb;

// Reads `wire` (one whole request) the way the server does.
Request Read(const std::string& wire) {
  RequestReader reader{RequestReader::Options{}};
  EXPECT_EQ(reader.Feed(wire), wire.size());
  EXPECT_TRUE(reader.done());
  EXPECT_FALSE(reader.error().has_value());
  return reader.Release();
}

TEST(RequestTest, ReadsTheStartLineFieldsInOrderAndBody) {
  Request req = Read(
      "POST /v2/models/m/infer?x=1 HTTP/1.1\r\nHost: h\r\nX-Tag: a\r\nContent-Length: 4\r\n"
      "x-tag: b\r\n\r\nbody");
  EXPECT_EQ(req.method(), Verb::post);
  EXPECT_EQ(req.method_string(), "POST");
  EXPECT_EQ(req.target(), "/v2/models/m/infer?x=1");
  EXPECT_EQ(req.version(), 11u);
  EXPECT_EQ(req.body(), "body");
  EXPECT_EQ(req["X-TAG"], "a");
  EXPECT_EQ(req.count("x-Tag"), 2u);
  EXPECT_EQ(req.values("X-Tag"), (Request::Values{"a", "b"}));
  EXPECT_EQ(req[Field::host], "h");
  EXPECT_EQ(req["X-Tah"], "");  // same length, another name
  EXPECT_EQ(req.count("X-Missing"), 0u);
  std::vector<std::string> names;
  req.ForEachField([&](std::string_view name, std::string_view) { names.emplace_back(name); });
  EXPECT_EQ(names, (std::vector<std::string>{"Host", "X-Tag", "Content-Length", "x-tag"}));
}

// Lookups skip names the request cannot have by a bit per name (size and
// last letter): every field name Beast knows is found, or not, exactly as a
// plain search would, in requests holding some of them (read by the fast
// path, 30 fields at most, and inserted one by one).
TEST(RequestTest, EveryKnownNameIsFoundExactlyWhenPresent) {
  // Not "v" + std::to_string(i): GCC 12 warns falsely (-Wrestrict) on it.
  auto Value = [](size_t i) { return std::string(1, 'v').append(std::to_string(i)); };
  std::vector<std::string> names;
  for (unsigned f = 1; f <= static_cast<unsigned>(Field::xref); ++f) {
    names.emplace_back(Request::FieldName(static_cast<Field>(f)));
  }
  ASSERT_GT(names.size(), 300u);
  for (size_t base = 0; base < names.size(); base += 60) {
    std::vector<bool> present(names.size());
    std::string wire = "GET / HTTP/1.1\r\n";
    Request built{Verb::get, "/"};
    for (size_t i = base; i < std::min(base + 60, names.size()); i += 2) {
      bool acted_on = false;  // fields the reader interprets
      for (const char* n : {"Content-Length", "Transfer-Encoding", "Connection", "Upgrade",
                            "Content-Encoding", "Expect", "Proxy-Connection"}) {
        acted_on = acted_on || IEquals(names[i], n);
      }
      if (acted_on) continue;
      present[i] = true;
      wire.append(names[i]).append(": ").append(Value(i)).append("\r\n");
      built.insert(names[i], Value(i));
    }
    const Request read = Read(wire + "\r\n");
    for (const Request* req : std::initializer_list<const Request*>{&read, &built}) {
      for (size_t i = 0; i < names.size(); ++i) {
        std::string upper = names[i];
        for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        EXPECT_EQ((*req)[upper], present[i] ? Value(i) : "") << names[i];
        EXPECT_EQ(req->count(names[i]), present[i] ? 1u : 0u) << names[i];
        EXPECT_EQ(req->values(upper).size(), present[i] ? 1u : 0u) << names[i];
      }
    }
  }
}

TEST(RequestTest, KeepsTheTextOfAnUnknownMethod) {
  Request req = Read("BREW /pot HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(req.method(), Verb::unknown);
  EXPECT_EQ(req.method_string(), "BREW");
}

TEST(RequestTest, KeepAliveFollowsTheVersionAndTheFirstConnectionField) {
  EXPECT_TRUE(Read("GET / HTTP/1.1\r\n\r\n").keep_alive());
  EXPECT_FALSE(Read("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n").keep_alive());
  EXPECT_FALSE(Read("GET / HTTP/1.0\r\n\r\n").keep_alive());
  EXPECT_TRUE(Read("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
  EXPECT_FALSE(Read("GET / HTTP/1.0\r\nConnection: keep-alive-not\r\n\r\n").keep_alive());
}

TEST(RequestTest, SetReplacesEraseRemovesAndValuesMayViewTheRequest) {
  Request req{Verb::get, "/x"};
  req.insert("A", "1");
  req.insert("a", "2");
  req.insert(Field::content_type, "text/plain");
  req.set("A", req[Field::content_type]);  // a view into the request's own text
  EXPECT_EQ(req.count("a"), 1u);
  EXPECT_EQ(req["A"], "text/plain");
  req.erase(Field::content_type);
  EXPECT_EQ(req.count(Field::content_type), 0u);
  EXPECT_EQ(req["a"], "text/plain");
  for (int i = 0; i < 100; ++i) req.insert("B", std::string(20, static_cast<char>('a' + i % 26)));
  EXPECT_EQ(req.count("b"), 100u);
  EXPECT_EQ(req.values("B")[99], std::string(20, 'v'));
  EXPECT_EQ(req.target(), "/x");
  EXPECT_EQ(req.method_string(), "GET");
  // A name long enough to move the text while the value still views it.
  const std::string long_name(4096, 'N');
  req.set(long_name, req["a"]);
  EXPECT_EQ(req[long_name], "text/plain");
  req.insert(req["a"], std::string(4096, 'v'));
  EXPECT_EQ(req["text/plain"], std::string(4096, 'v'));
}

TEST(AsciiTest, ListElementsAreTrimmedAndEmptyOnesSkippedUnlessReported) {
  std::vector<std::string> seen;
  auto collect = [&](std::string_view t) { seen.emplace_back(t); };
  ForEachListElement(" a ,,\tb\t, ", collect);
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b"}));
  seen.clear();
  ForEachListElement(" a ,,\tb\t, ", collect, EmptyElements::kReport);
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "", "b", ""}));
  seen.clear();
  ForEachListElement("", collect, EmptyElements::kReport);
  EXPECT_EQ(seen, (std::vector<std::string>{""}));
}

}  // namespace
}  // namespace inferd::http
