#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>
#include <charconv>
#include <cstdio>
#include <optional>

#include "api/api.h"
#include "api/auth.h"
#include "api/json_writer.h"
#include "api/kserve_codec.h"
#include "api/kserve_infer.h"

namespace inferd::api {
namespace {

using http::PathParams;
using http::Request;
using http::Responder;
using http::Response;
namespace bh = http::beast_http;
using json::Str;
using json::Writer;

void WriteTensorMeta(Writer& w, const TensorConfig& t, const ModelConfig& c, bool config_style) {
  w.StartObject();
  w.Key("name");
  Str(w, t.name);
  w.Key("datatype");
  Str(w, DataTypeName(t.dtype));
  w.Key(config_style ? "dims" : "shape");
  w.StartArray();
  for (int64_t d : config_style ? t.dims : c.FullShape(t)) w.Int64(d);
  w.EndArray();
  w.EndObject();
}

Response ModelMetadata(const ModelConfig& c, const std::vector<int64_t>& versions) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("name");
  Str(w, c.name);
  w.Key("versions");
  w.StartArray();
  for (int64_t v : versions) Str(w, std::to_string(v));
  w.EndArray();
  w.Key("platform");
  Str(w, c.backend == "torchscript" ? "pytorch_libtorch" : c.backend);
  w.Key("inputs");
  w.StartArray();
  for (const auto& t : c.inputs) WriteTensorMeta(w, t, c, false);
  w.EndArray();
  w.Key("outputs");
  w.StartArray();
  for (const auto& t : c.outputs) WriteTensorMeta(w, t, c, false);
  w.EndArray();
  w.EndObject();
  return http::MakeJsonResponse(bh::status::ok, sb.GetString());
}

Response ModelConfigJson(const ModelConfig& c) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("name");
  Str(w, c.name);
  w.Key("backend");
  Str(w, c.backend);
  w.Key("max_batch_size");
  w.Int64(c.max_batch_size);
  w.Key("instance_count");
  w.Int64(c.instance_count);
  w.Key("max_queue_size");
  w.Int64(c.max_queue_size);
  w.Key("input");
  w.StartArray();
  for (const auto& t : c.inputs) WriteTensorMeta(w, t, c, true);
  w.EndArray();
  w.Key("output");
  w.StartArray();
  for (const auto& t : c.outputs) WriteTensorMeta(w, t, c, true);
  w.EndArray();
  w.Key("dynamic_batching");
  w.StartObject();
  w.Key("enabled");
  w.Bool(c.dynamic_batching.enabled);
  w.Key("max_queue_delay_us");
  w.Int64(c.dynamic_batching.max_queue_delay_us);
  w.Key("preferred_batch_sizes");
  w.StartArray();
  for (int64_t p : c.dynamic_batching.preferred_batch_sizes) w.Int64(p);
  w.EndArray();
  w.EndObject();
  if (c.keep_alive_s) {
    w.Key("keep_alive_s");
    w.Int64(*c.keep_alive_s);
  }
  w.Key("pin");
  w.Bool(c.pin);
  w.Key("model_transaction_policy");  // Triton's name for streaming models
  w.StartObject();
  w.Key("decoupled");
  w.Bool(c.decoupled);
  w.EndObject();
  w.Key("parameters");
  w.StartObject();
  for (const auto& [k, v] : c.parameters) {
    w.Key(k.c_str());
    Str(w, v);
  }
  w.EndObject();
  w.EndObject();
  return http::MakeJsonResponse(bh::status::ok, sb.GetString());
}

// The registered config of {model}[/versions/{version}], loaded or not:
// reading metadata never loads a model.
StatusOr<std::shared_ptr<const ModelConfig>> Resolve(const ApiContext* ctx, const PathParams& p) {
  return ctx->server->models()->Config(p.Get("model"), p.Get("version"));
}

}  // namespace

http::Response ErrorResponse(const Status& status) {
  bh::status code = bh::status::internal_server_error;
  switch (status.code()) {
    case StatusCode::kOk:
      code = bh::status::ok;
      break;
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
      code = bh::status::bad_request;
      break;
    case StatusCode::kNotFound:
      code = bh::status::not_found;
      break;
    case StatusCode::kResourceExhausted:
    case StatusCode::kUnavailable:
    case StatusCode::kCancelled:
      code = bh::status::service_unavailable;
      break;
    case StatusCode::kDeadlineExceeded:
      code = bh::status::gateway_timeout;
      break;
    case StatusCode::kUnimplemented:
      code = bh::status::not_implemented;
      break;
    case StatusCode::kInternal:
      code = bh::status::internal_server_error;
      break;
    case StatusCode::kUnauthenticated:
      code = bh::status::unauthorized;
      break;
    case StatusCode::kPermissionDenied:
      code = bh::status::forbidden;
      break;
    case StatusCode::kRateLimited:
      code = bh::status::too_many_requests;
      break;
  }
  Response res = http::MakeErrorResponse(code, status.message());
  if (code == bh::status::unauthorized)
    res.set(bh::field::www_authenticate, "Bearer realm=\"inferd\"");
  if (code == bh::status::service_unavailable || code == bh::status::too_many_requests)
    res.set(bh::field::retry_after, "1");
  return res;
}

void RegisterKServeRoutes(http::Router* router, const ApiContext* ctx) {
  using V = http::Verb;
  router->Add(V::get, "/v2", [ctx](Request&&, const PathParams&, Responder r) {
    std::string body = "{\"name\":\"inferd\",\"version\":\"" + ctx->version +
                       "\",\"extensions\":[\"binary_tensor_data\",\"model_configuration\","
                       "\"model_repository\"]}";
    r.Send(http::MakeJsonResponse(bh::status::ok, std::move(body)));
  });
  router->Add(V::get, "/v2/health/live", [](Request&&, const PathParams&, Responder r) {
    r.Send(http::MakeJsonResponse(bh::status::ok, "{\"live\":true}"));
  });
  router->Add(V::get, "/v2/health/ready", [ctx](Request&&, const PathParams&, Responder r) {
    if (ctx->server->models()->IsServing()) {
      r.Send(http::MakeJsonResponse(bh::status::ok, "{\"ready\":true}"));
    } else {
      r.Send(ErrorResponse(UnavailableError("the server is shutting down")));
    }
  });
  auto metadata = [ctx](Request&&, const PathParams& p, Responder r) {
    auto config = Resolve(ctx, p);
    r.Send(config.ok() ? ModelMetadata(**config, ctx->server->models()->Versions(p.Get("model")))
                       : ErrorResponse(config.status()));
  };
  router->Add(V::get, "/v2/models/{model}", Guard(ctx, Access::kTenant, metadata));
  router->Add(V::get, "/v2/models/{model}/versions/{version}",
              Guard(ctx, Access::kTenant, metadata));
  auto ready = [ctx](Request&&, const PathParams& p, Responder r) {
    Status st = ctx->server->models()->Ready(p.Get("model"), p.Get("version"));
    r.Send(st.ok() ? http::MakeJsonResponse(bh::status::ok, "{\"ready\":true}")
                   : ErrorResponse(st));
  };
  router->Add(V::get, "/v2/models/{model}/ready", Guard(ctx, Access::kTenant, ready));
  router->Add(V::get, "/v2/models/{model}/versions/{version}/ready",
              Guard(ctx, Access::kTenant, ready));
  auto config = [ctx](Request&&, const PathParams& p, Responder r) {
    auto config = Resolve(ctx, p);
    r.Send(config.ok() ? ModelConfigJson(**config) : ErrorResponse(config.status()));
  };
  router->Add(V::get, "/v2/models/{model}/config", Guard(ctx, Access::kTenant, config));
  router->Add(V::get, "/v2/models/{model}/versions/{version}/config",
              Guard(ctx, Access::kTenant, config));
  router->Add(V::post, "/v2/models/{model}/infer",
              [ctx](Request&& req, const PathParams& p, Responder r) {
                HandleInfer(ctx, std::move(req), std::string(p.Get("model")), "", std::move(r));
              });
  router->Add(V::post, "/v2/models/{model}/versions/{version}/infer",
              [ctx](Request&& req, const PathParams& p, Responder r) {
                HandleInfer(ctx, std::move(req), std::string(p.Get("model")),
                            std::string(p.Get("version")), std::move(r));
              });
  RegisterRepositoryRoutes(router, ctx);
}

void RegisterCacheRoutes(http::Router* router, const ApiContext* ctx) {
  using V = http::Verb;
  // `fn(cache, params, responder)` answers, at once or later.
  auto with_cache = [ctx](Access access, auto fn) {
    return Guard(ctx, access, [ctx, fn](Request&&, const PathParams& p, Responder r) {
      ResponseCache* cache = ctx->server->cache();
      if (!cache) {
        r.Send(ErrorResponse(
            NotFoundError("the response cache is disabled (cache.memory.max_bytes = 0)")));
        return;
      }
      fn(cache, p, std::move(r));
    });
  };
  router->Add(V::get, "/v2/cache/stats",
              with_cache(Access::kTenant, [](ResponseCache* c, const PathParams&, Responder r) {
                r.Send(http::MakeJsonResponse(bh::status::ok, c->StatsJson()));
              }));
  // Invalidations run on the cache's own threads: the disk and Redis tiers
  // may take a while and must not hold up an I/O thread.
  router->Add(V::delete_, "/v2/cache",
              with_cache(Access::kAdmin, [](ResponseCache* c, const PathParams&, Responder r) {
                c->ClearAsync([r](Status st) {
                  r.Send(st.ok() ? http::MakeJsonResponse(bh::status::ok, "{\"cleared\":true}")
                                 : ErrorResponse(st));
                });
              }));
  router->Add(
      V::delete_, "/v2/cache/models/{model}",
      with_cache(Access::kAdmin, [](ResponseCache* c, const PathParams& p, Responder r) {
        std::string body = "{\"cleared\":true,\"model\":\"";
        http::AppendJsonEscaped(&body, p.Get("model"));
        body += "\"}";
        c->InvalidateModelAsync(
            std::string(p.Get("model")), [r, body = std::move(body)](Status st) {
              r.Send(st.ok() ? http::MakeJsonResponse(bh::status::ok, body) : ErrorResponse(st));
            });
      }));
}

void RegisterAdminRoutes(http::Router* router, const ApiContext* ctx) {
  router->Add(http::Verb::get, "/metrics", [ctx](Request&&, const PathParams&, Responder r) {
    ctx->server->CollectGauges();
    Response res{bh::status::ok, 11};
    res.set(bh::field::content_type, std::string(kPrometheusTextContentType));
    res.body() = ctx->registry->ExposeText();
    r.Send(std::move(res));
  });
  RegisterTenantAdminRoute(router, ctx);
}

}  // namespace inferd::api
