#pragma once
// Response: an HTTP response as a handler builds it and the server writes
// it. The header fields are kept as the bytes that go on the wire
// ("Name: value\r\n" lines in one string), so a field costs no allocation
// of its own and writing the header is one copy (a Beast message keeps one
// allocated node per field and is walked field by field to serialize).
//
// Three fields are kept apart from the others: Content-Length (from
// prepare_payload(), or the body's size) and Connection (from keep_alive()),
// which the server owns, and Server, which the server sets on every answer:
// apart, setting it costs no search of the fields. They go on the wire
// after the others. CR, LF and NUL in a value are replaced by spaces: a value that echoes client
// input cannot split the header. Names are the program's own tokens (never client input).
//
// The responses the HTTP client reads stay Beast messages (ClientResponse).
// clang-format off
#include <utility>  // before Asio/Beast (Boost 1.74 + GCC 12)
// clang-format on

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/container/vector.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/recycling.h"

namespace inferd::http {

class Response {
 public:
  using Status = boost::beast::http::status;
  using Field = boost::beast::http::field;

  Response() = default;
  explicit Response(Status status, unsigned version = 11) : status_(status), version_(version) {}

  Status result() const { return status_; }
  unsigned result_int() const { return static_cast<unsigned>(status_); }
  void result(Status status) { status_ = status; }
  std::string_view reason() const;
  unsigned version() const { return version_; }  // 10 or 11
  void version(unsigned v) { version_ = v; }

  // Sets `name` to `value`, replacing every field of that name (names
  // compare case-insensitively).
  void set(std::string_view name, std::string_view value);
  void set(Field name, std::string_view value) {
    if (name == Field::server) {
      SetServer(value);
      return;
    }
    set(FieldName(name), value);
  }
  // Adds a field, keeping any others of the same name.
  void insert(std::string_view name, std::string_view value);
  void insert(Field name, std::string_view value) { insert(FieldName(name), value); }
  void erase(std::string_view name);
  void erase(Field name);
  // The first value of `name`; empty when there is none. The view lasts
  // until the next change of the fields.
  std::string_view operator[](std::string_view name) const;
  std::string_view operator[](Field name) const { return (*this)[FieldName(name)]; }
  size_t count(std::string_view name) const;
  size_t count(Field name) const { return count(FieldName(name)); }
  // Calls fn(name, value) for each field, in order (without the three kept
  // apart).
  template <typename Fn>
  void ForEachField(Fn&& fn) const {
    const std::string_view all = fields();
    for (size_t pos = 0; pos < all.size();) {
      const size_t colon = all.find(':', pos);
      const size_t end = all.find('\r', colon);
      fn(all.substr(pos, colon - pos), all.substr(colon + 2, end - colon - 2));
      pos = end + 2;
    }
  }

  std::string& body() { return body_; }
  const std::string& body() const { return body_; }

  // Whether the connection stays open after this response (HTTP/1.1: yes
  // unless set otherwise; HTTP/1.0: no unless set).
  bool keep_alive() const { return keep_alive_ ? *keep_alive_ : version_ == 11; }
  void keep_alive(bool keep) { keep_alive_ = keep; }

  // Fixes Content-Length at the body's size, so that clearing the body
  // afterwards (HEAD) keeps it; 1xx, 204 and 304 get no Content-Length and
  // lose any body (they have none on the wire).
  void prepare_payload();
  // Appends the status line, the fields, Server (as set, else
  // `default_server` unless empty), Content-Length (when prepared or
  // erased: as prepared, or none) and Connection, and the blank line. The
  // server names itself here, not by setting the field on every answer.
  void SerializeHeader(std::string* out, std::string_view default_server = {}) const;

 private:
  enum class Owned { kNone, kContentLength, kConnection, kServer };
  static Owned OwnedField(std::string_view name);
  static std::string_view FieldName(Field f);
  void SetServer(std::string_view value);
  // The [begin, end) of the first line of `name` at or after `from`, or
  // begin == npos.
  std::pair<size_t, size_t> Find(std::string_view name, size_t from) const;
  void Append(std::string_view name, std::string_view value);
  // Whether `s` points into fields_ (which erase() and growth move).
  bool ViewsFields(std::string_view s) const;

  Status status_ = Status::ok;
  unsigned version_ = 11;
  std::string_view fields() const { return {fields_.data(), fields_.size()}; }
  // "Name: value\r\n" lines. Not a std::string: a field is appended into
  // room grown without being zero-filled first. A typical header (KServe's
  // answer with its ids: about 200 bytes) fits the first block, which is
  // recycled from response to response.
  static constexpr size_t kFieldsBlock = 320;
  boost::container::vector<char, RecyclingAllocator<char, kFieldsBlock>> fields_;
  std::string body_;
  std::optional<bool> keep_alive_;
  std::string server_;  // the Server field's value; empty: none
  // Set by prepare_payload; kNone after erase(Content-Length); kUnset: the
  // body's size when serialized.
  static constexpr size_t kUnset = static_cast<size_t>(-1);
  static constexpr size_t kNone = static_cast<size_t>(-2);
  size_t content_length_ = kUnset;
};

}  // namespace inferd::http
