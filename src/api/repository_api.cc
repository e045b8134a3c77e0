// Triton's model repository extension: the index of every model version
// with its state, and explicit load and unload (docs/api.md).

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>

#include "api/api.h"
#include "api/auth.h"
#include "api/json_writer.h"
#include "api/repository_request.h"

namespace inferd::api {
namespace {

using http::PathParams;
using http::Request;
using http::Responder;
namespace bh = http::beast_http;
using json::Str;
using json::Writer;

// The index rows, of every model or of `model` only.
std::string IndexJson(ModelManager* models, bool ready_only, std::string_view model = {}) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartArray();
  for (const ModelState& s : models->List()) {
    if (ready_only && !s.ready()) continue;
    if (!model.empty() && s.name != model) continue;
    w.StartObject();
    w.Key("name");
    Str(w, s.name);
    if (s.version > 0) {
      w.Key("version");
      Str(w, std::to_string(s.version));
    }
    w.Key("state");
    Str(w, VersionStateName(s.state));
    w.Key("reason");
    Str(w, s.reason.message());
    w.EndObject();
  }
  w.EndArray();
  return sb.GetString();
}

std::string MemoryStatsJson(ModelManager* models) {
  const MemoryView view = models->Memory();
  const int64_t resident = ProcessResidentBytes();
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("process");
  w.StartObject();
  w.Key("resident_bytes");
  w.Int64(resident);
  int64_t attributed = 0;
  for (const VersionMemoryView& v : view.versions) {
    if (v.state == VersionState::kReady || v.state == VersionState::kUnloading)
      attributed += v.bytes;
  }
  w.Key("unattributed_bytes");  // the runtime itself, activations, buffers
  w.Int64(resident - attributed);
  w.EndObject();
  w.Key("budget");
  w.StartObject();
  w.Key("bytes");
  w.Int64(view.budget_bytes);
  w.Key("used_bytes");
  w.Int64(view.used_bytes);
  if (view.budget_bytes > 0) {
    w.Key("headroom_bytes");
    w.Int64(view.budget_bytes - view.used_bytes);
  }
  w.Key("deferred_loads");
  w.Int64(view.deferred_loads);
  w.EndObject();
  w.Key("models");
  w.StartArray();
  for (const VersionMemoryView& v : view.versions) {
    w.StartObject();
    w.Key("name");
    Str(w, v.name);
    w.Key("version");
    Str(w, std::to_string(v.version));
    w.Key("state");
    Str(w, VersionStateName(v.state));
    w.Key("reason");
    Str(w, v.reason.message());
    w.Key("bytes");
    w.Int64(v.bytes);
    w.Key("estimated");
    w.Bool(v.estimated);
    w.Key("weights_bytes");
    w.Int64(v.reported.weights_bytes);
    w.Key("packed_bytes");
    w.Int64(v.reported.packed_bytes);
    w.Key("reported");  // false: the backend cannot tell; bytes is the load's RSS change
    w.Bool(v.reported.known);
    w.Key("approximate");
    w.Bool(v.reported.approximate);
    w.Key("rss_delta_bytes");
    w.Int64(v.rss_delta_bytes);
    w.Key("rss_delta_exclusive");
    w.Bool(v.rss_delta_exclusive);
    w.Key("in_use");
    w.Int64(v.in_use);
    w.Key("idle_s");
    w.Double(v.idle_s);
    w.Key("pinned");
    w.Bool(v.pinned);
    w.Key("keep_alive_s");
    w.Int64(v.keep_alive_s);
    w.Key("concurrency");
    w.Int(v.concurrency);
    w.Key("shares_weights");
    w.Bool(v.shares_weights);
    w.Key("load_s");
    w.Double(v.load_s);
    w.Key("warmup_s");
    w.Double(v.warmup_s);
    w.Key("batch_buffers");
    w.StartObject();
    w.Key("idle");
    w.Int64(v.buffers.idle);
    w.Key("idle_bytes");
    w.Int64(v.buffers.idle_bytes);
    w.Key("in_use");
    w.Int64(v.buffers.in_use);
    w.Key("in_use_bytes");
    w.Int64(v.buffers.in_use_bytes);
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return sb.GetString();
}

}  // namespace

void RegisterRepositoryRoutes(http::Router* router, const ApiContext* ctx) {
  using V = http::Verb;
  router->Add(V::post, "/v2/repository/index",
              Guard(ctx, Access::kTenant, [ctx](Request&& req, const PathParams&, Responder r) {
                auto parsed = ParseRepositoryRequest(req.body(), RepositoryCall::kIndex);
                if (!parsed.ok()) {
                  r.Send(ErrorResponse(parsed.status()));
                  return;
                }
                r.Send(http::MakeJsonResponse(
                    bh::status::ok, IndexJson(ctx->server->models(), parsed->ready_only)));
              }));
  // Answers once every version has settled (a load takes up to seconds;
  // no thread waits for it).
  router->Add(
      V::post, "/v2/repository/models/{model}/load",
      Guard(ctx, Access::kAdmin, [ctx](Request&& req, const PathParams& p, Responder r) {
        auto parsed = ParseRepositoryRequest(req.body(), RepositoryCall::kLoad);
        if (!parsed.ok()) {
          r.Send(ErrorResponse(parsed.status()));
          return;
        }
        std::string model(p.Get("model"));
        ModelManager* models = ctx->server->models();
        models->Load(model, [models, model, r](Status st) {
          r.Send(st.ok() ? http::MakeJsonResponse(bh::status::ok, IndexJson(models, false, model))
                         : ErrorResponse(st));
        });
      }));
  router->Add(V::post, "/v2/repository/models/{model}/unload",
              Guard(ctx, Access::kAdmin, [ctx](Request&& req, const PathParams& p, Responder r) {
                auto parsed = ParseRepositoryRequest(req.body(), RepositoryCall::kUnload);
                if (!parsed.ok()) {
                  r.Send(ErrorResponse(parsed.status()));
                  return;
                }
                ModelManager* models = ctx->server->models();
                Status st = models->Unload(p.Get("model"));
                // (the rows below show UNLOADING until the last request ends)
                r.Send(st.ok() ? http::MakeJsonResponse(bh::status::ok,
                                                        IndexJson(models, false, p.Get("model")))
                               : ErrorResponse(st));
              }));
  router->Add(
      V::get, "/v2/memory/stats",
      Guard(ctx, Access::kTenant, [ctx](Request&&, const PathParams&, Responder r) {
        r.Send(http::MakeJsonResponse(bh::status::ok, MemoryStatsJson(ctx->server->models())));
      }));
}

}  // namespace inferd::api
