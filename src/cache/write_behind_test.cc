#include "cache/write_behind.h"

#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cache/cache_test_util.h"

namespace inferd {
namespace {

using cache_test::Key;

PendingWrite Item(int i, const std::string& model = "m") {
  auto e = std::make_shared<CacheEntry>();
  CacheKey k = Key(static_cast<uint64_t>(i), model);
  e->check = k.check;
  e->model = model;
  e->payload = std::to_string(i);
  return {std::move(k), std::move(e)};
}

// The batch writer of the tests: records what it is given and, while the
// gate is closed, holds the batch in flight (waiting on a condition
// variable, never sleeping).
class Sink {
 public:
  WriteBehindQueue::BatchWriter Writer() {
    return [this](const std::vector<PendingWrite>& batch) { Write(batch); };
  }
  std::unique_ptr<WriteBehindQueue> MakeQueue(size_t capacity, size_t max_batch,
                                              size_t max_batch_bytes = 0) {
    WriteBehindQueue::Options o;
    o.capacity = capacity;
    o.max_batch = max_batch;
    o.max_batch_bytes = max_batch_bytes;
    o.name = "test queue";
    auto q = WriteBehindQueue::Create(o, Writer());
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    return q.ok() ? std::move(q).value() : nullptr;
  }

  void CloseGate() {
    MutexLock l(&mu_);
    gate_open_ = false;
  }
  void OpenGate() {
    {
      MutexLock l(&mu_);
      gate_open_ = true;
    }
    cv_.SignalAll();
  }
  // Waits until a batch is held at the closed gate.
  void AwaitInFlight() {
    MutexLock l(&mu_);
    while (!in_flight_) cv_.Wait(&mu_);
  }
  // Closes the gate, pushes items 0..n-1 and waits until "0" is held in
  // flight (max_batch 1: the others stay queued).
  void PushAndHoldFirst(WriteBehindQueue* q, int n) {
    CloseGate();
    for (int i = 0; i < n; ++i) EXPECT_TRUE(q->Push(Item(i)));
    AwaitInFlight();
  }
  // Stored payloads: what was written minus what EraseModel removed.
  void EraseModel(const std::string& model) {
    MutexLock l(&mu_);
    for (auto it = stored_.begin(); it != stored_.end();) {
      it = it->first == model ? stored_.erase(it) : std::next(it);
    }
  }
  std::vector<std::string> written() {
    MutexLock l(&mu_);
    return written_;
  }
  std::vector<size_t> batch_sizes() {
    MutexLock l(&mu_);
    return batch_sizes_;
  }
  std::set<std::pair<std::string, std::string>> stored() {
    MutexLock l(&mu_);
    return stored_;
  }
  size_t batches_done() {
    MutexLock l(&mu_);
    return batches_done_;
  }

 private:
  void Write(const std::vector<PendingWrite>& batch) {
    MutexLock l(&mu_);
    in_flight_ = true;
    cv_.SignalAll();
    while (!gate_open_) cv_.Wait(&mu_);
    batch_sizes_.push_back(batch.size());
    for (const PendingWrite& w : batch) {
      written_.push_back(w.entry->payload);
      stored_.insert({w.key.model, w.entry->payload});
    }
    in_flight_ = false;
    ++batches_done_;
  }

  Mutex mu_;
  CondVar cv_;
  bool gate_open_ GUARDED_BY(mu_) = true;
  bool in_flight_ GUARDED_BY(mu_) = false;
  size_t batches_done_ GUARDED_BY(mu_) = 0;
  std::vector<std::string> written_ GUARDED_BY(mu_);
  std::vector<size_t> batch_sizes_ GUARDED_BY(mu_);
  std::set<std::pair<std::string, std::string>> stored_ GUARDED_BY(mu_);  // (model, payload)
};

std::vector<std::string> Range(int begin, int end) {
  std::vector<std::string> v;
  for (int i = begin; i < end; ++i) v.push_back(std::to_string(i));
  return v;
}

TEST(WriteBehindQueueTest, CreateRejectsInvalidOptions) {
  Sink sink;
  WriteBehindQueue::Options o;
  o.capacity = 0;
  EXPECT_EQ(WriteBehindQueue::Create(o, sink.Writer()).status().code(),
            StatusCode::kInvalidArgument);
  o.capacity = 1;
  o.max_batch = 0;
  EXPECT_EQ(WriteBehindQueue::Create(o, sink.Writer()).status().code(),
            StatusCode::kInvalidArgument);
  o.max_batch = 1;
  EXPECT_EQ(WriteBehindQueue::Create(o, nullptr).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(WriteBehindQueue::Create(o, sink.Writer()).ok());
}

TEST(WriteBehindQueueTest, PushFlushWritesEverythingInOrder) {
  Sink sink;
  auto q = sink.MakeQueue(/*capacity=*/1000, /*max_batch=*/8);
  for (int i = 0; i < 200; ++i) EXPECT_TRUE(q->Push(Item(i)));
  q->Flush();
  EXPECT_EQ(sink.written(), Range(0, 200));
  for (size_t n : sink.batch_sizes()) {
    EXPECT_GE(n, 1u);
    EXPECT_LE(n, 8u);
  }
  WriteBehindQueue::Stats s = q->GetStats();
  EXPECT_EQ(s.enqueued, 200u);
  EXPECT_EQ(s.written, 200u);
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_EQ(s.removed, 0u);
  EXPECT_EQ(s.queued, 0u);
  q->Flush();  // nothing pending: returns at once
}

TEST(WriteBehindQueueTest, ByteLimitCutsBatchesButNeverBelowOneItem) {
  Sink sink;
  auto q = sink.MakeQueue(/*capacity=*/100, /*max_batch=*/64, /*max_batch_bytes=*/250);
  q->PauseForTesting(true);  // everything queued before the writer looks
  for (int i = 0; i < 10; ++i) {
    PendingWrite w = Item(i);
    auto e = std::make_shared<CacheEntry>(*w.entry);
    e->payload = std::string(i == 9 ? 1000 : 100, 'x');  // the last alone exceeds the limit
    w.entry = std::move(e);
    EXPECT_TRUE(q->Push(std::move(w)));
  }
  q->PauseForTesting(false);
  q->Flush();
  EXPECT_EQ(sink.written().size(), 10u);
  // A batch takes items until their payloads reach 250 bytes: 3 of 100.
  EXPECT_EQ(sink.batch_sizes(), (std::vector<size_t>{3, 3, 3, 1}));
}

TEST(WriteBehindQueueTest, FullQueueDropsAndCounts) {
  Sink sink;
  auto q = sink.MakeQueue(/*capacity=*/4, /*max_batch=*/64);
  q->PauseForTesting(true);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(q->Push(Item(i)), i < 4) << i;
  WriteBehindQueue::Stats s = q->GetStats();
  EXPECT_EQ(s.dropped, 6u);
  EXPECT_EQ(s.enqueued, 4u);
  EXPECT_EQ(s.queued, 4u);
  EXPECT_TRUE(sink.written().empty());
  q->PauseForTesting(false);
  q->Flush();
  EXPECT_EQ(sink.written(), Range(0, 4));
  EXPECT_EQ(sink.batch_sizes(), std::vector<size_t>{4});  // one batch: all were queued
  // Room again once written.
  EXPECT_TRUE(q->Push(Item(10)));
  q->Flush();
  EXPECT_EQ(q->GetStats().written, 5u);
}

TEST(WriteBehindQueueTest, DropIfRemovesQueuedItems) {
  Sink sink;
  auto q = sink.MakeQueue(/*capacity=*/16, /*max_batch=*/64);
  q->PauseForTesting(true);
  q->Push(Item(0, "a"));
  q->Push(Item(1, "b"));
  q->Push(Item(2, "a"));
  q->Push(Item(3, "b"));
  int thens = 0;
  auto is_a = [](const PendingWrite& w) { return w.key.model == "a"; };
  EXPECT_EQ(q->DropIf(is_a, [&] { ++thens; }), 2u);
  EXPECT_EQ(thens, 1);
  EXPECT_EQ(q->DropIf(is_a), 0u);  // `then` is optional
  EXPECT_EQ(q->GetStats().removed, 2u);
  EXPECT_EQ(q->GetStats().queued, 2u);
  q->PauseForTesting(false);
  q->Flush();
  EXPECT_EQ(sink.written(), (std::vector<std::string>{"1", "3"}));
  // Everything removed: Flush still returns (removed items count as done).
  q->PauseForTesting(true);
  q->Push(Item(4, "a"));
  EXPECT_EQ(q->DropIf([](const PendingWrite&) { return true; }), 1u);
  q->Flush();
  q->PauseForTesting(false);
  EXPECT_EQ(q->GetStats().written, 2u);
}

TEST(WriteBehindQueueTest, BatchInFlightIsWrittenBeforeDropIfErases) {
  Sink sink;
  auto q = sink.MakeQueue(/*capacity=*/16, /*max_batch=*/1);
  sink.CloseGate();
  q->Push(Item(0, "a"));
  sink.AwaitInFlight();  // "0" is taken and held in the batch writer
  q->Push(Item(1, "a"));
  q->Push(Item(2, "b"));

  bool batch_done_before_erase = false;
  size_t removed = 0;
  Mutex mu;
  CondVar cv;
  bool started = false;
  std::thread eraser([&] {
    {
      MutexLock l(&mu);
      started = true;
    }
    cv.SignalAll();
    removed = q->DropIf([](const PendingWrite& w) { return w.key.model == "a"; },
                        [&] {
                          // The tier's erase: the batch in flight is complete.
                          batch_done_before_erase = sink.batches_done() >= 1;
                          sink.EraseModel("a");
                        });
  });
  {
    MutexLock l(&mu);
    while (!started) cv.Wait(&mu);
  }
  EXPECT_EQ(sink.batches_done(), 0u);  // still held at the gate
  sink.OpenGate();
  eraser.join();
  q->Flush();

  EXPECT_TRUE(batch_done_before_erase);
  // No write of "a" queued before the erase survives it: "0" was written
  // and then erased; "1" was removed from the queue, or (if the writer took
  // it before DropIf started) written and then erased.
  std::set<std::pair<std::string, std::string>> expected = {{"b", "2"}};
  EXPECT_EQ(sink.stored(), expected);
  WriteBehindQueue::Stats s = q->GetStats();
  EXPECT_EQ(s.removed, removed);
  EXPECT_EQ(s.written + s.removed, 3u);
  EXPECT_EQ(sink.written().size(), 3u - removed);
}

TEST(WriteBehindQueueTest, FlushWaitsForTheBatchInFlight) {
  Sink sink;
  auto q = sink.MakeQueue(/*capacity=*/16, /*max_batch=*/1);
  sink.PushAndHoldFirst(q.get(), 2);

  Mutex mu;
  bool flushed = false;
  size_t written_at_flush = 0;
  std::thread flusher([&] {
    q->Flush();
    size_t n = sink.written().size();
    MutexLock l(&mu);
    flushed = true;
    written_at_flush = n;
  });
  {
    MutexLock l(&mu);
    EXPECT_FALSE(flushed);  // "0" is held at the gate: Flush cannot have returned
  }
  sink.OpenGate();
  flusher.join();
  EXPECT_TRUE(flushed);
  EXPECT_EQ(written_at_flush, 2u);
  EXPECT_EQ(sink.written(), Range(0, 2));
}

TEST(WriteBehindQueueTest, PauseWaitsForTheBatchInFlight) {
  Sink sink;
  auto q = sink.MakeQueue(/*capacity=*/16, /*max_batch=*/1);
  sink.PushAndHoldFirst(q.get(), 2);
  std::thread pauser([&] { q->PauseForTesting(true); });
  sink.OpenGate();
  pauser.join();
  // Pausing returned once "0" was written; "1" may have been taken before
  // the pause, but from now on the writer takes nothing.
  const size_t n = sink.written().size();
  EXPECT_GE(n, 1u);
  q->Push(Item(2));
  EXPECT_EQ(sink.written().size(), n);
  EXPECT_EQ(q->GetStats().queued, 3u - n);
  q->PauseForTesting(false);
  q->Flush();
  EXPECT_EQ(sink.written(), Range(0, 3));
}

TEST(WriteBehindQueueTest, ShutdownDrainsEvenWhilePausedThenRefuses) {
  Sink sink;
  auto q = sink.MakeQueue(/*capacity=*/100, /*max_batch=*/3);
  q->PauseForTesting(true);
  for (int i = 0; i < 10; ++i) q->Push(Item(i));
  q->Shutdown();
  EXPECT_EQ(sink.written(), Range(0, 10));
  EXPECT_FALSE(q->Push(Item(10)));
  WriteBehindQueue::Stats s = q->GetStats();
  EXPECT_EQ(s.written, 10u);
  EXPECT_EQ(s.dropped, 1u);
  q->Flush();     // nothing pending
  q->Shutdown();  // idempotent
}

TEST(WriteBehindQueueTest, DestructorDrains) {
  Sink sink;
  {
    auto q = sink.MakeQueue(/*capacity=*/100, /*max_batch=*/4);
    q->PauseForTesting(true);
    for (int i = 0; i < 9; ++i) q->Push(Item(i));
  }
  EXPECT_EQ(sink.written(), Range(0, 9));
}

}  // namespace
}  // namespace inferd
