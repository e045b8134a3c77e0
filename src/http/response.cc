#include "http/response.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <tuple>

#include "http/ascii.h"

namespace inferd::http {
namespace {

// Whether `s` holds a byte below 0x20 (so perhaps CR, LF or NUL): one
// test per eight bytes (a byte below n borrows into its own top bit; bytes
// from 0x80 up are masked out by ~w).
bool HasControlByte(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kTops = 0x8080808080808080ull;
  auto below_space = [](uint64_t w) { return ((w - 0x20 * kOnes) & ~w & kTops) != 0; };
  const char* p = s.data();
  const size_t n = s.size();
  if (n < 8) {
    for (size_t i = 0; i < n; ++i) {
      if (static_cast<unsigned char>(p[i]) < 0x20) return true;
    }
    return false;
  }
  uint64_t w;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    std::memcpy(&w, p + i, 8);
    if (below_space(w)) return true;
  }
  std::memcpy(&w, p + n - 8, 8);  // the last eight, overlapping
  return below_space(w);
}

// CR, LF and NUL become spaces: a value that echoes client input cannot
// split the header.
void Sanitize(char* v, size_t size) {
  for (char* c = v; c < v + size; ++c) {
    if (*c == '\r' || *c == '\n' || *c == '\0') *c = ' ';
  }
}

}  // namespace

std::string_view Response::FieldName(Field f) {
  auto s = boost::beast::http::to_string(f);
  return {s.data(), s.size()};
}

std::string_view Response::reason() const {
  auto s = boost::beast::http::obsolete_reason(status_);
  return {s.data(), s.size()};
}

std::pair<size_t, size_t> Response::Find(std::string_view name, size_t from) const {
  const char* const data = fields_.data();
  const size_t size = fields_.size();
  for (size_t pos = from; pos < size;) {
    const char* line = data + pos;
    const size_t end = static_cast<const char*>(std::memchr(line, '\n', size - pos)) - data + 1;
    if (end - pos > name.size() && line[name.size()] == ':' &&
        IEquals(std::string_view(line, name.size()), name)) {
      return {pos, end};
    }
    pos = end;
  }
  return {std::string::npos, std::string::npos};
}

void Response::Append(std::string_view name, std::string_view value) {
  const size_t at = fields_.size();
  const size_t n = name.size() + value.size() + 4;
  if (fields_.capacity() < at + n) {
    if (ViewsFields(value)) {
      const std::string copy(value);  // a view into the fields, which growing frees
      Append(name, copy);
      return;
    }
    fields_.reserve(std::max<size_t>(kFieldsBlock, 2 * (at + n)));
  }
  fields_.resize(at + n, boost::container::default_init);
  char* p = fields_.data() + at;
  if (!name.empty()) std::memcpy(p, name.data(), name.size());  // names: from code, not clients
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  char* v = p;
  if (!value.empty()) std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p = '\n';
  if (HasControlByte(value)) Sanitize(v, value.size());
}

bool Response::ViewsFields(std::string_view s) const {
  return s.data() >= fields_.data() && s.data() < fields_.data() + fields_.size();
}

Response::Owned Response::OwnedField(std::string_view name) {
  switch (name.size()) {
    case 14:
      return IEquals(name, std::string_view("Content-Length")) ? Owned::kContentLength
                                                               : Owned::kNone;
    case 10:
      return IEquals(name, std::string_view("Connection")) ? Owned::kConnection : Owned::kNone;
    case 6:
      return IEquals(name, std::string_view("Server")) ? Owned::kServer : Owned::kNone;
    default:
      return Owned::kNone;
  }
}

void Response::SetServer(std::string_view value) {
  server_.assign(value);
  if (HasControlByte(server_)) Sanitize(server_.data(), server_.size());
}

void Response::set(std::string_view name, std::string_view value) {
  switch (OwnedField(name)) {
    case Owned::kContentLength: {
      size_t n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      content_length_ = ec == std::errc() && p == value.data() + value.size() ? n : kUnset;
      return;
    }
    case Owned::kConnection:
      if (IEquals(value, std::string_view("close"))) keep_alive_ = false;
      if (IEquals(value, std::string_view("keep-alive"))) keep_alive_ = true;
      return;
    case Owned::kServer:
      SetServer(value);
      return;
    case Owned::kNone:
      break;
  }
  if (ViewsFields(value)) {
    const std::string copy(value);  // a view into the fields, which erase moves
    erase(name);
    Append(name, copy);
    return;
  }
  erase(name);
  Append(name, value);
}

void Response::insert(std::string_view name, std::string_view value) {
  if (OwnedField(name) != Owned::kNone) {
    set(name, value);
    return;
  }
  Append(name, value);
}

void Response::erase(std::string_view name) {
  switch (OwnedField(name)) {
    case Owned::kContentLength:
      content_length_ = kNone;
      return;
    case Owned::kConnection:
      keep_alive_.reset();
      return;
    case Owned::kServer:
      server_.clear();
      return;
    case Owned::kNone:
      break;
  }
  for (auto [begin, end] = Find(name, 0); begin != std::string::npos;
       std::tie(begin, end) = Find(name, begin)) {
    fields_.erase(fields_.begin() + static_cast<std::ptrdiff_t>(begin),
                  fields_.begin() + static_cast<std::ptrdiff_t>(end));
  }
}

void Response::erase(Field name) { erase(FieldName(name)); }

std::string_view Response::operator[](std::string_view name) const {
  if (OwnedField(name) == Owned::kServer) return server_;
  auto [begin, end] = Find(name, 0);
  if (begin == std::string::npos) return {};
  std::string_view line = fields().substr(begin, end - begin - 2);
  return line.substr(name.size() + 2);
}

size_t Response::count(std::string_view name) const {
  if (OwnedField(name) == Owned::kServer) return server_.empty() ? 0 : 1;
  size_t n = 0;
  for (auto [begin, end] = Find(name, 0); begin != std::string::npos;
       std::tie(begin, end) = Find(name, end)) {
    ++n;
  }
  return n;
}

void Response::prepare_payload() {
  const unsigned code = result_int();
  if (code / 100 == 1 || code == 204 || code == 304) {
    body_.clear();  // these have no body: bytes sent anyway would be read as the next answer
    content_length_ = kNone;
  } else {
    content_length_ = body_.size();
  }
}

void Response::SerializeHeader(std::string* out, std::string_view default_server) const {
  // Sized first and written in place: one growth of `out` (which the
  // server reuses) instead of one append per piece.
  char status[24];
  const size_t status_size = static_cast<size_t>(
      std::to_chars(status, status + sizeof(status), result_int()).ptr - status);
  const std::string_view reason_text = reason();
  char length[24];
  size_t length_size = 0;
  if (content_length_ != kNone) {
    const size_t n = content_length_ == kUnset ? body_.size() : content_length_;
    length_size =
        static_cast<size_t>(std::to_chars(length, length + sizeof(length), n).ptr - length);
  }
  const bool keep = keep_alive();
  const std::string_view connection = version_ == 11 && !keep  ? "Connection: close\r\n"
                                      : version_ == 10 && keep ? "Connection: keep-alive\r\n"
                                                               : "";
  constexpr std::string_view kServer = "Server: ", kLength = "Content-Length: ";
  const std::string_view server = server_.empty() ? default_server : std::string_view(server_);
  const size_t total = 9 + status_size + 1 + reason_text.size() + 2 + fields_.size() +
                       (server.empty() ? 0 : kServer.size() + server.size() + 2) +
                       (content_length_ != kNone ? kLength.size() + length_size + 2 : 0) +
                       connection.size() + 2;
  const size_t at = out->size();
  out->resize(at + total);
  char* p = out->data() + at;
  auto put = [&p](const char* s, size_t n) {
    if (n != 0) std::memcpy(p, s, n);
    p += n;
  };
  auto crlf = [&p] {
    p[0] = '\r';
    p[1] = '\n';
    p += 2;
  };
  put(version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
  put(status, status_size);
  *p++ = ' ';
  put(reason_text.data(), reason_text.size());
  crlf();
  put(fields_.data(), fields_.size());
  if (!server.empty()) {
    put(kServer.data(), kServer.size());
    put(server.data(), server.size());
    crlf();
  }
  if (content_length_ != kNone) {
    put(kLength.data(), kLength.size());
    put(length, length_size);
    crlf();
  }
  put(connection.data(), connection.size());
  crlf();
}

}  // namespace inferd::http
