#include "bench/mix.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <set>
#include <type_traits>

namespace inferd::bench {
namespace {

std::string_view Trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

// 'text' for an error message, with control characters escaped.
std::string Quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\0') {
      out += "\\0";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    const size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsClassNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

bool IEquals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

bool HasControlChar(std::string_view s) {
  return std::string_view::npos != s.find_first_of(std::string_view("\r\n\0", 3));
}

template <typename T>
std::optional<T> ParseNumber(std::string_view text) {
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) return std::nullopt;
  }
  return value;
}

std::string FormatNumber(double v) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), v);
  return ec == std::errc() ? std::string(buffer, end) : std::to_string(v);
}

Status MixError(const std::string& message) { return InvalidArgumentError("--mix: " + message); }

// Applies one "key=value" setting to `c`; `where` prefixes errors.
Status ParseSetting(std::string_view setting, const std::string& where, MixClass& c) {
  const size_t eq = setting.find('=');
  if (eq == std::string_view::npos) {
    return MixError(where + "expected key=value, got " + Quote(setting));
  }
  const std::string_view key = Trim(setting.substr(0, eq));
  const std::string_view value = Trim(setting.substr(eq + 1));
  const std::string bad = where + "bad " + Quote(setting) + ": ";
  if (key == "rate") {
    const std::optional<double> rate = ParseNumber<double>(value);
    if (!rate || *rate <= 0) return MixError(bad + "rate must be a number > 0");
    c.rate = *rate;
  } else if (key == "priority") {
    const std::optional<int> priority = ParseNumber<int>(value);
    if (!priority || *priority < 0) return MixError(bad + "priority must be an integer >= 0");
    c.priority = *priority;
  } else if (key == "slo_ms") {
    const std::optional<double> slo = ParseNumber<double>(value);
    if (!slo || *slo <= 0) return MixError(bad + "slo_ms must be a number > 0");
    c.slo_ms = *slo;
  } else if (key == "api_key") {
    Status valid = CheckApiKey(value);
    if (!valid.ok()) return MixError(bad + valid.message());
    c.api_key = std::string(value);
  } else if (key == "header") {
    StatusOr<Header> header = ParseHeader(value);
    if (!header.ok()) return MixError(where + header.status().message());
    c.headers.push_back(*std::move(header));
  } else {
    return MixError(where + "unknown key " + Quote(key) + " in " + Quote(setting) +
                    " (keys: rate, priority, api_key, header, slo_ms)");
  }
  return Status::OK();
}

StatusOr<MixClass> ParseClass(std::string_view text) {
  text = Trim(text);
  if (text.empty()) return MixError("empty class (';' at the end or twice in a row)");
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return MixError("class " + Quote(text) + ": expected name:rate=<n>[,key=value...]");
  }
  MixClass c;
  c.name = std::string(Trim(text.substr(0, colon)));
  if (c.name.empty() || !std::all_of(c.name.begin(), c.name.end(), IsClassNameChar)) {
    return MixError("bad class name " + Quote(c.name) + " in " + Quote(text) +
                    ": use letters, digits, '_', '-' and '.'");
  }
  const std::string where = "class " + Quote(c.name) + ": ";
  const std::string_view settings = text.substr(colon + 1);
  if (Trim(settings).empty()) return MixError(where + "no settings (rate is required)");
  std::set<std::string_view> seen;
  for (std::string_view setting : Split(settings, ',')) {
    setting = Trim(setting);
    if (setting.empty()) return MixError(where + "empty setting (',' at the end or twice)");
    const std::string_view key = Trim(setting.substr(0, setting.find('=')));
    if (key != "header" && !seen.insert(key).second) {
      return MixError(where + "duplicate key " + Quote(key));
    }
    INFERD_RETURN_IF_ERROR(ParseSetting(setting, where, c));
  }
  if (c.rate <= 0) return MixError(where + "rate is required");
  return c;
}

}  // namespace

Status CheckApiKey(std::string_view key) {
  if (key.empty()) return InvalidArgumentError("the API key is empty");
  for (char c : key) {
    if (c <= ' ' || c > '~') {
      return InvalidArgumentError("the API key may hold only printable ASCII, no blanks");
    }
  }
  return Status::OK();
}

StatusOr<Header> ParseHeader(std::string_view text) {
  const std::string what = "header " + Quote(text) + ": ";
  if (HasControlChar(text)) return InvalidArgumentError(what + "CR, LF and NUL are not allowed");
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return InvalidArgumentError(what + "expected 'Name: value'");
  const std::string_view name = Trim(text.substr(0, colon));
  if (name.empty()) return InvalidArgumentError(what + "empty header name");
  if (!std::all_of(name.begin(), name.end(), IsTokenChar)) {
    return InvalidArgumentError(what + "a header name holds letters, digits and !#$%&'*+-.^_`|~");
  }
  if (IEquals(name, "Content-Length") || IEquals(name, "Transfer-Encoding")) {
    return InvalidArgumentError(what + "the load generator sets " + std::string(name) + " itself");
  }
  return Header{std::string(name), std::string(Trim(text.substr(colon + 1)))};
}

StatusOr<std::vector<Header>> ParseHeaders(const std::vector<std::string>& texts) {
  std::vector<Header> headers;
  for (const std::string& text : texts) {
    INFERD_ASSIGN_OR_RETURN(Header header, ParseHeader(text));
    headers.push_back(std::move(header));
  }
  return headers;
}

StatusOr<std::vector<MixClass>> ParseMix(std::string_view text) {
  if (Trim(text).empty()) return MixError("empty (expected name:rate=<n>[,key=value...];...)");
  std::vector<MixClass> classes;
  std::set<std::string> names;
  for (std::string_view part : Split(text, ';')) {
    INFERD_ASSIGN_OR_RETURN(MixClass c, ParseClass(part));
    if (!names.insert(c.name).second) return MixError("duplicate class name " + Quote(c.name));
    classes.push_back(std::move(c));
  }
  return classes;
}

std::string RedactedMix(const std::vector<MixClass>& classes) {
  std::string out;
  for (const MixClass& c : classes) {
    if (!out.empty()) out += ';';
    out += c.name + ":rate=" + FormatNumber(c.rate);
    if (c.priority) out += ",priority=" + std::to_string(*c.priority);
    if (c.api_key) out += ",api_key=***";
    for (const Header& h : c.headers) out += ",header=" + h.name + ":***";
    if (c.slo_ms > 0) out += ",slo_ms=" + FormatNumber(c.slo_ms);
  }
  return out;
}

RequestIdentity ClassIdentity(const RequestIdentity& defaults, const MixClass& mix_class) {
  RequestIdentity identity = defaults;
  if (mix_class.api_key) identity.api_key = *mix_class.api_key;
  if (mix_class.priority) identity.priority = *mix_class.priority;
  std::erase_if(identity.headers, [&](const Header& h) {
    return std::any_of(mix_class.headers.begin(), mix_class.headers.end(),
                       [&](const Header& own) { return IEquals(own.name, h.name); });
  });
  identity.headers.insert(identity.headers.end(), mix_class.headers.begin(),
                          mix_class.headers.end());
  return identity;
}

void ApplyIdentity(const RequestIdentity& identity, bool with_priority,
                   http::ClientRequest& request) {
  for (const Header& h : identity.headers) request.erase(h.name);
  for (const Header& h : identity.headers) request.insert(h.name, h.value);
  if (!identity.api_key.empty()) {
    request.set(http::beast_http::field::authorization, "Bearer " + identity.api_key);
  }
  if (with_priority && identity.priority > 0) {
    request.set("X-Inferd-Priority", std::to_string(identity.priority));
  }
}

}  // namespace inferd::bench
