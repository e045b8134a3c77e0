#include "trace_reader.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <unordered_map>

namespace inferd {
namespace {

// Renumbers `raw` ids densely into t->keys / t->ids, takes each key's size
// from its last request (`raw_sizes`, per request, may be empty) and fills
// t->next with a backward pass.
void Finish(const std::vector<uint64_t>& raw, const std::vector<uint32_t>& raw_sizes, Trace* t) {
  const size_t n = raw.size();
  std::unordered_map<uint64_t, uint32_t> dense;
  dense.reserve(n / 4 + 16);
  t->keys.resize(n);
  for (size_t i = 0; i < n; ++i) {
    auto [it, added] = dense.try_emplace(raw[i], static_cast<uint32_t>(t->ids.size()));
    if (added) t->ids.push_back(raw[i]);
    t->keys[i] = it->second;
  }
  if (!raw_sizes.empty()) {
    t->sizes.assign(t->distinct(), 0);
    for (size_t i = 0; i < n; ++i) t->sizes[t->keys[i]] = raw_sizes[i];  // last one wins
    t->distinct_bytes = 0;
    for (uint32_t s : t->sizes) t->distinct_bytes += s;
    t->requested_bytes = 0;
    for (uint32_t k : t->keys) t->requested_bytes += t->sizes[k];
  }
  t->next.assign(n, kNever);
  std::vector<uint32_t> later(t->distinct(), kNever);  // next request of each key
  for (size_t i = n; i-- > 0;) {
    t->next[i] = later[t->keys[i]];
    later[t->keys[i]] = static_cast<uint32_t>(i);
  }
}

uint64_t LoadLe(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint64_t LoadBe(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

// Samples ranks 0..n-1 with P(r) proportional to 1 / (r + 1)^alpha.
class ZipfSampler {
 public:
  ZipfSampler(size_t n, double alpha) : cdf_(n) {
    double sum = 0;
    for (size_t r = 0; r < n; ++r) cdf_[r] = (sum += std::pow(static_cast<double>(r + 1), -alpha));
    for (double& c : cdf_) c /= sum;
  }
  template <typename Rng>
  size_t operator()(Rng& rng) {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return std::min<size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin(),
                            cdf_.size() - 1);
  }

 private:
  std::vector<double> cdf_;
};

}  // namespace

bool ParseTraceFormat(std::string_view text, TraceFormat* format) {
  if (text == "oracle") {
    *format = TraceFormat::kOracle;
  } else if (text == "be64") {
    *format = TraceFormat::kBe64;
  } else if (text == "be32") {
    *format = TraceFormat::kBe32;
  } else {
    return false;
  }
  return true;
}

uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

StatusOr<Trace> LoadTrace(const std::string& path, TraceFormat format, std::string name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(path + ": cannot open");
  std::vector<unsigned char> data((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  if (in.bad()) return InternalError(path + ": read error");
  const size_t record = format == TraceFormat::kOracle ? 24 : format == TraceFormat::kBe64 ? 8 : 4;
  if (data.empty()) return InvalidArgumentError(path + ": empty trace");
  if (data.size() % record != 0) {
    return InvalidArgumentError(path + ": " + std::to_string(data.size()) +
                                " bytes is not a multiple of the " + std::to_string(record) +
                                "-byte record; wrong --format, or a truncated file?");
  }
  const size_t n = data.size() / record;
  if (n >= kNever) return InvalidArgumentError(path + ": too many requests");
  Trace t;
  t.name = std::move(name);
  std::vector<uint64_t> raw(n);
  std::vector<uint32_t> raw_sizes;
  std::vector<int64_t> oracle_next;
  if (format == TraceFormat::kOracle) {
    raw_sizes.resize(n);
    oracle_next.resize(n);
  }
  for (size_t i = 0; i < n; ++i) {
    const unsigned char* p = data.data() + i * record;
    switch (format) {
      case TraceFormat::kOracle:
        raw[i] = LoadLe(p + 4, 8);
        raw_sizes[i] = static_cast<uint32_t>(LoadLe(p + 12, 4));
        oracle_next[i] = static_cast<int64_t>(LoadLe(p + 16, 8));
        break;
      case TraceFormat::kBe64:
        raw[i] = LoadBe(p, 8);
        break;
      case TraceFormat::kBe32:
        raw[i] = LoadBe(p, 4);
        break;
    }
  }
  data = {};
  Finish(raw, raw_sizes, &t);
  // Cross-check: oracleGeneral stores the next request as a 1-based index
  // (-1, or a huge value, for never). A mismatch means a misread file.
  for (size_t i = 0; i < oracle_next.size(); ++i) {
    const int64_t o = oracle_next[i];
    const bool never = o < 0 || o >= static_cast<int64_t>(n) + 1;
    const bool ok = t.next[i] == kNever ? never : o == static_cast<int64_t>(t.next[i]) + 1;
    if (!ok) {
      return InvalidArgumentError(path + ": request " + std::to_string(i) +
                                  ": the next-access field " + std::to_string(o) +
                                  " disagrees with the trace; not an oracleGeneral file?");
    }
  }
  return t;
}

Trace MakeZipfTrace(const ZipfSpec& spec, double alpha, bool scans) {
  Trace t;
  t.name = "zipf-" + std::string(alpha == 1.0 ? "1.0" : "0.8") + (scans ? "+scans" : "");
  ZipfSampler zipf(spec.keys, alpha);
  std::mt19937_64 rng(spec.seed ^ static_cast<uint64_t>(alpha * 1000) ^ (scans ? 0x5CA9 : 0));
  std::vector<uint64_t> raw;
  raw.reserve(spec.requests);
  uint64_t next_scan_id = 0;
  const uint64_t scan_tag = 1ull << 63;  // scan ids never equal a Zipf id's Mix
  for (size_t i = 0; i < spec.requests; ++i) {
    bool in_scan = scans && (i / spec.scan_length) % 5 == 4;
    raw.push_back(in_scan ? (scan_tag | next_scan_id++) : (Mix(zipf(rng)) & ~scan_tag));
  }
  Finish(raw, {}, &t);
  return t;
}

}  // namespace inferd
