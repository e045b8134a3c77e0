#pragma once
// Request: an HTTP request as the server read it (RequestReader) and a
// handler receives it. The start line and every header field live in one
// string with an index of offsets beside it, so a request costs two
// allocations (that string and the body) where a Beast message costs one
// per field; names compare case-insensitively. Requests the HTTP client
// sends stay Beast messages (ClientRequest).
//
// The setters are for RequestReader (decoding the body) and for tests and
// in-process callers that build a request; names are the program's own.
// clang-format off
#include <utility>  // before Asio/Beast (Boost 1.74 + GCC 12)
// clang-format on

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/recycling.h"

namespace inferd::http {

class Request {
 public:
  using Field = boost::beast::http::field;
  using Verb = boost::beast::http::verb;
  // Every value of one field name, in order (inline for two: no
  // allocation for the usual zero or one).
  using Values = boost::container::small_vector<std::string_view, 2>;

  Request() = default;
  Request(Verb method, std::string_view target, unsigned version = 11);

  Verb method() const { return method_; }
  // Also the text of a method Beast does not know (Verb::unknown).
  std::string_view method_string() const;
  void method(Verb method) { method_ = method; }
  // A method Beast does not know, by its text.
  void method_string(std::string_view text);
  std::string_view target() const { return At(target_); }
  void target(std::string_view target) { target_ = Store(target); }
  unsigned version() const { return version_; }  // 10 or 11
  void version(unsigned v) { version_ = v; }
  // Beast's rule: HTTP/1.1 keeps the connection unless the first
  // Connection field lists "close"; HTTP/1.0 only if it lists "keep-alive".
  bool keep_alive() const;

  // The first value of `name`; empty when there is none. The view lasts
  // until the next change of the request.
  std::string_view operator[](std::string_view name) const;
  std::string_view operator[](Field name) const { return (*this)[FieldName(name)]; }
  size_t count(std::string_view name) const;
  size_t count(Field name) const { return count(FieldName(name)); }
  Values values(std::string_view name) const;
  Values values(Field name) const { return values(FieldName(name)); }
  // Calls fn(name, value) for each field, in order.
  template <typename Fn>
  void ForEachField(Fn&& fn) const {
    for (const FieldRef& f : fields_) fn(At(f.name), At(f.value));
  }

  // Adds a field, keeping any others of the same name.
  void insert(std::string_view name, std::string_view value);
  void insert(Field name, std::string_view value) { insert(FieldName(name), value); }
  // Sets `name` to `value`, replacing every field of that name (the old
  // text stays in the request's string: for building a request, not for
  // changing one over and over).
  void set(std::string_view name, std::string_view value);
  void set(Field name, std::string_view value) { set(FieldName(name), value); }
  void erase(std::string_view name);
  void erase(Field name) { erase(FieldName(name)); }

  std::string& body() { return body_; }
  const std::string& body() const { return body_; }

  // Room for `bytes` of method, target, names and values to come.
  void Reserve(size_t bytes) { text_.reserve(bytes); }

  // For the reader's fast path: the request's text becomes a copy of
  // `header` (one allocation), its start line and fields are offsets into
  // it: the method at 0 (its text kept only when `method` is unknown), the
  // target, and `n` fields. The offsets must lie within `header`, which is
  // under 4 GiB.
  struct HeaderSpans {
    uint32_t method_size = 0;
    uint32_t target = 0, target_size = 0;
    struct Field {
      uint32_t name, name_size, value, value_size;
    };
    const Field* fields = nullptr;
    size_t n = 0;
  };
  void AssignHeader(std::string_view header, Verb method, unsigned version,
                    const HeaderSpans& spans);

  static std::string_view FieldName(Field f);

 private:
  struct Span {
    uint32_t offset = 0;
    uint32_t size = 0;
  };
  struct FieldRef {
    Span name;
    Span value;
  };
  std::string_view At(Span s) const { return {text_.data() + s.offset, s.size}; }
  // Appends `s` to text_ (which may move; `s` itself may view text_).
  Span Store(std::string_view s);
  // Whether `s` points into text_.
  bool Views(std::string_view s) const;
  // A bit per name, from its size and its last letter (case folded): most
  // lookups are for fields a request does not have (traceparent,
  // Cache-Control, Priority, ...), and their bit, clear, answers them
  // without comparing names. Bits are set as fields are added and never
  // cleared (a stale bit only costs a search).
  static uint64_t NameBit(std::string_view name) {
    const unsigned last = name.empty() ? 0u : (static_cast<unsigned char>(name.back()) | 0x20u);
    return uint64_t{1} << ((name.size() + last * 7) & 63);
  }
  bool MayHave(std::string_view name) const { return (names_ & NameBit(name)) != 0; }

  Verb method_ = Verb::get;
  unsigned version_ = 11;
  Span method_text_;
  Span target_;
  // The method, the target, the names and values. A typical header (the
  // reader's requests: about 200 bytes) fits the first block, which is
  // recycled from request to request.
  static constexpr size_t kTextBlock = 256;
  std::basic_string<char, std::char_traits<char>, RecyclingAllocator<char, kTextBlock>> text_;
  boost::container::small_vector<FieldRef, 8> fields_;
  uint64_t names_ = 0;  // NameBit of every field's name
  std::string body_;
};

}  // namespace inferd::http
