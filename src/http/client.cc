#include "http/client.h"

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <charconv>
#include <exception>
#include <optional>

#include "http/client_socket.h"
#include "http/client_stream.h"

namespace inferd::http {
namespace {

namespace asio = boost::asio;
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

}  // namespace

std::string Url::HostHeader() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::string Url::Origin() const { return (tls ? "https://" : "http://") + HostHeader(); }

::inferd::StatusOr<Url> ParseUrl(std::string_view url) {
  const std::string original(url);
  auto invalid = [&](std::string_view why) {
    return InvalidArgumentError("bad URL '" + original + "': " + std::string(why));
  };
  Url out;
  if (StartsWithNoCase(url, "https://")) {
    url.remove_prefix(8);
    out.tls = true;
    out.port = 443;
  } else if (StartsWithNoCase(url, "http://")) {
    url.remove_prefix(7);
  } else if (url.find("://") != std::string_view::npos) {
    return invalid("only http:// and https:// are supported");
  }
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : url.substr(slash);
  if (authority.find_first_of("@?#") != std::string_view::npos) {
    return invalid("user info, query or fragment in the authority");
  }
  if (path.find_first_of("?#") != std::string_view::npos) return invalid("query or fragment");
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);

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

ClientRequest MakeRequest(const Url& url, Verb method, std::string_view target, std::string body,
                          std::string_view content_type) {
  ClientRequest req{method, url.base_path + std::string(target), 11};
  req.set(beast_http::field::host, url.HostHeader());
  req.set(beast_http::field::user_agent, std::string(kUserAgent));
  if (!content_type.empty()) req.set(beast_http::field::content_type, std::string(content_type));
  req.keep_alive(true);
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

ClientConnection::ClientConnection(asio::any_io_executor executor, Url url, Options options)
    : url_(std::move(url)), options_(std::move(options)), executor_(std::move(executor)) {}

ClientConnection::~ClientConnection() = default;

bool ClientConnection::connected() const { return socket_ != nullptr && socket_->is_open(); }

void ClientConnection::Close() {
  if (socket_ != nullptr) socket_->Close();
  socket_.reset();
}

asio::awaitable<::inferd::StatusOr<std::unique_ptr<ClientSocket>>> ClientConnection::Connect(
    ExchangeDeadlines deadlines) {
  ::inferd::StatusOr<std::unique_ptr<ClientSocket>> socket =
      co_await ClientSocket::Connect(executor_, url_, tls_context_, options_.tls, deadlines);
  if (socket.ok()) ++connects_;
  co_return socket;
}

asio::awaitable<::inferd::StatusOr<ClientResponse>> ClientConnection::Send(
    const ClientRequest& request) {
  if (url_.tls && tls_context_ == nullptr) {
    ::inferd::StatusOr<std::shared_ptr<asio::ssl::context>> tls =
        MakeClientTlsContext(options_.tls);
    if (!tls.ok()) co_return tls.status();
    tls_context_ = std::move(tls).value();
  }
  // request_timeout bounds the exchange after the connection is made.
  const ClientTimeouts timeouts{options_.connect_timeout, options_.request_timeout,
                                options_.request_timeout,
                                options_.connect_timeout + options_.request_timeout};
  const ExchangeDeadlines deadlines(timeouts);
  ClientStream::Connector connect = [this, deadlines] { return Connect(deadlines); };
  ClientStream::Release release = [this](std::unique_ptr<ClientSocket> socket, bool reusable) {
    if (reusable) socket_ = std::move(socket);
  };
  ::inferd::StatusOr<std::unique_ptr<ClientStream>> stream =
      co_await ClientStream::Start(std::move(socket_), std::move(connect), request, deadlines,
                                   options_.max_response_bytes, std::move(release));
  if (!stream.ok()) co_return stream.status();
  co_return co_await (*stream)->ReadAll();
}

::inferd::StatusOr<ClientResponse> FetchOnce(const Url& url, const ClientRequest& request,
                                             std::chrono::milliseconds timeout) {
  asio::io_context ioc;
  ClientConnection::Options options;
  options.connect_timeout = timeout;
  options.request_timeout = timeout;
  ClientConnection conn(ioc.get_executor(), url, options);
  std::optional<::inferd::StatusOr<ClientResponse>> result;
  // The exchange's own exception (if any) comes back here, not lost.
  std::exception_ptr failure;
  asio::co_spawn(
      ioc, [&]() -> asio::awaitable<void> { result.emplace(co_await conn.Send(request)); },
      [&failure](std::exception_ptr e) { failure = e; });
  try {
    ioc.run();
    if (failure) std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    return InternalError(std::string("http client: ") + e.what());
  } catch (...) {
    return InternalError("http client: unknown exception");
  }
  if (!result.has_value()) return InternalError("http client: request did not complete");
  return std::move(*result);
}

::inferd::StatusOr<ClientResponse> FetchOnce(std::string_view url, Verb method,
                                             std::string_view target, std::string body,
                                             std::chrono::milliseconds timeout) {
  INFERD_ASSIGN_OR_RETURN(Url parsed, ParseUrl(url));
  const std::string_view content_type = body.empty() ? "" : "application/json";
  const ClientRequest request = MakeRequest(parsed, method, target, std::move(body), content_type);
  return FetchOnce(parsed, request, timeout);
}

}  // namespace inferd::http
