// Triton's model repository extension: the index of every model version
// with its state, and explicit load and unload (docs/api.md).

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string>

#include "api/api.h"
#include "api/auth.h"
#include "api/repository_request.h"

namespace inferd::api {
namespace {

using http::PathParams;
using http::Request;
using http::Responder;
namespace bh = http::beast_http;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void Str(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

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
                r.Send(st.ok() ? http::MakeJsonResponse(bh::status::ok,
                                                        IndexJson(models, false, p.Get("model")))
                               : ErrorResponse(st));
              }));
}

}  // namespace inferd::api
