// The pipeline's wait for a global rate-limit decision (rate_limits.redis_url):
// stage 1b' of InferenceServer::Submit, off the request thread.

#include "server/inference_server.h"

namespace inferd {

void InferenceServer::CheckGlobalLimits(Admitted a) {
  // std::function needs a copyable callable: the request waits in a holder.
  auto held = std::make_shared<Admitted>(std::move(a));
  auto decided = [this, held](Status st) {
    // On the Redis thread (or inline): go on through post, off that thread.
    std::function<void()> resume = [this, held, st = std::move(st)]() mutable {
      AfterGlobalLimits(std::move(*held), std::move(st));
    };
    if (options_.post) {
      options_.post(std::move(resume));
    } else {
      resume();
    }
  };
  const Admitted& h = *held;
  options_.admission->CheckGlobal(*h.tenant, h.config().name, &h.x->admission, std::move(decided));
}

void InferenceServer::AfterGlobalLimits(Admitted a, Status st) {
  if (!st.ok()) {
    Decide(a.mm, a.tenant, a.queue_key, Decision::kRateLimited);
    Reply(*a.x, a.mm, a.start, std::move(st));
    return;
  }
  AfterAdmission(std::move(a));
}

}  // namespace inferd
