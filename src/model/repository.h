#pragma once
// Repository scan: DIR/<model>/config.toml and DIR/<model>/<version>/, where
// <version> is a positive integer. A model whose config is invalid or that
// has no version is still listed, with the reason it cannot be served.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/model_config.h"

namespace inferd {

struct RepositoryEntry {
  std::string name;
  std::string dir;
  Status status;                            // why it cannot be served, if not OK
  ModelConfig config;                       // valid when status.ok()
  std::map<int64_t, std::string> versions;  // version -> directory
};

// Fails only if `dir` itself cannot be read.
StatusOr<std::vector<RepositoryEntry>> ScanRepository(const std::string& dir);
// One model of the repository `dir` (its config and versions as they are
// now). NotFound when it has no directory.
StatusOr<RepositoryEntry> ScanModel(const std::string& dir, const std::string& name);
// What a loaded version is made of: XXH3-64 over the model's config.toml
// and every file of the version directory (relative names and bytes, in
// name order). Cache keys carry it, so a changed model never answers from
// its predecessor's entries.
StatusOr<uint64_t> Revision(const std::string& model_dir, const std::string& version_dir);
// A cheap summary of a model directory for polling: the size, mtime and
// inode of config.toml and the name, size and mtime of every file of every
// version directory. Equal signatures: nothing visible changed.
std::string ModelSignature(const std::string& model_dir);
// The model directories of the repository (names, sorted; hidden ones
// skipped).
std::vector<std::string> ListModelDirectories(const std::string& dir);

}  // namespace inferd
