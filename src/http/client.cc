#include "http/client.h"

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <charconv>
#include <exception>
#include <optional>

namespace inferd::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
using IStatus = ::inferd::Status;

constexpr std::string_view kUserAgent = "inferd-client/0.1";

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

// Errors that mean "the server closed this keep-alive connection before it
// saw our request": safe to retry once on a fresh connection.
bool IsStaleConnectionError(const beast::error_code& ec) {
  return ec == beast::http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted;
}

IStatus ExchangeError(const beast::error_code& ec, std::string_view phase) {
  if (ec == beast::error::timeout) {
    return DeadlineExceededError("timeout: " + std::string(phase) + " timed out");
  }
  return InternalError("io: " + std::string(phase) + ": " + ec.message());
}

}  // namespace

std::string Url::HostHeader() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

::inferd::StatusOr<Url> ParseUrl(std::string_view url) {
  const std::string original(url);
  auto invalid = [&](std::string_view why) {
    return InvalidArgumentError("bad URL '" + original + "': " + std::string(why));
  };
  if (StartsWithNoCase(url, "https://")) {
    return UnimplementedError("https is not supported: '" + original + "'");
  }
  if (StartsWithNoCase(url, "http://")) {
    url.remove_prefix(7);
  } else if (url.find("://") != std::string_view::npos) {
    return invalid("only http:// is supported");
  }
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : url.substr(slash);
  if (authority.find_first_of("@?#") != std::string_view::npos) {
    return invalid("user info, query or fragment in the authority");
  }
  if (path.find_first_of("?#") != std::string_view::npos) return invalid("query or fragment");
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);

  Url out;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return invalid("unterminated '['");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return invalid("junk after ']'");
      port_text = rest.substr(1);
      if (port_text.empty()) return invalid("empty port");
    }
  } else {
    size_t colon = authority.find(':');
    if (colon != std::string_view::npos &&
        authority.find(':', colon + 1) != std::string_view::npos) {
      return invalid("IPv6 addresses need brackets");
    }
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return invalid("empty port");
    }
  }
  if (out.host.empty()) return invalid("no host");
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      return invalid("port must be 1..65535");
    }
    out.port = static_cast<uint16_t>(value);
  }
  out.base_path = std::string(path);
  return out;
}

std::string_view TransportErrorKind(const IStatus& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kUnavailable:
      return "connect";
    case StatusCode::kDeadlineExceeded:
      return "timeout";
    default:
      return "io";
  }
}

ClientConnection::ClientConnection(asio::any_io_executor executor, Url url, Options options)
    : url_(std::move(url)), options_(options), stream_(std::move(executor)) {}

Request MakeRequest(const Url& url, Verb method, std::string_view target, std::string body,
                    std::string_view content_type) {
  Request req{method, url.base_path + std::string(target), 11};
  req.set(beast_http::field::host, url.HostHeader());
  req.set(beast_http::field::user_agent, std::string(kUserAgent));
  if (!content_type.empty()) req.set(beast_http::field::content_type, std::string(content_type));
  req.keep_alive(true);
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

bool ClientConnection::connected() const { return stream_.socket().is_open(); }

void ClientConnection::Close() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.close();
  buffer_.clear();
}

asio::awaitable<IStatus> ClientConnection::Connect() {
  beast::error_code ec;
  if (endpoints_.empty()) {
    tcp::resolver resolver(stream_.get_executor());
    auto results = co_await resolver.async_resolve(url_.host, std::to_string(url_.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec)
      co_return UnavailableError("connect: cannot resolve " + url_.host + ": " + ec.message());
    endpoints_ = std::move(results);
  }
  stream_.expires_after(options_.connect_timeout);
  co_await stream_.async_connect(endpoints_, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    stream_.close();
    if (ec == beast::error::timeout) {
      co_return DeadlineExceededError("timeout: connecting to " + url_.HostHeader());
    }
    co_return UnavailableError("connect: " + url_.HostHeader() + ": " + ec.message());
  }
  stream_.expires_never();
  stream_.socket().set_option(tcp::no_delay(true), ec);
  buffer_.clear();
  ++connects_;
  co_return IStatus::OK();
}

asio::awaitable<::inferd::StatusOr<Response>> ClientConnection::SendOnce(const Request& request,
                                                                         bool* stale) {
  *stale = false;
  beast::error_code ec;
  stream_.expires_after(options_.request_timeout);
  co_await beast_http::async_write(stream_, request, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    *stale = IsStaleConnectionError(ec);
    Close();
    co_return ExchangeError(ec, "write");
  }
  beast_http::response_parser<beast_http::string_body> parser;
  parser.body_limit(options_.max_response_bytes);
  co_await beast_http::async_read(stream_, buffer_, parser,
                                  asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    *stale = !parser.got_some() && IsStaleConnectionError(ec);
    Close();
    co_return ExchangeError(ec, "read");
  }
  stream_.expires_never();
  Response response = parser.release();
  if (!response.keep_alive()) Close();
  co_return response;
}

asio::awaitable<::inferd::StatusOr<Response>> ClientConnection::Send(const Request& request) {
  for (int attempt = 0;; ++attempt) {
    const bool reused = connected();
    if (!reused) {
      IStatus s = co_await Connect();
      if (!s.ok()) co_return s;
    }
    bool stale = false;
    ::inferd::StatusOr<Response> result = co_await SendOnce(request, &stale);
    if (result.ok() || !reused || !stale || attempt > 0) co_return result;
  }
}

::inferd::StatusOr<Response> FetchOnce(const Url& url, const Request& request,
                                       std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  ClientConnection::Options options;
  options.connect_timeout = timeout;
  options.request_timeout = timeout;
  ClientConnection conn(ioc.get_executor(), url, options);
  std::optional<::inferd::StatusOr<Response>> result;
  asio::co_spawn(
      ioc, [&]() -> asio::awaitable<void> { result.emplace(co_await conn.Send(request)); },
      asio::detached);
  try {
    ioc.run();
  } catch (const std::exception& e) {
    return InternalError(std::string("http client: ") + e.what());
  }
  if (!result.has_value()) return InternalError("http client: request did not complete");
  return std::move(*result);
}

::inferd::StatusOr<Response> FetchOnce(std::string_view url, Verb method, std::string_view target,
                                       std::string body, std::chrono::milliseconds timeout) {
  INFERD_ASSIGN_OR_RETURN(Url parsed, ParseUrl(url));
  const std::string_view content_type = body.empty() ? "" : "application/json";
  const Request request = MakeRequest(parsed, method, target, std::move(body), content_type);
  return FetchOnce(parsed, request, timeout);
}

}  // namespace inferd::http
