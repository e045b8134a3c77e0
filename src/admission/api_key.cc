#include "admission/api_key.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <strings.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>

namespace inferd {

StatusOr<std::string> GenerateApiKey() {
  uint8_t bytes[32];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return InternalError(std::string("getrandom failed: ") + std::strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string key = "ik_";
  uint32_t acc = 0;
  int bits = 0;
  for (uint8_t b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      key += kAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) key += kAlphabet[(acc << (6 - bits)) & 63];
  OPENSSL_cleanse(bytes, sizeof(bytes));
  return key;
}

KeyDigest Sha256(std::string_view data) {
  KeyDigest d{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

std::string DigestHex(const KeyDigest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (size_t i = 0; i < digest.size(); ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 15];
  }
  return out;
}

bool ParseDigestHex(std::string_view hex, KeyDigest* out) {
  if (hex.size() != 64) return false;
  auto value = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < 32; ++i) {
    int hi = value(hex[2 * i]), lo = value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

StatusOr<std::string> CredentialFrom(std::string_view authorization, std::string_view api_key) {
  std::string_view bearer;
  std::string_view auth = Trim(authorization);
  constexpr std::string_view kScheme = "bearer ";
  if (auth.size() > kScheme.size() && strncasecmp(auth.data(), kScheme.data(), kScheme.size()) == 0)
    bearer = Trim(auth.substr(kScheme.size()));
  api_key = Trim(api_key);
  if (!bearer.empty() && !api_key.empty() && bearer != api_key) {
    return InvalidArgumentError(
        "the Authorization and X-Api-Key headers carry different keys: send one");
  }
  return std::string(bearer.empty() ? api_key : bearer);
}

bool DigestsEqual(const KeyDigest& a, const KeyDigest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace inferd
