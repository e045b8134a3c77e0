// The pipeline's wait for a model that is not loaded yet (lazy model
// control): stage 3' of InferenceServer::Submit, off the request thread.

#include <atomic>
#include <thread>

#include "server/inference_server.h"

namespace inferd {
namespace {

// What became of a request's wait, for inferd_model_load_waits_total. An
// answer given before WhenReady returned, on the requesting thread, and
// neither a cancellation nor a deadline, refused the wait (too many
// waiters, no room under the budget, shutting down).
const char* WaitOutcome(const Status& st, bool inline_answer) {
  if (st.ok()) return "served";
  if (st.code() == StatusCode::kDeadlineExceeded) return "timeout";
  if (st.code() == StatusCode::kCancelled) return "cancelled";
  return inline_answer ? "refused" : "failed";
}

}  // namespace

void InferenceServer::WaitForModel(Admitted a) {
  // std::function needs a copyable callable: the request waits in a holder.
  auto held = std::make_shared<Admitted>(std::move(a));
  const RequestContext& ctx = held->x->context;
  // The wait ends at the request's deadline, or at the server's default
  // timeout from its arrival; the manager also caps it (model_load_wait_ms).
  Time deadline = ctx.deadline;
  if (options_.default_timeout > Duration::zero())
    deadline = std::min(deadline, held->start + options_.default_timeout);
  // Set once WhenReady has returned; with the caller's thread id it tells an
  // inline refusal from an answer after a wait.
  auto returned = std::make_shared<std::atomic<bool>>(false);
  const Time waiting_since = options_.clock->Now();
  auto loaded = [this, held, returned, waiting_since,
                 caller = std::this_thread::get_id()](StatusOr<VersionLease> lease) {
    const bool inline_answer =
        !returned->load(std::memory_order_acquire) && std::this_thread::get_id() == caller;
    options_.metrics->lifecycle().OnLoadWait(held->pending->name,
                                             WaitOutcome(lease.status(), inline_answer),
                                             Seconds(options_.clock->Now() - waiting_since));
    // On a loader thread, the lifecycle thread, a cancelling thread or
    // inline: go on through post, off that thread.
    std::function<void()> resume =
        [this, held, lease = std::make_shared<StatusOr<VersionLease>>(std::move(lease))]() mutable {
          Admitted& h = *held;
          if (!lease->ok()) {
            Reply(*h.x, h.mm, h.start, lease->status());
            return;
          }
          h.mv = std::move(*lease).value();
          h.pending.reset();
          AfterLimits(std::move(h));
        };
    if (options_.post) {
      options_.post(std::move(resume));
    } else {
      resume();
    }
  };
  options_.models->WhenReady(*held->pending, deadline, ctx.cancel, std::move(loaded));
  returned->store(true, std::memory_order_release);
}

}  // namespace inferd
