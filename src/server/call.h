#pragma once
// InferenceServer::Call: one request's state on its way through the
// pipeline. Private to src/server/; shared by the pipeline's .cc files.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/cache_entry.h"
#include "server/inference_server.h"

namespace inferd {

struct InferenceServer::Call {
  std::unique_ptr<InferExchange> x;  // answered once, by Finish
  InferRequest request;              // its inputs are moved into `inputs`
  Time start;
  VersionLease mv;  // the version it runs on, in use until the call ends
  ModelMetrics* mm = nullptr;
  std::vector<Tensor> inputs;  // in the model's declared input order
  int64_t batch = 1;
  std::string signature;
  bool cached = false;  // the model caches its responses
  bool leader = false;  // leads the coalesced flight for `key`
  CacheKey key;
  // The exact-repeat memo's key for this request's bytes, if it may be memoized.
  std::optional<CacheKey> memo_key;
  uint64_t memo_generation = 0;
  uint64_t cancel_registration = 0;  // on x->context.cancel, while queued
  QueueKey queue_key;                // level and tenant in the model's queue
  const Tenant* tenant = nullptr;    // null: an in-process caller
  Time queue_timeout = Time::max();  // timeout_action "delay": runs late past it
  OverloadSlot slot;                 // given back before the answer
};

}  // namespace inferd
