// Unit tests for the request identity of `inferd bench`: --header parsing,
// the --mix grammar, how a class inherits and overrides the global identity,
// and ValidateOptions on these flags.

#include "bench/mix.h"

#include <gtest/gtest.h>

#include "bench/bench.h"
#include "http/client.h"

namespace inferd::bench {
namespace {

using http::beast_http::field;

// The error message of `s`, which must be kInvalidArgument.
template <typename T>
std::string InvalidMessage(const StatusOr<T>& s) {
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << s.status().ToString();
  return s.status().message();
}

TEST(HeaderTest, ParsesBothSpellings) {
  auto h = ParseHeader("X-Foo: bar baz ");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(*h, (Header{"X-Foo", "bar baz"}));
  h = ParseHeader("X-Foo:bar");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, (Header{"X-Foo", "bar"}));
  h = ParseHeader("X-Url: http://a:1/b");  // split at the first ':'
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->value, "http://a:1/b");
  h = ParseHeader("X-Empty:");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->value, "");
}

TEST(HeaderTest, RejectsAndNamesTheHeader) {
  const std::string nul("X-A: b\0c", 8);
  for (const std::string& bad :
       {std::string("NoColon"), std::string(": value"), std::string("  : value"),
        std::string("X-A: b\r\nX-Injected: 1"), std::string("X-A: b\nc"), nul,
        std::string("Bad Name: v"), std::string("Bad(Name): v"), std::string("Content-Length: 5"),
        std::string("transfer-encoding: chunked")}) {
    const std::string message = InvalidMessage(ParseHeader(bad));
    EXPECT_NE(message.find("header '"), std::string::npos) << message;
    EXPECT_NE(message.find(bad.substr(0, 3)), std::string::npos) << message;
  }
  EXPECT_NE(InvalidMessage(ParseHeader("X-A: b\r\nc")).find("X-A: b\\r\\nc"), std::string::npos);

  auto all = ParseHeaders({"A: 1", "B:2"});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
  EXPECT_NE(InvalidMessage(ParseHeaders({"A: 1", "oops"})).find("'oops'"), std::string::npos);
}

TEST(MixTest, ParsesClasses) {
  auto mix = ParseMix(
      "high:priority=1,rate=20,slo_ms=1000;low:priority=2,rate=200,api_key=K,header=X-Foo:bar");
  ASSERT_TRUE(mix.ok()) << mix.status().ToString();
  ASSERT_EQ(mix->size(), 2u);
  const MixClass& high = (*mix)[0];
  EXPECT_EQ(high.name, "high");
  EXPECT_EQ(high.priority, 1);
  EXPECT_DOUBLE_EQ(high.rate, 20);
  EXPECT_DOUBLE_EQ(high.slo_ms, 1000);
  EXPECT_FALSE(high.api_key.has_value());
  EXPECT_TRUE(high.headers.empty());
  const MixClass& low = (*mix)[1];
  EXPECT_EQ(low.name, "low");
  EXPECT_EQ(low.priority, 2);
  EXPECT_DOUBLE_EQ(low.rate, 200);
  EXPECT_EQ(low.api_key, "K");
  EXPECT_EQ(low.headers, (std::vector<Header>{{"X-Foo", "bar"}}));
  EXPECT_DOUBLE_EQ(low.slo_ms, 0);
}

TEST(MixTest, AcceptsBlanksRepeatedHeadersAndMinimalClasses) {
  auto mix = ParseMix(" a : rate = 0.5 , header = X-A: 1 , header=X-B:2 ; b.2-x_y:rate=3 ");
  ASSERT_TRUE(mix.ok()) << mix.status().ToString();
  ASSERT_EQ(mix->size(), 2u);
  EXPECT_EQ((*mix)[0].name, "a");
  EXPECT_DOUBLE_EQ((*mix)[0].rate, 0.5);
  EXPECT_EQ((*mix)[0].headers, (std::vector<Header>{{"X-A", "1"}, {"X-B", "2"}}));
  EXPECT_EQ((*mix)[1].name, "b.2-x_y");
  EXPECT_FALSE((*mix)[1].priority.has_value());

  mix = ParseMix("only:rate=1,priority=0");
  ASSERT_TRUE(mix.ok());
  EXPECT_EQ((*mix)[0].priority, 0);  // explicit 0: the model's default, overriding --priority
}

TEST(MixTest, RejectsAndNamesTheToken) {
  // Each bad mix, and a piece of text its error must contain.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty"},
      {"   ", "empty"},
      {"a:rate=1;", "empty class"},
      {"a:rate=1;;b:rate=2", "empty class"},
      {"a", "class 'a'"},
      {":rate=1", "bad class name ''"},
      {"a b:rate=1", "bad class name 'a b'"},
      {"a:", "class 'a': no settings (rate is required)"},
      {"a:priority=1", "class 'a': rate is required"},
      {"a:rate=1,", "class 'a': empty setting"},
      {"a:rate", "expected key=value, got 'rate'"},
      {"a:rate=1,color=red", "unknown key 'color' in 'color=red'"},
      {"a:rate=1,rate=2", "duplicate key 'rate'"},
      {"a:rate=1,priority=1,priority=2", "duplicate key 'priority'"},
      {"a:rate=1;a:rate=2", "duplicate class name 'a'"},
      {"a:rate=0", "bad 'rate=0'"},
      {"a:rate=-3", "bad 'rate=-3'"},
      {"a:rate=fast", "bad 'rate=fast'"},
      {"a:rate=1x", "bad 'rate=1x'"},
      {"a:rate=inf", "bad 'rate=inf'"},
      {"a:rate=", "bad 'rate='"},
      {"a:rate=1,priority=-1", "bad 'priority=-1'"},
      {"a:rate=1,priority=1.5", "bad 'priority=1.5'"},
      {"a:rate=1,priority=99999999999", "bad 'priority=99999999999'"},
      {"a:rate=1,slo_ms=0", "bad 'slo_ms=0'"},
      {"a:rate=1,slo_ms=soon", "bad 'slo_ms=soon'"},
      {"a:rate=1,api_key=", "bad 'api_key='"},
      {"a:rate=1,api_key=with space", "bad 'api_key=with space'"},
      {"a:rate=1,header=NoColon", "header 'NoColon'"},
      {"a:rate=1,header=:v", "header ':v'"},
      {"a:rate=1,header=X-A:b\r\nX-B:c", "header 'X-A:b\\r\\nX-B:c'"},
  };
  for (const auto& [mix, expected] : cases) {
    const std::string message = InvalidMessage(ParseMix(mix));
    EXPECT_EQ(message.rfind("--mix: ", 0), 0u) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << "mix '" << mix << "' gave: " << message;
  }
}

TEST(MixTest, RedactsSecrets) {
  auto mix = ParseMix("hi:rate=20,priority=1,slo_ms=250.5,api_key=SECRET,header=X-Token:abc");
  ASSERT_TRUE(mix.ok());
  const std::string redacted = RedactedMix(*mix);
  EXPECT_EQ(redacted, "hi:rate=20,priority=1,api_key=***,header=X-Token:***,slo_ms=250.5");
  auto again = ParseMix(redacted);  // still in the grammar
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->size(), 1u);
}

TEST(IdentityTest, ClassInheritsAndOverrides) {
  RequestIdentity defaults;
  defaults.api_key = "global";
  defaults.priority = 3;
  defaults.headers = {{"X-Team", "a"}, {"X-Keep", "1"}};

  auto mix = ParseMix("own:rate=1,api_key=mine,priority=1,header=x-team:b;plain:rate=1");
  ASSERT_TRUE(mix.ok());
  RequestIdentity own = ClassIdentity(defaults, (*mix)[0]);
  EXPECT_EQ(own.api_key, "mine");
  EXPECT_EQ(own.priority, 1);
  EXPECT_EQ(own.headers, (std::vector<Header>{{"X-Keep", "1"}, {"x-team", "b"}}));
  RequestIdentity plain = ClassIdentity(defaults, (*mix)[1]);
  EXPECT_EQ(plain.api_key, "global");
  EXPECT_EQ(plain.priority, 3);
  EXPECT_EQ(plain.headers, defaults.headers);
}

TEST(IdentityTest, AppliesHeaders) {
  auto url = http::ParseUrl("http://h:1");
  ASSERT_TRUE(url.ok());
  RequestIdentity id;
  id.api_key = "K1";
  id.priority = 2;
  id.headers = {{"User-Agent", "mine"}, {"X-Multi", "1"}, {"X-Multi", "2"}};

  http::ClientRequest req =
      http::MakeRequest(*url, http::Verb::post, "/infer", "{}", "application/json");
  ApplyIdentity(id, /*with_priority=*/true, req);
  EXPECT_EQ(req[field::authorization], "Bearer K1");
  EXPECT_EQ(req["X-Inferd-Priority"], "2");
  EXPECT_EQ(req[field::user_agent], "mine");  // replaced, not doubled
  EXPECT_EQ(req.count(field::user_agent), 1u);
  EXPECT_EQ(req.count("X-Multi"), 2u);
  EXPECT_EQ(req[field::content_length], "2");

  http::ClientRequest get = http::MakeRequest(*url, http::Verb::get, "/meta");
  ApplyIdentity(id, /*with_priority=*/false, get);
  EXPECT_EQ(get[field::authorization], "Bearer K1");
  EXPECT_EQ(get.count("X-Inferd-Priority"), 0u);

  http::ClientRequest none = http::MakeRequest(*url, http::Verb::get, "/meta");
  ApplyIdentity(RequestIdentity{}, /*with_priority=*/true, none);
  EXPECT_EQ(none.count(field::authorization), 0u);
  EXPECT_EQ(none.count("X-Inferd-Priority"), 0u);  // priority 0: the model's default
}

TEST(ValidateOptionsTest, IdentityFlags) {
  BenchOptions o;
  o.model = "m";
  EXPECT_TRUE(ValidateOptions(o).ok());

  o.headers = {"X-A: 1", "X-B"};
  Status s = ValidateOptions(o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--header"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("'X-B'"), std::string::npos) << s.message();
  o.headers = {"X-A: 1"};

  o.priority = -1;
  EXPECT_EQ(ValidateOptions(o).code(), StatusCode::kInvalidArgument);
  o.priority = 1;
  o.api_key = "bad key";
  EXPECT_NE(ValidateOptions(o).message().find("--api-key"), std::string::npos);
  o.api_key = "good";
  EXPECT_TRUE(ValidateOptions(o).ok());

  o.mix = "a:rate=1;b:rate=2";
  o.concurrency.clear();  // not used with --mix
  EXPECT_TRUE(ValidateOptions(o).ok()) << ValidateOptions(o).ToString();
  o.rate = 5;
  EXPECT_NE(ValidateOptions(o).message().find("--rate"), std::string::npos);
  o.rate = 0;
  o.mix = "a:rate=1,bogus=2";
  EXPECT_NE(ValidateOptions(o).message().find("'bogus'"), std::string::npos);
}

}  // namespace
}  // namespace inferd::bench
