#include "app/keygen_command.h"

#include <iostream>

#include "admission/api_key.h"

namespace inferd {

void AddKeygenCommand(CLI::App& root) {
  CLI::App* cmd = root.add_subcommand(
      "keygen", "print a new API key and the api_key_sha256 line for a [[tenants]] entry");
  cmd->callback([] {
    StatusOr<std::string> key = GenerateApiKey();
    if (!key.ok()) {
      std::cerr << "inferd keygen: " << key.status().message() << "\n";
      throw CLI::RuntimeError(1);
    }
    std::cout << "key = \"" << *key << "\"   # give to the client; inferd keeps only the hash\n"
              << "api_key_sha256 = [\"" << DigestHex(Sha256(*key)) << "\"]\n";
  });
}

}  // namespace inferd
