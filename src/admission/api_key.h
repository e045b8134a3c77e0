#pragma once
// API keys: made from the operating system's random bytes, stored and
// compared only as SHA-256 digests (a key never sits in a config file or in
// memory structures in clear).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace inferd {

using KeyDigest = std::array<uint8_t, 32>;

// "ik_" + base64url (no padding) of 32 bytes from getrandom(2): 46 characters.
StatusOr<std::string> GenerateApiKey();

KeyDigest Sha256(std::string_view data);
std::string DigestHex(const KeyDigest& digest);  // 64 lower-case hex digits
// Parses 64 hex digits (lower or upper case); false if it is anything else.
bool ParseDigestHex(std::string_view hex, KeyDigest* out);

// The key a request presents, from its `Authorization` and `X-Api-Key`
// header values ("" when absent): `Bearer KEY` (the scheme in any case),
// else the X-Api-Key value, trimmed of spaces and tabs; "" for none
// (another Authorization scheme counts as none). Both with different keys:
// InvalidArgument.
StatusOr<std::string> CredentialFrom(std::string_view authorization, std::string_view api_key);

// Constant time in the contents: compares every byte whatever differs.
bool DigestsEqual(const KeyDigest& a, const KeyDigest& b);

}  // namespace inferd
