#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>
#include <charconv>
#include <cstdio>
#include <optional>

#include "api/api.h"
#include "api/kserve_codec.h"

namespace inferd::api {
namespace {

using http::PathParams;
using http::Request;
using http::Responder;
using http::Response;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;
namespace bh = http::beast_http;

void Str(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

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

Response ModelMetadata(const ModelVersion& mv, const std::vector<ModelState>& states) {
  const ModelConfig& c = mv.config();
  rapidjson::StringBuffer sb;
  Writer w(sb);
  w.StartObject();
  w.Key("name");
  Str(w, c.name);
  w.Key("versions");
  w.StartArray();
  for (const auto& s : states) {
    if (s.name == c.name && s.ready) Str(w, std::to_string(s.version));
  }
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

Response ModelConfigJson(const ModelVersion& mv) {
  const ModelConfig& c = mv.config();
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

// Cache-Control request directives: no-cache (skip the lookup, refresh the
// entry) and no-store (keep the response out of the cache).
struct CacheControl {
  bool no_cache = false;
  bool no_store = false;
};

CacheControl ParseCacheControl(boost::beast::string_view value) {
  CacheControl cc;
  if (value.empty()) return cc;
  std::string v(value.data(), value.size());
  for (char& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  size_t pos = 0;
  while (pos < v.size()) {
    size_t end = v.find(',', pos);
    if (end == std::string::npos) end = v.size();
    std::string token = v.substr(pos, end - pos);
    token.erase(0, token.find_first_not_of(" \t"));
    token.erase(token.find_last_not_of(" \t") + 1);
    if (token == "no-cache") cc.no_cache = true;
    if (token == "no-store") cc.no_store = true;
    pos = end + 1;
  }
  return cc;
}

// An infer response: the encoded body, its framing and the cache headers.
Response InferHttpResponse(std::string body, int64_t json_length, CacheStatus cache,
                           int64_t age_s) {
  Response res{bh::status::ok, 11};
  if (json_length >= 0) {
    res.set(bh::field::content_type, "application/octet-stream");
    res.set("Inference-Header-Content-Length", std::to_string(json_length));
  } else {
    res.set(bh::field::content_type, "application/json");
  }
  res.body() = std::move(body);
  if (cache != CacheStatus::kNone) {
    res.set("X-Inferd-Cache", CacheStatusName(cache));
    if (age_s >= 0) res.set(bh::field::age, std::to_string(age_s));
    if (cache == CacheStatus::kStale) res.set(bh::field::warning, "110 - \"Response is Stale\"");
  }
  return res;
}

// The exact-repeat memo keeps a response as "<json_length>\n<body>".
std::string MemoPayload(const kserve::EncodedResponse& enc) {
  std::string out = std::to_string(enc.json_length);
  out += '\n';
  out += enc.body;
  return out;
}

bool ParseMemoPayload(std::string_view payload, int64_t* json_length, std::string_view* body) {
  size_t nl = payload.find('\n');
  if (nl == std::string_view::npos) return false;
  auto [p, ec] = std::from_chars(payload.data(), payload.data() + nl, *json_length);
  if (ec != std::errc() || p != payload.data() + nl) return false;
  *body = payload.substr(nl + 1);
  return true;
}

// Inference-Header-Content-Length, -1 when absent. Repeated fields must
// agree: which one a proxy or the server honours must never matter.
StatusOr<int64_t> JsonLength(const Request& req) {
  int64_t json_length = -1;
  std::string_view first;
  auto [begin, end] = req.equal_range("Inference-Header-Content-Length");
  for (auto it = begin; it != end; ++it) {
    std::string_view hdr(it->value().data(), it->value().size());
    if (it != begin) {
      if (hdr != first) {
        return InvalidArgumentError("conflicting Inference-Header-Content-Length headers ('" +
                                    std::string(first) + "' and '" + std::string(hdr) + "')");
      }
      continue;
    }
    first = hdr;
    auto [p, ec] = std::from_chars(hdr.data(), hdr.data() + hdr.size(), json_length);
    if (ec != std::errc() || p != hdr.data() + hdr.size() || json_length < 0) {
      return InvalidArgumentError("invalid Inference-Header-Content-Length '" + std::string(hdr) +
                                  "'");
    }
  }
  return json_length;
}

void HandleInfer(const ApiContext* ctx, Request&& req, std::string model, std::string version,
                 Responder respond) {
  auto json_length_or = JsonLength(req);
  if (!json_length_or.ok()) {
    respond.Send(ErrorResponse(json_length_or.status()));
    return;
  }
  const int64_t json_length = *json_length_or;
  const CacheControl cc = ParseCacheControl(req[bh::field::cache_control]);
  // An exact repeat is answered from the memo; the lookup also resolves the
  // model, so an unknown model is a 404 whatever the body holds.
  char encoding[48];
  auto enc_len = json_length < 0
                     ? std::snprintf(encoding, sizeof(encoding), "kserve-v2;json")
                     : std::snprintf(encoding, sizeof(encoding), "kserve-v2;binary;%lld",
                                     static_cast<long long>(json_length));
  auto memo = ctx->server->LookupEncoded({model, version,
                                          std::string_view(encoding, static_cast<size_t>(enc_len)),
                                          req.body(), cc.no_cache});
  if (!memo.ok()) {
    respond.Send(ErrorResponse(memo.status()));
    return;
  }
  if (memo->hit) {
    int64_t memo_json_length = -1;
    std::string_view memo_body;
    if (ParseMemoPayload(memo->hit->payload, &memo_json_length, &memo_body)) {
      respond.Send(InferHttpResponse(std::string(memo_body), memo_json_length,
                                     CacheStatus::kHitMemory, memo->age_s));
      return;
    }
  }
  auto body = std::make_shared<const std::string>(std::move(req.body()));
  auto decoded = kserve::DecodeInferRequest(body, json_length, &memo->version->config());
  if (!decoded.ok()) {
    respond.Send(ErrorResponse(decoded.status()));
    return;
  }
  InferRequest request = std::move(decoded->request);
  request.no_cache = cc.no_cache;
  request.no_store = cc.no_store;
  request.model = std::move(model);
  request.version = std::move(version);
  auto prefs = std::make_shared<kserve::DecodedRequest>(std::move(decoded).value());
  std::optional<CacheKey> memo_key;
  if (!cc.no_store) memo_key = std::move(memo->key);
  auto resolved = std::move(memo->version);
  ctx->server->Infer(
      std::move(request),
      [ctx, prefs, respond, memo_key = std::move(memo_key),
       generation = memo->generation](StatusOr<InferResponse> result) {
        if (!result.ok()) {
          respond.Send(ErrorResponse(result.status()));
          return;
        }
        // On a backend thread: nothing may escape it (std::bad_alloc while
        // encoding a large response, say); the client gets a 500 instead.
        try {
          kserve::EncodedResponse enc = kserve::EncodeInferResponse(*result, *prefs);
          // Stored before answering, like the canonical entry: a client that
          // reads the answer and then invalidates must not see it stored after.
          if (memo_key && ctx->server->AdmitEncoded(*memo_key, *result)) {
            ctx->server->StoreEncoded(*memo_key, generation, *result, MemoPayload(enc));
          }
          respond.Send(InferHttpResponse(std::move(enc.body), enc.json_length, result->cache,
                                         result->age_s));
        } catch (const std::exception& e) {
          respond.Send(ErrorResponse(
              InternalError(std::string("encoding the response failed: ") + e.what())));
        }
      },
      std::move(resolved));
}

// Resolves {model}[/versions/{version}] for the metadata-style endpoints.
StatusOr<std::shared_ptr<ModelVersion>> Resolve(const ApiContext* ctx, const PathParams& p) {
  return ctx->server->models()->Get(p.Get("model"), p.Get("version"));
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
  }
  Response res = http::MakeErrorResponse(code, status.message());
  if (code == bh::status::service_unavailable) res.set(bh::field::retry_after, "1");
  return res;
}

void RegisterKServeRoutes(http::Router* router, const ApiContext* ctx) {
  using V = http::Verb;
  router->Add(V::get, "/v2", [ctx](Request&&, const PathParams&, Responder r) {
    std::string body = "{\"name\":\"inferd\",\"version\":\"" + ctx->version +
                       "\",\"extensions\":[\"binary_tensor_data\",\"model_configuration\"]}";
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
    auto mv = Resolve(ctx, p);
    r.Send(mv.ok() ? ModelMetadata(**mv, ctx->server->models()->List())
                   : ErrorResponse(mv.status()));
  };
  router->Add(V::get, "/v2/models/{model}", metadata);
  router->Add(V::get, "/v2/models/{model}/versions/{version}", metadata);
  auto ready = [ctx](Request&&, const PathParams& p, Responder r) {
    auto mv = Resolve(ctx, p);
    r.Send(mv.ok() ? http::MakeJsonResponse(bh::status::ok, "{\"ready\":true}")
                   : ErrorResponse(mv.status()));
  };
  router->Add(V::get, "/v2/models/{model}/ready", ready);
  router->Add(V::get, "/v2/models/{model}/versions/{version}/ready", ready);
  auto config = [ctx](Request&&, const PathParams& p, Responder r) {
    auto mv = Resolve(ctx, p);
    r.Send(mv.ok() ? ModelConfigJson(**mv) : ErrorResponse(mv.status()));
  };
  router->Add(V::get, "/v2/models/{model}/config", config);
  router->Add(V::get, "/v2/models/{model}/versions/{version}/config", config);
  router->Add(V::post, "/v2/models/{model}/infer",
              [ctx](Request&& req, const PathParams& p, Responder r) {
                HandleInfer(ctx, std::move(req), std::string(p.Get("model")), "", std::move(r));
              });
  router->Add(V::post, "/v2/models/{model}/versions/{version}/infer",
              [ctx](Request&& req, const PathParams& p, Responder r) {
                HandleInfer(ctx, std::move(req), std::string(p.Get("model")),
                            std::string(p.Get("version")), std::move(r));
              });
  router->Add(V::post, "/v2/repository/index", [ctx](Request&&, const PathParams&, Responder r) {
    rapidjson::StringBuffer sb;
    Writer w(sb);
    w.StartArray();
    for (const ModelState& s : ctx->server->models()->List()) {
      w.StartObject();
      w.Key("name");
      Str(w, s.name);
      if (s.version > 0) {
        w.Key("version");
        Str(w, std::to_string(s.version));
      }
      w.Key("state");
      Str(w, s.ready ? "READY" : "UNAVAILABLE");
      w.Key("reason");
      Str(w, s.reason.message());
      w.EndObject();
    }
    w.EndArray();
    r.Send(http::MakeJsonResponse(bh::status::ok, sb.GetString()));
  });
}

void RegisterCacheRoutes(http::Router* router, const ApiContext* ctx) {
  using V = http::Verb;
  // `fn(cache, params, responder)` answers, at once or later.
  auto with_cache = [ctx](auto fn) {
    return [ctx, fn](Request&&, const PathParams& p, Responder r) {
      ResponseCache* cache = ctx->server->cache();
      if (!cache) {
        r.Send(ErrorResponse(
            NotFoundError("the response cache is disabled (cache.memory.max_bytes = 0)")));
        return;
      }
      fn(cache, p, std::move(r));
    };
  };
  router->Add(V::get, "/v2/cache/stats",
              with_cache([](ResponseCache* c, const PathParams&, Responder r) {
                r.Send(http::MakeJsonResponse(bh::status::ok, c->StatsJson()));
              }));
  // Invalidations run on the cache's own threads: the disk and Redis tiers
  // may take a while and must not hold up an I/O thread.
  router->Add(V::delete_, "/v2/cache",
              with_cache([](ResponseCache* c, const PathParams&, Responder r) {
                c->ClearAsync([r](Status st) {
                  r.Send(st.ok() ? http::MakeJsonResponse(bh::status::ok, "{\"cleared\":true}")
                                 : ErrorResponse(st));
                });
              }));
  router->Add(
      V::delete_, "/v2/cache/models/{model}",
      with_cache([](ResponseCache* c, const PathParams& p, Responder r) {
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
}

}  // namespace inferd::api
