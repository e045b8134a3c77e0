#include "model/repository.h"

#include <algorithm>
#include <charconv>
#include <filesystem>

namespace inferd {

namespace fs = std::filesystem;

StatusOr<std::vector<RepositoryEntry>> ScanRepository(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return NotFoundError("model repository '" + dir + "' is not a readable directory");
  }
  std::vector<RepositoryEntry> out;
  for (const auto& model_dir : fs::directory_iterator(dir, ec)) {
    if (!model_dir.is_directory()) continue;
    RepositoryEntry e;
    e.name = model_dir.path().filename().string();
    e.dir = model_dir.path().string();
    if (e.name.empty() || e.name[0] == '.') continue;
    for (const auto& v : fs::directory_iterator(model_dir.path(), ec)) {
      if (!v.is_directory()) continue;
      std::string s = v.path().filename().string();
      int64_t num = 0;
      auto [p, err] = std::from_chars(s.data(), s.data() + s.size(), num);
      // Canonical spelling only, so "1" and "01" cannot both claim version 1.
      if (err == std::errc() && p == s.data() + s.size() && num > 0 && s == std::to_string(num)) {
        e.versions[num] = v.path().string();
      }
    }
    std::string config_path = (model_dir.path() / "config.toml").string();
    auto config = LoadModelConfig(config_path, e.name);
    if (!config.ok()) {
      e.status = config.status();
    } else {
      e.config = std::move(config).value();
      if (e.versions.empty()) {
        e.status = NotFoundError(e.dir + ": no version directory (expected e.g. " + e.dir + "/1/)");
      }
    }
    out.push_back(std::move(e));
  }
  if (ec) return InternalError("reading model repository '" + dir + "': " + ec.message());
  std::sort(out.begin(), out.end(),
            [](const RepositoryEntry& a, const RepositoryEntry& b) { return a.name < b.name; });
  return out;
}

}  // namespace inferd
