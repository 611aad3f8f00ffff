// The files of a text corpus: a sorted, filtered walk of a directory and a whole-file reader
// (used by the tokenizer trainer and by the training data pipeline alike).
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "rodimus/core/error.hpp"

namespace rodimus::io {

/// Which files of a directory tree belong to a corpus.
struct FileFilter {
  /// Only files whose name ends in one of these (e.g. ".py"); empty: every file.
  std::vector<std::string> extensions;
  /// Directories skipped: by name (`test`), or by path relative to the root when the entry
  /// holds a '/' (`idlelib/idle_test`).
  std::vector<std::string> exclude_dirs;
};

/// The files under `root` that `filter` selects: regular files (symlinks to files too) in
/// sorted path order; a directory whose name, or whose path relative to `root`, is in
/// `filter.exclude_dirs` is skipped, and symlinked directories are not followed. Throws
/// rodimus::Error when a directory cannot be read.
inline std::vector<std::filesystem::path> list_text_files(const std::filesystem::path& root,
                                                          const FileFilter& filter) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  const auto wanted = [&](const fs::path& p) {
    if (filter.extensions.empty()) return true;
    const std::string name = p.filename().string();
    return std::any_of(filter.extensions.begin(), filter.extensions.end(),
                       [&](const std::string& e) { return name.ends_with(e); });
  };
  const auto excluded = [&](const fs::path& dir) {
    const std::string name = dir.filename().string();
    const std::string rel = dir.lexically_relative(root).generic_string();
    return std::any_of(filter.exclude_dirs.begin(), filter.exclude_dirs.end(),
                       [&](const std::string& e) { return e == name || e == rel; });
  };
  std::vector<fs::path> stack{root};
  while (!stack.empty()) {
    const fs::path dir = stack.back();
    stack.pop_back();
    std::vector<fs::directory_entry> entries;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      entries.push_back(*it);
    if (ec) throw Error("cannot read directory '" + dir.string() + "': " + ec.message());
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.path() < b.path(); });
    std::vector<fs::path> subdirs;
    for (const auto& e : entries) {
      std::error_code sec;
      if (e.is_directory(sec) && !e.is_symlink(sec)) {
        if (!excluded(e.path())) subdirs.push_back(e.path());
      } else if (e.is_regular_file(sec) && wanted(e.path())) {
        files.push_back(e.path());
      }
    }
    // depth first, in sorted order: push the last subdirectory first
    stack.insert(stack.end(), subdirs.rbegin(), subdirs.rend());
  }
  std::sort(files.begin(), files.end());
  return files;
}

/// The bytes of `path`; throws rodimus::Error when it cannot be read.
inline std::string read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) throw Error("cannot read '" + path.string() + "'");
  return text.str();
}

}  // namespace rodimus::io
