#include "http/request.h"

#include <algorithm>
#include <stdexcept>

#include "http/ascii.h"

namespace inferd::http {
namespace {

// Whether the comma-separated list `value` holds `token` (case-insensitive,
// optional whitespace around elements).
bool HasToken(std::string_view value, std::string_view token) {
  bool found = false;
  ForEachListElement(value, [&](std::string_view t) { found = found || IEquals(t, token); });
  return found;
}

}  // namespace

Request::Request(Verb method, std::string_view target, unsigned version)
    : method_(method), version_(version) {
  target_ = Store(target);
}

std::string_view Request::FieldName(Field f) {
  auto s = boost::beast::http::to_string(f);
  return {s.data(), s.size()};
}

Request::Span Request::Store(std::string_view s) {
  if (text_.size() + s.size() > UINT32_MAX)
    throw std::length_error("HTTP request header too large");
  // Never inside the string object (short-string storage): views into the
  // request must survive moving it.
  if (text_.capacity() < std::max<size_t>(text_.size() + s.size(), 16)) {
    // Room for a typical header at once (one block: capacity + its NUL).
    const size_t want = std::max<size_t>(kTextBlock - 1, 2 * (text_.size() + s.size()));
    if (s.data() >= text_.data() && s.data() < text_.data() + text_.size()) {
      const size_t from = static_cast<size_t>(s.data() - text_.data());
      text_.reserve(want);
      s = std::string_view(text_.data() + from, s.size());
    } else {
      text_.reserve(want);
    }
  }
  Span span{static_cast<uint32_t>(text_.size()), static_cast<uint32_t>(s.size())};
  text_.append(s);  // within capacity: a view into text_ stays valid
  return span;
}

std::string_view Request::method_string() const {
  if (method_ == Verb::unknown) return At(method_text_);
  auto s = boost::beast::http::to_string(method_);
  return {s.data(), s.size()};
}

void Request::AssignHeader(std::string_view header, Verb method, unsigned version,
                           const HeaderSpans& spans) {
  text_.reserve(std::max<size_t>(header.size(), kTextBlock - 1));  // never short-string storage
  text_.assign(header);
  method_ = method;
  method_text_ = method == Verb::unknown ? Span{0, spans.method_size} : Span{};
  target_ = {spans.target, spans.target_size};
  version_ = version;
  fields_.clear();
  names_ = 0;
  for (size_t i = 0; i < spans.n; ++i) {
    const HeaderSpans::Field& f = spans.fields[i];
    fields_.push_back({{f.name, f.name_size}, {f.value, f.value_size}});
    names_ |= NameBit(header.substr(f.name, f.name_size));
  }
}

void Request::method_string(std::string_view text) {
  method_ = boost::beast::http::string_to_verb({text.data(), text.size()});
  method_text_ = method_ == Verb::unknown ? Store(text) : Span{};
}

bool Request::keep_alive() const {
  const std::string_view connection = (*this)["Connection"];
  if (version_ < 11) return !connection.empty() && HasToken(connection, "keep-alive");
  return connection.empty() || !HasToken(connection, "close");
}

std::string_view Request::operator[](std::string_view name) const {
  if (!MayHave(name)) return {};
  for (const FieldRef& f : fields_) {
    if (f.name.size == name.size() && IEquals(At(f.name), name)) return At(f.value);
  }
  return {};
}

size_t Request::count(std::string_view name) const {
  if (!MayHave(name)) return 0;
  size_t n = 0;
  for (const FieldRef& f : fields_) n += f.name.size == name.size() && IEquals(At(f.name), name);
  return n;
}

Request::Values Request::values(std::string_view name) const {
  Values out;
  if (!MayHave(name)) return out;
  for (const FieldRef& f : fields_) {
    if (f.name.size == name.size() && IEquals(At(f.name), name)) out.push_back(At(f.value));
  }
  return out;
}

bool Request::Views(std::string_view s) const {
  return s.data() >= text_.data() && s.data() < text_.data() + text_.size();
}

void Request::insert(std::string_view name, std::string_view value) {
  if (Views(name) || Views(value)) {
    // Storing the name may move the text a view points into: copy first.
    const std::string n(name), v(value);
    insert(n, v);
    return;
  }
  const Span n = Store(name);
  const Span v = Store(value);
  fields_.push_back({n, v});
  names_ |= NameBit(name);
}

void Request::set(std::string_view name, std::string_view value) {
  if (Views(name) || Views(value)) {
    const std::string n(name), v(value);  // erase() may drop the field viewed
    set(n, v);
    return;
  }
  erase(name);
  insert(name, value);
}

void Request::erase(std::string_view name) {
  fields_.erase(std::remove_if(fields_.begin(), fields_.end(),
                               [&](const FieldRef& f) {
                                 return f.name.size == name.size() && IEquals(At(f.name), name);
                               }),
                fields_.end());
}

}  // namespace inferd::http
