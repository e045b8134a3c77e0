#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "common/cancellation.h"
#include "common/request_context.h"
#include "common/trace_context.h"

namespace inferd {
namespace {

TEST(CancellationTest, FirstCancelWinsAndRunsCallbacksOnce) {
  Cancellation c;
  int runs = 0;
  Status seen;
  c.OnCancel([&](const Status& r) {
    ++runs;
    seen = r;
  });
  EXPECT_FALSE(c.cancelled());
  EXPECT_TRUE(c.reason().ok());
  EXPECT_TRUE(c.Cancel(DeadlineExceededError("deadline")));
  EXPECT_FALSE(c.Cancel(CancelledError("client gone")));
  EXPECT_TRUE(c.cancelled());
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(seen.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(c.reason().code(), StatusCode::kDeadlineExceeded);
}

TEST(CancellationTest, LateRegistrationRunsAtOnceAndRemovedCallbacksNever) {
  Cancellation c;
  int removed_runs = 0;
  uint64_t id = c.OnCancel([&](const Status&) { ++removed_runs; });
  EXPECT_NE(id, 0u);
  c.Remove(id);
  c.Cancel(Status::OK());  // an OK reason becomes a plain cancellation
  EXPECT_EQ(removed_runs, 0);
  EXPECT_EQ(c.reason().code(), StatusCode::kCancelled);
  int late = 0;
  EXPECT_EQ(c.OnCancel([&](const Status&) { ++late; }), 0u);
  EXPECT_EQ(late, 1);
}

TEST(CancellationTest, ConcurrentCancelsRunEachCallbackExactlyOnce) {
  for (int round = 0; round < 50; ++round) {
    Cancellation c;
    std::atomic<int> runs{0};
    for (int i = 0; i < 8; ++i) c.OnCancel([&](const Status&) { runs.fetch_add(1); });
    std::thread a([&] { c.Cancel(CancelledError("a")); });
    std::thread b([&] { c.Cancel(CancelledError("b")); });
    a.join();
    b.join();
    EXPECT_EQ(runs.load(), 8);
  }
}

TEST(TraceContextTest, ContinuesAValidTraceparentWithANewSpan) {
  const std::string in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  TraceContext t = TraceContext::Continue(in);
  EXPECT_EQ(t.TraceIdHex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t.flags, 1);
  std::string out = t.Traceparent();
  ASSERT_EQ(out.size(), 55u);
  EXPECT_EQ(out.substr(0, 36), "00-4bf92f3577b34da6a3ce929d0e0e4736-");
  EXPECT_NE(out.substr(36, 16), "00f067aa0ba902b7");  // our own span
  EXPECT_EQ(out.substr(52), "-01");
  TraceContext back;
  ASSERT_TRUE(TraceContext::Parse(out, &back));
  EXPECT_EQ(back.trace_id, t.trace_id);
  EXPECT_EQ(back.parent_id, t.span_id);
}

TEST(TraceContextTest, MalformedHeadersStartANewTrace) {
  const char* bad[] = {
      "",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",     // short
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // upper case
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero parent id
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // v00 with extra
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  };
  for (const char* h : bad) {
    TraceContext parsed;
    EXPECT_FALSE(TraceContext::Parse(h, &parsed)) << h;
    TraceContext t = TraceContext::Continue(h);
    EXPECT_TRUE(t.valid());
    EXPECT_NE(t.TraceIdHex(), "4bf92f3577b34da6a3ce929d0e0e4736") << h;
  }
  // A later version with more fields is read for what version 00 defines.
  TraceContext future;
  EXPECT_TRUE(TraceContext::Parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                                  &future));
}

TEST(TraceContextTest, GeneratedIdsAreDistinctAndValid) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    TraceContext t = TraceContext::Generate();
    EXPECT_TRUE(t.valid());
    EXPECT_TRUE(seen.insert(t.TraceIdHex()).second);
  }
}

TEST(TraceContextTest, RequestIdKeepsSaneClientIdsOnly) {
  TraceContext t = TraceContext::Generate();
  EXPECT_EQ(ChooseRequestId("abc-123", t).view(), "abc-123");
  EXPECT_EQ(ChooseRequestId("", t).view(), t.TraceIdHex());
  EXPECT_EQ(ChooseRequestId("has space", t).view(), t.TraceIdHex());
  EXPECT_EQ(ChooseRequestId(std::string(128, 'a'), t).view(), std::string(128, 'a'));
  EXPECT_EQ(ChooseRequestId(std::string(129, 'a'), t).view(), t.TraceIdHex());
  EXPECT_EQ(ChooseRequestId(std::string("a\nb"), t).view(), t.TraceIdHex());
}

TEST(RequestContextTest, DefaultsAndExpiry) {
  RequestContext ctx;
  EXPECT_EQ(ctx.tenant, "default");
  EXPECT_EQ(ctx.priority, 0);
  EXPECT_FALSE(ctx.expired(Time{} + std::chrono::hours(1000)));
  ctx.deadline = Time{} + std::chrono::seconds(5);
  EXPECT_FALSE(ctx.expired(Time{} + std::chrono::seconds(4)));
  EXPECT_TRUE(ctx.expired(Time{} + std::chrono::seconds(5)));
}

}  // namespace
}  // namespace inferd
