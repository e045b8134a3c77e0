// What gzip costs and saves on inferd's responses (issue 7, item 4):
// GzipCompress at levels 1 and 6 on an infer response's JSON (resnet18's
// 1000 logits; a 64x64 RGB image as FP32 values) and on its binary form
// (raw FP32). Reports bytes/s of input and the compressed share; the
// break-even link speed is input_bytes * (1 - share) / compress_time.
//
//   build/bench/gzip_bench --benchmark_min_time=0.5

#include <benchmark/benchmark.h>

#include <charconv>
#include <cstring>
#include <random>
#include <string>

#include "http/response_encoding.h"

namespace {

// `n` float values of the shape a classifier or an image model returns,
// as the JSON encoder writes them (shortest round-trip text) or as bytes.
std::string Payload(size_t n, bool json, bool logits) {
  std::mt19937 rng(7);
  std::normal_distribution<float> logit(0.f, 3.f);
  std::uniform_real_distribution<float> pixel(0.f, 1.f);
  std::string out = json ? "{\"model_name\":\"m\",\"model_version\":\"1\",\"outputs\":[{\"name\":"
                           "\"output\",\"datatype\":\"FP32\",\"shape\":[1," +
                               std::to_string(n) + "],\"data\":["
                         : "";
  for (size_t i = 0; i < n; ++i) {
    float v = logits ? logit(rng) : pixel(rng);
    if (json) {
      char buf[32];
      auto r = std::to_chars(buf, buf + sizeof(buf), v);
      if (i) out += ',';
      out.append(buf, r.ptr);
    } else {
      char b[4];
      std::memcpy(b, &v, 4);
      out.append(b, 4);
    }
  }
  if (json) out += "]}]}";
  return out;
}

void BM_Gzip(benchmark::State& state) {
  const bool json = state.range(0) != 0;
  const bool logits = state.range(1) != 0;
  const int level = static_cast<int>(state.range(2));
  std::string in = Payload(logits ? 1000 : 3 * 64 * 64, json, logits);
  std::string out;
  for (auto _ : state) {
    inferd::http::GzipCompress(in, level, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * in.size()));
  state.counters["in_bytes"] = static_cast<double>(in.size());
  state.counters["out_share"] = static_cast<double>(out.size()) / static_cast<double>(in.size());
}
BENCHMARK(BM_Gzip)
    ->ArgNames({"json", "logits", "level"})
    ->Args({1, 1, 1})
    ->Args({1, 1, 6})
    ->Args({1, 0, 1})
    ->Args({1, 0, 6})
    ->Args({0, 1, 1})
    ->Args({0, 0, 1});

}  // namespace

BENCHMARK_MAIN();
