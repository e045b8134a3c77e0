#include "http/client_sse.h"

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <algorithm>
#include <charconv>

namespace inferd::http {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

}  // namespace

void SseParser::Feed(std::string_view bytes, std::vector<SseEvent>* out) {
  while (!bytes.empty()) {
    if (after_cr_) {
      after_cr_ = false;
      if (bytes.front() == '\n') {
        bytes.remove_prefix(1);
        continue;
      }
    }
    const size_t end = bytes.find_first_of("\r\n");
    if (end == std::string_view::npos) {
      line_.append(bytes);
      return;
    }
    line_.append(bytes.substr(0, end));
    after_cr_ = bytes[end] == '\r';
    bytes.remove_prefix(end + 1);
    std::string line = std::move(line_);
    line_.clear();
    ProcessLine(line, out);
  }
}

void SseParser::ProcessLine(std::string_view line, std::vector<SseEvent>* out) {
  if (first_line_) {
    first_line_ = false;
    if (line.substr(0, kBom.size()) == kBom) line.remove_prefix(kBom.size());
  }
  if (line.empty()) {
    // Dispatch. The last event ID is the event's even when it is not sent.
    if (!data_.empty()) {
      data_.pop_back();  // the '\n' after the last data line
      SseEvent e;
      if (!event_.empty()) e.event = std::move(event_);
      e.data = std::move(data_);
      e.id = last_id_;
      out->push_back(std::move(e));
    }
    data_.clear();
    event_.clear();
    return;
  }
  if (line.front() == ':') return;  // a comment
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    Field(line, {});
    return;
  }
  std::string_view value = line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  Field(line.substr(0, colon), value);
}

void SseParser::Field(std::string_view name, std::string_view value) {
  if (name == "event") {
    event_ = std::string(value);
  } else if (name == "data") {
    data_.append(value);
    data_.push_back('\n');
  } else if (name == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_ = std::string(value);
  } else if (name == "retry") {
    uint64_t ms = 0;
    const bool digits = !value.empty() && std::all_of(value.begin(), value.end(),
                                                      [](char c) { return c >= '0' && c <= '9'; });
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
    if (digits && ec == std::errc() && end == value.data() + value.size()) retry_ms_ = ms;
  }
}

boost::asio::awaitable<::inferd::StatusOr<std::optional<SseEvent>>> SseReader::Next() {
  std::vector<SseEvent> parsed;
  while (ready_.empty()) {
    ::inferd::StatusOr<std::optional<std::string>> piece = co_await stream_->Next();
    if (!piece.ok()) co_return piece.status();
    if (!piece->has_value()) co_return std::optional<SseEvent>();
    parsed.clear();
    parser_.Feed(**piece, &parsed);
    for (SseEvent& e : parsed) ready_.push_back(std::move(e));
  }
  SseEvent next = std::move(ready_.front());
  ready_.pop_front();
  co_return std::optional<SseEvent>(std::move(next));
}

}  // namespace inferd::http
