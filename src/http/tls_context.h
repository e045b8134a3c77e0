#pragma once
// TLS for the HTTP client (OpenSSL through Boost.Asio SSL): the options a
// client gives, the SSL_CTX built from them, the per-connection setup (SNI,
// host-name check) and the translation of a failed handshake to a Status.

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

typedef struct ssl_st SSL;

namespace inferd::http {

// How a client checks the servers it talks to over https.
struct TlsOptions {
  // Verify the server's certificate chain against the trusted CAs.
  // Default: on. Off accepts any certificate (tests and lab use only).
  bool verify_peer = true;
  // Check that the certificate names the host of the URL (a DNS name, or an
  // IP address for an IP literal), or `server_name` when set. Default: on;
  // ignored when verify_peer is off.
  bool verify_host = true;
  // PEM file of trusted CA certificates. Default "": when ca_dir is empty
  // too, the system trust store (OpenSSL's default paths).
  std::string ca_file;
  // Directory of hashed CA certificates (`openssl rehash`). Default "".
  std::string ca_dir;
  // Host name sent as SNI and checked against the certificate instead of
  // the URL's host (for servers reached by address). Default "": the URL's.
  std::string server_name;
};

// An SSL_CTX for clients: TLS 1.2 or later, peer verification per
// `options`. kInvalidArgument when a CA file or directory cannot be loaded.
::inferd::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeClientTlsContext(
    const TlsOptions& options);

// Prepares one connection to `host` (the URL's host): SNI (for a DNS name)
// and the expected name or address of the certificate. kInternal when
// OpenSSL refuses the name.
::inferd::Status PrepareTlsConnection(SSL* ssl, const TlsOptions& options, std::string_view host);

// The Status of a failed handshake with `origin`: kUnavailable, with
// "certificate verify failed: <reason>" when the certificate was refused.
::inferd::Status TlsHandshakeError(const boost::system::error_code& ec, SSL* ssl,
                                   std::string_view origin);

}  // namespace inferd::http
