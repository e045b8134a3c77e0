#pragma once
// ASCII helpers shared by the HTTP message types (header field names).

#include <string_view>

namespace inferd::http {

// Case-insensitive ASCII equality (field names, tokens).
inline bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const unsigned char x = static_cast<unsigned char>(a[i]) | 0x20;
    if (x != (static_cast<unsigned char>(b[i]) | 0x20)) return false;
    // `| 0x20` folds only letters correctly: tell apart the other pairs it
    // merges ('@' and '`', '[' and '{', ...).
    if (a[i] != b[i] && !(x >= 'a' && x <= 'z')) return false;
  }
  return true;
}

enum class EmptyElements { kSkip, kReport };

// Calls fn(element) for each element of the comma-separated list `value`,
// trimmed of spaces and tabs; empty elements are skipped (RFC 9110 5.6.1),
// or reported too, for a caller that refuses them.
template <typename Fn>
void ForEachListElement(std::string_view value, Fn&& fn,
                        EmptyElements empty = EmptyElements::kSkip) {
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view t = value.substr(pos, comma - pos);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (!t.empty() || empty == EmptyElements::kReport) fn(t);
    pos = comma + 1;
  }
}

}  // namespace inferd::http
