#include "http/tls_context.h"

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/address.hpp>
#include <exception>

namespace inferd::http {
namespace {

namespace ssl = boost::asio::ssl;

bool IsIpLiteral(std::string_view host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(std::string(host), ec);
  return !ec;
}

}  // namespace

::inferd::StatusOr<std::shared_ptr<ssl::context>> MakeClientTlsContext(const TlsOptions& options) {
  std::shared_ptr<ssl::context> ctx;
  try {
    ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  } catch (const std::exception& e) {
    return InternalError(std::string("TLS: cannot create an SSL context: ") + e.what());
  }
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (!options.ca_file.empty()) {
    ctx->load_verify_file(options.ca_file, ec);
    if (ec) {
      return InvalidArgumentError("TLS: cannot load CA file '" + options.ca_file +
                                  "': " + ec.message());
    }
  }
  if (!options.ca_dir.empty()) {
    ctx->add_verify_path(options.ca_dir, ec);
    if (ec) {
      return InvalidArgumentError("TLS: cannot use CA directory '" + options.ca_dir +
                                  "': " + ec.message());
    }
  }
  if (options.ca_file.empty() && options.ca_dir.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) return InternalError("TLS: no system trust store: " + ec.message());
  }
  ctx->set_verify_mode(options.verify_peer ? ssl::verify_peer : ssl::verify_none, ec);
  if (ec) return InternalError("TLS: cannot set the verify mode: " + ec.message());
  return ctx;
}

::inferd::Status PrepareTlsConnection(SSL* ssl, const TlsOptions& options, std::string_view host) {
  const std::string name(options.server_name.empty() ? host : options.server_name);
  const bool ip = IsIpLiteral(name);
  // RFC 6066: SNI carries DNS names only, never an address.
  if (!ip && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
    return InternalError("TLS: bad server name '" + name + "'");
  }
  if (!options.verify_peer || !options.verify_host) return ::inferd::Status::OK();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                    : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
  if (ok != 1) return InternalError("TLS: cannot check the certificate for '" + name + "'");
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return ::inferd::Status::OK();
}

::inferd::Status TlsHandshakeError(const boost::system::error_code& ec, SSL* ssl,
                                   std::string_view origin) {
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    return UnavailableError("connect: certificate verify failed: " +
                            std::string(X509_verify_cert_error_string(verify)) + " (" +
                            std::string(origin) + ")");
  }
  return UnavailableError("connect: TLS handshake with " + std::string(origin) +
                          " failed: " + ec.message());
}

}  // namespace inferd::http
