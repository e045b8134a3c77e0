#pragma once
// The JSON writer of the API's answers (rapidjson, into a string buffer),
// and the one helper every answer needs: a string of any bytes (rapidjson
// escapes it).

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <string_view>

namespace inferd::api::json {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

inline void Str(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

}  // namespace inferd::api::json
