// The pipeline's wait for a model that is not loaded yet (lazy model
// control): stage 3' of InferenceServer::Submit, off the request thread.

#include "server/inference_server.h"

namespace inferd {
namespace {

// What became of a request's wait, for inferd_model_load_waits_total.
const char* WaitOutcome(const Status& st, bool refused) {
  if (refused) return "refused";
  if (st.ok()) return "served";
  if (st.code() == StatusCode::kDeadlineExceeded) return "timeout";
  if (st.code() == StatusCode::kCancelled) return "cancelled";
  return "failed";
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
  // Set by WhenReady, on this thread and before it answers, when no wait
  // was possible (the answer is then given inline); never written after.
  auto refused = std::make_shared<bool>(false);
  const Time waiting_since = options_.clock->Now();
  auto loaded = [this, held, refused, waiting_since](StatusOr<VersionLease> lease) {
    options_.metrics->lifecycle().OnLoadWait(held->pending->name,
                                             WaitOutcome(lease.status(), *refused),
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
  options_.models->WhenReady(*held->pending, deadline, ctx.cancel, std::move(loaded),
                             refused.get());
}

}  // namespace inferd
