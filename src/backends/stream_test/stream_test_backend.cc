// stream_test: an asynchronous, streaming backend for tests (and a small
// example of the plugin interface). A request's input "control" (INT32 [3])
// says what to do: {chunks, interval_ms, fail_after}. The stream emits
// chunks 0, 1, ... chunks-1 (output "index", INT32 [1]) one interval apart,
// then ends; with fail_after >= 0 it fails instead once that many chunks
// went out. It honours backpressure (waits for the sink's resume) and stops
// at the next tick once the request is cancelled. A request that is not
// streamed gets one result: index = chunks - 1.
//
// One timer thread per instance serves every stream in flight (no thread
// per request). The thread shares its state with the instance, so the
// instance may be destroyed on that thread (by the last request it
// completes) without joining itself.

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <thread>

#include "common/mutex.h"
#include "model/backend.h"

namespace inferd {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

Tensor Int32(int32_t v) {
  std::string bytes(sizeof(v), '\0');
  std::memcpy(bytes.data(), &v, sizeof(v));
  return Tensor::FromBytes(DataType::kInt32, {1}, std::move(bytes));
}

struct Stream {
  std::unique_ptr<Task> task;
  int32_t next = 0, chunks = 0, interval_ms = 0, fail_after = -1;
};

// Shared by the instance and its timer thread.
struct Timers {
  Mutex mu;
  CondVar cv;
  bool stop GUARDED_BY(mu) = false;
  std::multimap<SteadyTime, std::shared_ptr<Stream>> due GUARDED_BY(mu);

  void Schedule(SteadyTime at, std::shared_ptr<Stream> s) EXCLUDES(mu) {
    {
      MutexLock l(&mu);
      if (stop) return;  // the stream's task answers with an error when dropped
      due.emplace(at, std::move(s));
    }
    cv.Signal();
  }

  void Stop() EXCLUDES(mu) {
    {
      MutexLock l(&mu);
      stop = true;
    }
    cv.SignalAll();
  }

  // Waits for the next stream that is due; null once stopped.
  std::shared_ptr<Stream> NextDue() EXCLUDES(mu) {
    MutexLock l(&mu);
    while (!stop) {
      if (due.empty()) {
        cv.Wait(&mu);
        continue;
      }
      auto first = due.begin();
      if (first->first > std::chrono::steady_clock::now()) {
        cv.WaitUntil(&mu, first->first);
        continue;
      }
      std::shared_ptr<Stream> s = std::move(first->second);
      due.erase(first);
      return s;
    }
    return nullptr;
  }

  // What was still due when the thread stopped.
  std::multimap<SteadyTime, std::shared_ptr<Stream>> TakeLeft() EXCLUDES(mu) {
    MutexLock l(&mu);
    return std::move(due);
  }

  // One tick of a stream, outside the lock.
  static void Tick(const std::shared_ptr<Timers>& self, std::shared_ptr<Stream> s) {
    Task& task = *s->task;
    if (task.cancelled()) {
      task.Complete(task.cancel_reason());
      return;
    }
    if (s->fail_after >= 0 && s->next >= s->fail_after) {
      task.Complete(InternalError("stream_test: failing as asked after " +
                                  std::to_string(s->fail_after) + " chunk(s)"));
      return;
    }
    if (s->next >= s->chunks) {
      task.Complete(std::vector<Tensor>{});  // the end of the stream
      return;
    }
    const int32_t index = s->next++;
    const auto interval = std::chrono::milliseconds(s->interval_ms);
    std::weak_ptr<Timers> weak = self;
    auto resume = [weak, s, interval] {
      if (auto t = weak.lock()) t->Schedule(std::chrono::steady_clock::now() + interval, s);
    };
    if (task.Chunk({Int32(index)}, resume)) {
      self->Schedule(std::chrono::steady_clock::now() + interval, std::move(s));
    }  // else: paused until the consumer calls resume
  }

  static void Loop(std::shared_ptr<Timers> self) {
    while (auto s = self->NextDue()) Tick(self, std::move(s));
    for (auto& [at, s] : self->TakeLeft())
      s->task->Complete(UnavailableError("stream_test: shutting down"));
  }
};

class StreamTestInstance : public BackendInstance {
 public:
  StreamTestInstance() : timers_(std::make_shared<Timers>()) {
    thread_ = std::thread(Timers::Loop, timers_);
  }
  ~StreamTestInstance() override {
    timers_->Stop();
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // released by our own thread: it sees `stop` and ends
    } else {
      thread_.join();
    }
  }

  bool asynchronous() const override { return true; }

  void Start(std::unique_ptr<Task> task) override {
    const auto& in = task->inputs();
    if (in.size() != 1 || in[0].dtype() != DataType::kInt32 || in[0].byte_size() != 12) {
      task->Complete(InvalidArgumentError("stream_test takes one INT32 [3] input"));
      return;
    }
    int32_t v[3];
    std::memcpy(v, in[0].data(), sizeof(v));
    if (v[0] < 0 || v[0] > 100000 || v[1] < 0 || v[1] > 60000) {
      task->Complete(InvalidArgumentError(
          "stream_test: chunks must be in [0, 100000] and interval_ms in [0, 60000]"));
      return;
    }
    if (!task->streaming()) {
      task->Complete(std::vector<Tensor>{Int32(v[0] - 1)});
      return;
    }
    auto s = std::make_shared<Stream>();
    s->chunks = v[0];
    s->interval_ms = v[1];
    s->fail_after = v[2];
    s->task = std::move(task);
    timers_->Schedule(std::chrono::steady_clock::now(), std::move(s));
  }

 private:
  std::shared_ptr<Timers> timers_;
  std::thread thread_;
};

}  // namespace
}  // namespace inferd

extern "C" __attribute__((visibility("default"))) uint32_t inferd_backend_api_version() {
  return inferd::kBackendApiVersion;
}

extern "C" __attribute__((visibility("default"))) bool inferd_backend_register(
    inferd::BackendModelFactory* factory) {
  *factory = inferd::PerInstance([](const inferd::BackendInstanceSpec&)
                                     -> inferd::StatusOr<std::unique_ptr<inferd::BackendInstance>> {
    return std::unique_ptr<inferd::BackendInstance>(new inferd::StreamTestInstance());
  });
  return true;
}
