// The TorchScript backend as a plugin (model/backend_loader.h): the two
// entry points the server looks up after dlopen.

#include <cstdint>

#include "backends/torchscript/torchscript_backend.h"

extern "C" __attribute__((visibility("default"))) uint32_t inferd_backend_api_version() {
  return inferd::kBackendApiVersion;
}

extern "C" __attribute__((visibility("default"))) bool inferd_backend_register(
    inferd::BackendModelFactory* factory) {
  *factory = inferd::TorchScriptModelFactory();
  return true;
}
