#include "http/router.h"

#include <gtest/gtest.h>

#include <string>

namespace inferd::http {
namespace {

Handler Named(std::string name) {
  return [name](Request&&, const PathParams&, Responder r) {
    r.Send(MakeJsonResponse(Status::ok, name));
  };
}

std::string Call(const Router::Match& m) {
  std::string body;
  (*m.handler)(Request{}, m.params, Responder([&](Response r) { body = r.body(); }));
  return body;
}

TEST(RouterTest, DecodesCapturedSegmentsOnce) {
  Router router;
  router.Add(Verb::get, "/v2/models/{model}", Named("meta"));
  auto m = router.Find(Verb::get, "/v2/models/%6dlp");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(m.params.Get("model"), "mlp");
  m = router.Find(Verb::get, "/v2/%6Dodels/mlp%20v2?x=1");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(m.params.Get("model"), "mlp v2");
  // An encoded '/' stays inside its segment.
  m = router.Find(Verb::get, "/v2/models/a%2Fb");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(m.params.Get("model"), "a/b");
  m = router.Find(Verb::get, "/v2/models/%2e%2e");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(m.params.Get("model"), "..");
  m = router.Find(Verb::get, "/v2/models/ml%zzp");
  EXPECT_FALSE(m.handler);
  EXPECT_EQ(m.status, Status::bad_request);
  EXPECT_NE(m.error.find("percent"), std::string::npos);
}

TEST(RouterTest, HeadTakesTheGetRoute) {
  Router router;
  router.Add(Verb::get, "/v2", Named("get"));
  router.Add(Verb::post, "/v2/x", Named("post"));
  auto m = router.Find(Verb::head, "/v2");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(Call(m), "get");
  m = router.Find(Verb::head, "/v2/x");
  EXPECT_FALSE(m.handler);
  EXPECT_EQ(m.status, Status::method_not_allowed);
  EXPECT_EQ(m.allow, "POST");
  EXPECT_EQ(router.Find(Verb::head, "/nope").status, Status::not_found);
}

TEST(JsonEscapeTest, ReplacesInvalidUtf8AndEscapesControls) {
  std::string out;
  AppendJsonEscaped(&out, "\xe2\x98\x83\xff\"\\\n\x01\x7f");
  EXPECT_EQ(out, "\xe2\x98\x83\\ufffd\\\"\\\\\\n\\u0001\\u007f");
  for (std::string bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x98", "\x80"}) {
    out.clear();
    AppendJsonEscaped(&out, bad);
    EXPECT_EQ(out.find_first_of("\x80\xc0\xed\xf4\xe2"), std::string::npos) << out;
    EXPECT_NE(out.find("\\ufffd"), std::string::npos);
  }
  out.clear();
  AppendJsonEscaped(&out, "\xf0\x9f\x98\x80 ok \xc3\xa9");
  EXPECT_EQ(out, "\xf0\x9f\x98\x80 ok \xc3\xa9");
}

// Find remembers its last route per thread: a repeated lookup (the
// remembered path) answers exactly what the full match answers, and nothing
// remembered leaks into another path, method, router or a router changed
// since.
TEST(RouterTest, ARepeatedLookupAnswersWhatTheFullMatchAnswers) {
  Router router;
  router.Add(Verb::post, "/v2/models/{model}/infer", Named("infer"));
  router.Add(Verb::post, "/v2/models/{model}/versions/{version}/infer", Named("infer v"));
  router.Add(Verb::get, "/v2/models/{model}/ready", Named("ready"));
  for (int i = 0; i < 2; ++i) {  // the first finds by segments, the second remembers
    auto m = router.Find(Verb::post, "/v2/models/mlp/versions/3/infer?x=1");
    ASSERT_TRUE(m.handler);
    EXPECT_EQ(Call(m), "infer v");
    EXPECT_EQ(m.params.Get("model"), "mlp");
    EXPECT_EQ(m.params.Get("version"), "3");
    ASSERT_EQ(m.params.values.size(), 2u);
  }
  // A path of the same length and method to another route: its own route.
  router.Add(Verb::get, "/v2/models/{model}/stats", Named("stats"));
  auto m = router.Find(Verb::get, "/v2/models/mlp/ready");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(Call(m), "ready");
  m = router.Find(Verb::get, "/v2/models/mlp/stats");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(Call(m), "stats");
  // Too long to remember, or too many parameters: found in full each time.
  const std::string long_name(200, 'x');
  router.Add(Verb::get, "/p/{a}/{b}/{c}/{d}/{e}", Named("five"));
  for (int i = 0; i < 2; ++i) {
    m = router.Find(Verb::get, "/v2/models/" + long_name + "/ready");
    ASSERT_TRUE(m.handler);
    EXPECT_EQ(m.params.Get("model"), long_name);
    m = router.Find(Verb::get, "/p/1/2/3/4/5");
    ASSERT_TRUE(m.handler);
    EXPECT_EQ(Call(m), "five");
    EXPECT_EQ(m.params.Get("e"), "5");
    ASSERT_EQ(m.params.values.size(), 5u);
  }
  // Another value of the same length in the same place: not the remembered path.
  m = router.Find(Verb::post, "/v2/models/mlq/versions/4/infer");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(m.params.Get("model"), "mlq");
  EXPECT_EQ(m.params.Get("version"), "4");
  // The same path with another method: the full match's answer (405).
  m = router.Find(Verb::get, "/v2/models/mlq/versions/4/infer");
  EXPECT_FALSE(m.handler);
  EXPECT_EQ(m.status, Status::method_not_allowed);
  EXPECT_EQ(m.allow, "POST");
  // Percent-encoded: decoded every time.
  for (int i = 0; i < 2; ++i) {
    m = router.Find(Verb::get, "/v2/models/m%6Cp/ready");
    ASSERT_TRUE(m.handler);
    EXPECT_EQ(m.params.Get("model"), "mlp");
  }
  // Another router, same path: its own route, not the one remembered.
  Router other;
  other.Add(Verb::get, "/v2/models/{name}/ready", Named("other"));
  m = other.Find(Verb::get, "/v2/models/m%6Cp/ready");
  m = other.Find(Verb::get, "/v2/models/mlp/ready");
  m = router.Find(Verb::get, "/v2/models/mlp/ready");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(Call(m), "ready");
  m = other.Find(Verb::get, "/v2/models/mlp/ready");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(Call(m), "other");
  EXPECT_EQ(m.params.Get("name"), "mlp");
  EXPECT_EQ(m.params.Get("model"), "");
  // A route added after a lookup: the router's memory is renewed, and an
  // earlier route of another method is found for that method.
  other.Add(Verb::post, "/v2/models/{name}/ready", Named("post"));
  m = other.Find(Verb::post, "/v2/models/mlp/ready");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(Call(m), "post");
  m = other.Find(Verb::get, "/v2/models/mlp/ready");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(Call(m), "other");
}

TEST(ResponderTest, AnswersOnceAndFiveHundredWhenDropped) {
  int calls = 0;
  Status last = Status::ok;
  {
    Responder r([&](Response res) {
      ++calls;
      last = res.result();
    });
    r.Send(MakeJsonResponse(Status::created, "{}"));
    r.Send(MakeJsonResponse(Status::ok, "{}"));
  }
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(last, Status::created);
  {
    Responder dropped([&](Response res) { last = res.result(); });
  }
  EXPECT_EQ(last, Status::internal_server_error);
}

}  // namespace
}  // namespace inferd::http
