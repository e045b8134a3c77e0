// https through the client: a test CA and server certificates made at test
// time with the openssl command (no key is committed), a TLS test server on
// loopback, and the checks: verified with the CA (by name and by address,
// with SNI), refused with another CA or the system trust store, refused on
// a host-name mismatch.

// clang-format off
#include <utility>  // Boost 1.74 with GCC 12: before any Asio header
// clang-format on

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/co_spawn.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "http/client.h"
#include "http/client_pool.h"
#include "http/client_test_server.h"

namespace inferd::http {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using client_testing::ClientTest;
using client_testing::ExpectBody;

// Runs an openssl command in `dir`; false when it failed.
bool Openssl(const fs::path& dir, const std::string& args) {
  const std::string command = "cd '" + dir.string() + "' && openssl " + args + " >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

void WriteFile(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

// Makes <name>.pem (certificate) and <name>.key signed by `ca`, for `san`
// ("DNS:localhost,IP:127.0.0.1").
bool MakeServerCert(const fs::path& dir, const std::string& name, const std::string& ca,
                    const std::string& san) {
  WriteFile(dir / (name + ".ext"),
            "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n"
            "extendedKeyUsage = serverAuth\nsubjectAltName = " +
                san + "\n");
  return Openssl(dir,
                 "req -new -config req.cnf -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                 "-nodes -keyout " +
                     name + ".key -out " + name + ".csr -subj /CN=" + name) &&
         Openssl(dir, "x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " + ca +
                          ".key -set_serial 7 -days 2 -out " + name + ".pem -extfile " + name +
                          ".ext");
}

class ClientTlsTest : public ClientTest {
 protected:
  static void SetUpTestSuite() {
    char pattern[] = "/tmp/inferd-tls-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = new fs::path(pattern);
    WriteFile(*dir_ / "req.cnf",
              "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n"
              "[dn]\nCN = inferd test CA\n"
              "[v3_ca]\nbasicConstraints = critical,CA:TRUE\n"
              "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n");
    for (const char* ca : {"ca", "other_ca"}) {
      ASSERT_TRUE(Openssl(*dir_, std::string("req -x509 -config req.cnf -newkey ec -pkeyopt "
                                             "ec_paramgen_curve:prime256v1 -nodes -days 2 "
                                             "-keyout ") +
                                     ca + ".key -out " + ca + ".pem"))
          << "openssl could not make a CA in " << *dir_;
    }
    ASSERT_TRUE(MakeServerCert(*dir_, "localhost", "ca", "DNS:localhost,IP:127.0.0.1"));
    ASSERT_TRUE(MakeServerCert(*dir_, "example.com", "ca", "DNS:example.com"));
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    fs::remove_all(*dir_, ignored);
    delete dir_;
    dir_ = nullptr;
  }

  static std::string File(const std::string& name) { return (*dir_ / name).string(); }

  // A server context presenting the certificate <name>.pem.
  static std::shared_ptr<asio::ssl::context> ServerTls(const std::string& name) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->use_certificate_chain_file(File(name + ".pem"));
    ctx->use_private_key_file(File(name + ".key"), asio::ssl::context::pem);
    return ctx;
  }

  static ClientPool::Options TrustingCa(const std::string& ca) {
    ClientPool::Options options;
    options.tls.ca_file = File(ca + ".pem");
    return options;
  }

  // Sends GET /hello with the pool and returns the outcome.
  ::inferd::StatusOr<ClientResponse> SendHello() {
    std::optional<::inferd::StatusOr<ClientResponse>> result;
    Run([&]() -> asio::awaitable<void> { result = co_await pool_->Send(hello_, url_); });
    if (!result.has_value()) return InternalError("did not complete");
    return std::move(*result);
  }

  static fs::path* dir_;
};

fs::path* ClientTlsTest::dir_ = nullptr;

void ExpectVerifyFailure(const ::inferd::StatusOr<ClientResponse>& r, std::string_view reason) {
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_NE(r.status().message().find("certificate verify failed: " + std::string(reason)),
            std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(TransportErrorKind(r.status()), "connect");
}

TEST_F(ClientTlsTest, VerifiedWithTheTestCaByName) {
  Start(TrustingCa("ca"), ServerTls("localhost"), "localhost");
  Run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 2; ++i) co_await ExpectBody(*pool_, hello_, url_, "conn 1");
  });
  EXPECT_EQ(server_->last_sni(), "localhost");
  EXPECT_EQ(server_->accepted(), 1);  // kept alive over TLS
}

TEST_F(ClientTlsTest, VerifiedWithTheTestCaByAddress) {
  Start(TrustingCa("ca"), ServerTls("localhost"), "127.0.0.1");
  auto r = SendHello();
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(server_->last_sni(), "");  // no SNI for an address
}

TEST_F(ClientTlsTest, RefusedWithAnotherCa) {
  Start(TrustingCa("other_ca"), ServerTls("localhost"), "localhost");
  ExpectVerifyFailure(SendHello(), "");
}

TEST_F(ClientTlsTest, RefusedWithTheSystemTrustStore) {
  Start({}, ServerTls("localhost"), "localhost");
  ExpectVerifyFailure(SendHello(), "");
}

TEST_F(ClientTlsTest, RefusedOnHostNameMismatch) {
  Start(TrustingCa("ca"), ServerTls("example.com"), "localhost");
  ExpectVerifyFailure(SendHello(), "hostname mismatch");
}

TEST_F(ClientTlsTest, RefusedOnAddressMismatch) {
  Start(TrustingCa("ca"), ServerTls("example.com"), "127.0.0.1");
  ExpectVerifyFailure(SendHello(), "IP address mismatch");
}

TEST_F(ClientTlsTest, ServerNameOverridesTheUrlHost) {
  ClientPool::Options options = TrustingCa("ca");
  options.tls.server_name = "example.com";
  Start(options, ServerTls("example.com"), "127.0.0.1");
  auto r = SendHello();
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(server_->last_sni(), "example.com");
}

TEST_F(ClientTlsTest, HostCheckCanBeTurnedOff) {
  ClientPool::Options options = TrustingCa("ca");
  options.tls.verify_host = false;
  Start(options, ServerTls("example.com"), "localhost");
  auto r = SendHello();
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST_F(ClientTlsTest, StreamsOverTls) {
  Start(TrustingCa("ca"), ServerTls("localhost"), "localhost");
  const ClientRequest chunked = Get("/chunked");
  Run([&]() -> asio::awaitable<void> {
    auto opened = co_await pool_->Open(chunked, url_);
    CO_ASSERT_OK(opened);
    auto piece = co_await (*opened)->Next();
    CO_ASSERT_OK(piece);
    EXPECT_EQ(piece->value_or("<end>"), "piece1");
    EXPECT_EQ(server_->pieces_sent(), 1);
    server_->step().Add(2);
    auto rest = co_await (*opened)->ReadAll();
    EXPECT_TRUE(rest.ok() && rest->body() == "piece2") << rest.status().ToString();
  });
}

TEST_F(ClientTlsTest, ClientConnectionSpeaksHttps) {
  Start(TrustingCa("ca"), ServerTls("localhost"), "localhost");
  ClientConnection::Options options;
  options.tls.ca_file = File("ca.pem");
  ClientConnection conn(ioc_.get_executor(), url_, options);
  Run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 2; ++i) {
      auto r = co_await conn.Send(hello_);
      EXPECT_TRUE(r.ok() && r->body() == "conn 1") << r.status().ToString();
    }
  });
  EXPECT_EQ(conn.connects(), 1);
}

TEST(UrlTlsTest, ParsesHttps) {
  auto u = ParseUrl("HTTPS://example.com/v1/");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->base_path, "/v1");
  EXPECT_EQ(u->Origin(), "https://example.com:443");
  u = ParseUrl("https://[::1]:8443");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->Origin(), "https://[::1]:8443");
  EXPECT_EQ(ParseUrl("http://a").value().Origin(), "http://a:80");
  EXPECT_EQ(ParseUrl("ftp://a").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace inferd::http
