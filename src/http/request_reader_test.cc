#include "http/request_reader.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace inferd::http {
namespace {

RequestReader::Options SmallLimits() {
  RequestReader::Options o;
  o.max_body_bytes = 1000;
  o.max_header_bytes = 512;
  return o;
}

// Feeds `bytes` in pieces of `step` bytes, as a socket would deliver them,
// keeping unconsumed bytes for the next call. Returns the unconsumed rest.
std::string FeedInSteps(RequestReader& r, const std::string& bytes, size_t step) {
  std::string pending;
  size_t pos = 0;
  while (!r.done() && !r.error()) {
    if (pos >= bytes.size()) break;
    pending += bytes.substr(pos, step);
    pos += step;
    pending.erase(0, r.Feed(pending));
  }
  return pending + (pos < bytes.size() ? bytes.substr(pos) : "");
}

std::string Compress(const std::string& raw, int window_bits) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, raw.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string Post(const std::string& extra_headers, const std::string& body) {
  return "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(RequestReaderTest, ReadsAWholeRequestAndLeavesThePipelinedNext) {
  std::string one = Post("", "{\"a\":1}");
  std::string two = "GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string bytes = one + two;
  for (size_t step : {1u, 3u, 7u, 4096u}) {
    RequestReader r(SmallLimits());
    std::string rest = FeedInSteps(r, bytes, step);
    ASSERT_TRUE(r.done()) << step;
    EXPECT_EQ(rest, two) << step;
    Request req = r.Release();
    EXPECT_EQ(req.body(), "{\"a\":1}");
    RequestReader r2(SmallLimits());
    EXPECT_EQ(r2.Feed(rest), rest.size());
    EXPECT_TRUE(r2.done());
    EXPECT_EQ(r2.method(), Verb::get);
  }
}

TEST(RequestReaderTest, ReadsChunkedBodies) {
  std::string bytes =
      "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  RequestReader r(SmallLimits());
  EXPECT_EQ(FeedInSteps(r, bytes, 5), "");
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.Release().body(), "abcde");
}

TEST(RequestReaderTest, RefusesEveryTransferEncodingButChunked) {
  for (std::string te : {"xchunked", "gzip", "gzip, chunked", "chunked, chunked", "identity"}) {
    // A body framed as chunked that smuggles a second request.
    std::string bytes = "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te +
                        "\r\n\r\n1c\r\nGET /smuggled HTTP/1.1\r\n\r\n\r\n0\r\n\r\n";
    RequestReader r(SmallLimits());
    r.Feed(bytes);
    ASSERT_TRUE(r.error()) << te;
    EXPECT_FALSE(r.done());
    EXPECT_EQ(r.error()->status, Status::not_implemented) << te;
    EXPECT_NE(r.error()->message.find("Transfer-Encoding"), std::string::npos);
  }
}

TEST(RequestReaderTest, RefusesTransferEncodingInHttp10) {
  RequestReader r(SmallLimits());
  r.Feed("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n");
  ASSERT_TRUE(r.error());
  EXPECT_EQ(r.error()->status, Status::bad_request);
}

TEST(RequestReaderTest, AnEmptyCompressedBodyIsEmpty) {
  RequestReader r(SmallLimits());
  r.Feed("GET /v2 HTTP/1.1\r\nContent-Encoding: gzip\r\n\r\n");
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.Release().body(), "");
}

TEST(RequestReaderTest, RefusesTransferEncodingWithContentLength) {
  RequestReader r(SmallLimits());
  r.Feed(
      "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n"
      "hello");
  ASSERT_TRUE(r.error());
  EXPECT_FALSE(r.done());
}

TEST(RequestReaderTest, LimitsHeaderAndBody) {
  RequestReader big_body(SmallLimits());
  big_body.Feed(Post("", std::string(1001, 'x')));
  ASSERT_TRUE(big_body.error());
  EXPECT_EQ(big_body.error()->status, Status::payload_too_large);

  RequestReader big_header(SmallLimits());
  big_header.Feed("GET / HTTP/1.1\r\nX-Long: " + std::string(600, 'a') + "\r\n\r\n");
  ASSERT_TRUE(big_header.error());
  EXPECT_EQ(big_header.error()->status, Status::request_header_fields_too_large);

  RequestReader garbage(SmallLimits());
  garbage.Feed("\x01\x02 nonsense\r\n\r\n");
  ASSERT_TRUE(garbage.error());
  EXPECT_EQ(garbage.error()->status, Status::bad_request);
}

TEST(RequestReaderTest, DecodesGzipAndDeflateBodies) {
  std::string raw = "{\"inputs\":[]}" + std::string(300, ' ');
  struct Case {
    const char* coding;
    int window_bits;
  };
  for (Case c : {Case{"gzip", 16 + MAX_WBITS}, Case{"x-gzip", 16 + MAX_WBITS},
                 Case{"deflate", MAX_WBITS}, Case{"deflate", -MAX_WBITS}}) {
    RequestReader r(SmallLimits());
    std::string bytes =
        Post(std::string("Content-Encoding: ") + c.coding + "\r\n", Compress(raw, c.window_bits));
    EXPECT_EQ(FeedInSteps(r, bytes, 10), "");
    ASSERT_TRUE(r.done()) << c.coding << " " << (r.error() ? r.error()->message : "");
    Request req = r.Release();
    EXPECT_EQ(req.body(), raw) << c.coding;
    EXPECT_EQ(req.count(beast_http::field::content_encoding), 0u);
  }
}

TEST(RequestReaderTest, BoundsDecompressionAndRejectsCorruptOrUnknownCodings) {
  RequestReader bomb(SmallLimits());
  bomb.Feed(Post("Content-Encoding: gzip\r\n", Compress(std::string(100000, '0'), 16 + MAX_WBITS)));
  ASSERT_TRUE(bomb.error());
  EXPECT_EQ(bomb.error()->status, Status::payload_too_large);

  std::string exact(1000, '0');  // exactly at the limit is fine
  RequestReader at_limit(SmallLimits());
  at_limit.Feed(Post("Content-Encoding: gzip\r\n", Compress(exact, 16 + MAX_WBITS)));
  ASSERT_TRUE(at_limit.done());
  EXPECT_EQ(at_limit.Release().body(), exact);

  RequestReader corrupt(SmallLimits());
  corrupt.Feed(Post("Content-Encoding: gzip\r\n", "\x1f\x8b not really gzip"));
  ASSERT_TRUE(corrupt.error());
  EXPECT_EQ(corrupt.error()->status, Status::bad_request);

  std::string gz = Compress("{}", 16 + MAX_WBITS);
  RequestReader truncated(SmallLimits());
  truncated.Feed(Post("Content-Encoding: gzip\r\n", gz.substr(0, gz.size() - 4)));
  ASSERT_TRUE(truncated.error());
  EXPECT_EQ(truncated.error()->status, Status::bad_request);

  RequestReader brotli(SmallLimits());
  brotli.Feed(Post("Content-Encoding: br\r\n", "xx"));
  ASSERT_TRUE(brotli.error());
  EXPECT_EQ(brotli.error()->status, Status::unsupported_media_type);
  EXPECT_NE(brotli.error()->message.find("br"), std::string::npos);

  RequestReader identity(SmallLimits());
  identity.Feed(Post("Content-Encoding: identity\r\n", "{}"));
  ASSERT_TRUE(identity.done());
  EXPECT_EQ(identity.Release().body(), "{}");
}

TEST(RequestReaderTest, AsksForContinueOnlyWhenTheBodyFits) {
  RequestReader r(SmallLimits());
  r.Feed("POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n");
  EXPECT_TRUE(r.header_done());
  EXPECT_TRUE(r.wants_continue());
  RequestReader big(SmallLimits());
  big.Feed("POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10000\r\n\r\n");
  EXPECT_FALSE(big.wants_continue());
  ASSERT_TRUE(big.error());
  EXPECT_EQ(big.error()->status, Status::payload_too_large);
}

TEST(PercentDecodeTest, DecodesOnceAndRejectsMalformedEscapes) {
  EXPECT_EQ(PercentDecode("mlp"), "mlp");
  EXPECT_EQ(PercentDecode("%6dlp"), "mlp");
  EXPECT_EQ(PercentDecode("mlp%20v2"), "mlp v2");
  EXPECT_EQ(PercentDecode("a%2Fb"), "a/b");
  EXPECT_EQ(PercentDecode("%2525"), "%25");  // once, not twice
  EXPECT_EQ(PercentDecode("%"), std::nullopt);
  EXPECT_EQ(PercentDecode("a%2"), std::nullopt);
  EXPECT_EQ(PercentDecode("%zz"), std::nullopt);
}

}  // namespace
}  // namespace inferd::http

namespace inferd::http {
namespace {

struct Read {
  bool done = false;
  bool error = false;
  unsigned status = 0;
  size_t consumed = 0;
  std::string method, target, body;
  unsigned version = 0;
  std::vector<std::pair<std::string, std::string>> fields;
  bool operator==(const Read& o) const {
    return done == o.done && error == o.error && status == o.status && consumed == o.consumed &&
           method == o.method && target == o.target && body == o.body && version == o.version &&
           fields == o.fields;
  }
};

// One Feed of `bytes` (the whole request at once: the fast path's case).
Read ReadOnce(const std::string& bytes, bool fast_path, bool* took_fast = nullptr) {
  RequestReader::Options o = SmallLimits();
  o.fast_path = fast_path;
  RequestReader r(o);
  Read out;
  out.consumed = r.Feed(bytes);
  out.done = r.done();
  out.error = r.error().has_value();
  if (out.error) out.status = static_cast<unsigned>(r.error()->status);
  if (out.done) {
    Request req = r.Release();
    out.method = std::string(req.method_string());
    out.target = std::string(req.target());
    out.body = req.body();
    out.version = req.version();
    req.ForEachField(
        [&](std::string_view n, std::string_view v) { out.fields.emplace_back(n, v); });
  }
  if (took_fast) *took_fast = r.read_fast();
  return out;
}

TEST(RequestReaderFastPathTest, ReadsWhatBeastReads) {
  const std::string big_header(600, 'a');
  const std::vector<std::string> cases = {
      Post("", "{\"a\":1}"),
      Post("X-A:  padded \t\r\nX-Empty:\r\nx-a: second\r\n", "body"),
      "GET /v2?x=%20 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n",
      "BREW /pot HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nX-Fold: a\r\n b\r\n\r\n",                          // obs-fold
      "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",      // chunked
      "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",  // twice
      "GET / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n",                     // over the body limit
      "GET / HTTP/1.1\r\nX-Big: " + big_header + "\r\n\r\n",                // over the header limit
      "GET / HTTP/1.1\r\nX-Bin: \x80\r\n\r\n",                              // obs-text
      "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
      "GET /\x01 HTTP/1.1\r\n\r\n",
      "GET / HTTP/2.0\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: ,close\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc",  // incomplete
      "\r\nGET / HTTP/1.1\r\n\r\n",
      Post("Content-Encoding: br\r\n", "x"),  // refused before the body
  };
  for (const std::string& c : cases) {
    EXPECT_TRUE(ReadOnce(c, true) == ReadOnce(c, false)) << c;
  }
  bool fast = false;
  ReadOnce(Post("X-A: 1\r\n", "{}"), false, &fast);
  EXPECT_FALSE(fast);
  Read plain = ReadOnce(Post("X-A: 1\r\n", "{}"), true, &fast);
  EXPECT_TRUE(fast);
  EXPECT_EQ(plain.fields.size(), 3u);
  EXPECT_EQ(plain.body, "{}");
}

TEST(RequestReaderFastPathTest, TheFastPathAppliesTheSameChecks) {
  // Content-Encoding is decoded, an unknown one refused, check_header runs.
  RequestReader::Options o = SmallLimits();
  int checked = 0;
  o.check_header = [&](const Request& header) -> std::optional<HttpError> {
    ++checked;
    if (header.count("X-Refuse") > 0) return HttpError{Status::unauthorized, "refused"};
    return std::nullopt;
  };
  RequestReader gz(o);
  std::string bytes = Post("Content-Encoding: gzip\r\n", Compress("{\"a\":1}", 16 + MAX_WBITS));
  EXPECT_EQ(gz.Feed(bytes), bytes.size());
  ASSERT_TRUE(gz.done());
  EXPECT_EQ(gz.Release().body(), "{\"a\":1}");
  RequestReader unknown(o);
  unknown.Feed(Post("Content-Encoding: br\r\n", "x"));
  ASSERT_TRUE(unknown.error());
  EXPECT_EQ(unknown.error()->status, Status::unsupported_media_type);
  RequestReader refused(o);
  refused.Feed(Post("X-Refuse: 1\r\n", "x"));
  ASSERT_TRUE(refused.error());
  EXPECT_EQ(refused.error()->status, Status::unauthorized);
  EXPECT_EQ(checked, 2);  // the unknown coding is refused before check_header
}

}  // namespace
}  // namespace inferd::http
