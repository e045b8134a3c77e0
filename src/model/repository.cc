#include "model/repository.h"

#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <memory>

namespace inferd {

namespace fs = std::filesystem;

namespace {

RepositoryEntry ScanOne(const fs::path& model_dir) {
  std::error_code ec;
  RepositoryEntry e;
  e.name = model_dir.filename().string();
  e.dir = model_dir.string();
  for (const auto& v : fs::directory_iterator(model_dir, ec)) {
    if (!v.is_directory()) continue;
    std::string s = v.path().filename().string();
    int64_t num = 0;
    auto [p, err] = std::from_chars(s.data(), s.data() + s.size(), num);
    // Canonical spelling only, so "1" and "01" cannot both claim version 1.
    if (err == std::errc() && p == s.data() + s.size() && num > 0 && s == std::to_string(num)) {
      e.versions[num] = v.path().string();
    }
  }
  std::string config_path = (model_dir / "config.toml").string();
  auto config = LoadModelConfig(config_path, e.name);
  if (!config.ok()) {
    e.status = config.status();
  } else {
    e.config = std::move(config).value();
    if (e.versions.empty()) {
      e.status = NotFoundError(e.dir + ": no version directory (expected e.g. " + e.dir + "/1/)");
    }
  }
  return e;
}

// Feeds the file at `path` (its bytes) into `state`; false if unreadable.
bool HashFile(XXH3_state_t* state, const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  char buf[1 << 16];
  while (f.read(buf, sizeof(buf)) || f.gcount() > 0) {
    XXH3_64bits_update(state, buf, static_cast<size_t>(f.gcount()));
    if (f.eof()) break;
  }
  return !f.bad();
}

}  // namespace

StatusOr<std::vector<RepositoryEntry>> ScanRepository(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return NotFoundError("model repository '" + dir + "' is not a readable directory");
  }
  std::vector<RepositoryEntry> out;
  for (const auto& model_dir : fs::directory_iterator(dir, ec)) {
    if (!model_dir.is_directory()) continue;
    const std::string name = model_dir.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    out.push_back(ScanOne(model_dir.path()));
  }
  if (ec) return InternalError("reading model repository '" + dir + "': " + ec.message());
  std::sort(out.begin(), out.end(),
            [](const RepositoryEntry& a, const RepositoryEntry& b) { return a.name < b.name; });
  return out;
}

StatusOr<RepositoryEntry> ScanModel(const std::string& dir, const std::string& name) {
  std::error_code ec;
  const fs::path model_dir = fs::path(dir) / name;
  if (name.empty() || name[0] == '.' || name.find('/') != std::string::npos ||
      !fs::is_directory(model_dir, ec)) {
    return NotFoundError("unknown model '" + name + "' (no directory " + model_dir.string() + ")");
  }
  return ScanOne(model_dir);
}

StatusOr<uint64_t> Revision(const std::string& model_dir, const std::string& version_dir) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  if (!state) return InternalError("out of memory");
  XXH3_64bits_reset(state.get());
  if (!HashFile(state.get(), fs::path(model_dir) / "config.toml"))
    return NotFoundError("cannot read " + model_dir + "/config.toml");
  std::vector<fs::path> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(version_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  if (ec) return InternalError("reading " + version_dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    const std::string rel = fs::relative(f, version_dir, ec).string();
    XXH3_64bits_update(state.get(), rel.data(), rel.size() + 1);  // with its NUL
    if (!HashFile(state.get(), f)) return NotFoundError("cannot read " + f.string());
  }
  return static_cast<uint64_t>(XXH3_64bits_digest(state.get()));
}

std::string ModelSignature(const std::string& model_dir) {
  std::error_code ec;
  std::vector<std::string> parts;
  for (auto it = fs::recursive_directory_iterator(model_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const auto size = it->file_size(ec);
    const auto mtime = it->last_write_time(ec).time_since_epoch().count();
    parts.push_back(fs::relative(it->path(), model_dir, ec).string() + ":" + std::to_string(size) +
                    ":" + std::to_string(mtime));
  }
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const std::string& p : parts) out += p + "\n";
  return out;
}

std::vector<std::string> ListModelDirectories(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && name[0] != '.' && e.is_directory(ec)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace inferd
