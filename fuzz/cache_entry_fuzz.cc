// Fuzz target: the cache entry decoder (bytes read back from the disk tier
// or Redis) and the cached-response payload decoder inside it.
// Invariants: a decoded entry serializes back to the same bytes; a decoded
// payload encodes back to the same payload; any bytes wrapped as a payload
// survive Serialize -> Deserialize unchanged.
#include <cstdint>
#include <string>
#include <string_view>

#include "cache/cache_entry.h"
#include "fuzz_check.h"
#include "server/response_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace inferd;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto entry = CacheEntry::Deserialize(bytes);
  if (entry.ok()) {
    FUZZ_CHECK((*entry)->Serialize() == bytes);
  }
  // The same bytes as the payload of a well-formed entry: the payload
  // decoder sees arbitrary bytes behind a valid checksum.
  CacheEntry wrapped;
  wrapped.model = "m";
  wrapped.check = "C";
  wrapped.created_us = 1;
  wrapped.expires_us = 2;
  wrapped.payload.assign(bytes);
  auto round = CacheEntry::Deserialize(wrapped.Serialize());
  FUZZ_CHECK(round.ok());
  FUZZ_CHECK((*round)->payload == wrapped.payload && (*round)->model == "m");
  auto outputs = DecodeOutputs(*round);
  if (outputs.ok()) {
    FUZZ_CHECK(EncodeOutputs(*outputs) == wrapped.payload);
  }
  return 0;
}
