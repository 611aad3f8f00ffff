// The training corpus: a directory of text files, split by file into train and held-out,
// tokenized into two token streams with an end-of-text separator between files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "rodimus/core/error.hpp"
#include "rodimus/io/text_files.hpp"
#include "rodimus/io/tokenizer.hpp"
#include "rodimus/io/tokenizer/utf8.hpp"
#include "rodimus/train/data_split.hpp"

namespace rodimus::train {

/// What a corpus is made of and how it is split.
struct CorpusOptions {
  io::FileFilter filter;                               ///< which files (extensions, excluded dirs)
  double heldout_fraction = default_heldout_fraction;  ///< data_split.hpp's rule
  std::string separator = "<|endoftext|>";             ///< token put before every file (must exist)
};

/// One file of the corpus.
struct CorpusFile {
  std::string path;         ///< relative to the corpus root, '/' separators
  std::uint64_t bytes = 0;  ///< size in bytes
  bool heldout = false;     ///< in the held-out set (heldout_mask)
  bool skipped = false;     ///< not valid UTF-8: in neither stream
};

/// Token ids of a set of files: `sep f_1 sep f_2 ... sep f_n sep`, where sep is the separator
/// id and f_i the ids of file i's text. Every token after the first is a prediction target: the
/// text of every file (its first token predicted from the separator, as from a BOS) and the
/// separator that ends it.
struct TokenStream {
  std::vector<std::int32_t> ids;
  std::uint64_t bytes = 0;  ///< UTF-8 bytes of the files' text (the separators have none)
  std::size_t files = 0;
  /// Prediction targets: ids.size() - 1 (0 when empty).
  std::int64_t targets() const { return ids.empty() ? 0 : std::int64_t(ids.size()) - 1; }
};

/// A corpus read, split and tokenized.
struct Corpus {
  std::vector<CorpusFile> files;  ///< every listed file, in sorted path order
  TokenStream train, heldout;
  std::int32_t separator_id = -1;
  std::size_t skipped_not_utf8 = 0;
};

/// The files of the corpus under `root` with their split flags, without reading them: the list
/// io::list_text_files gives and heldout_mask over their relative paths. Throws rodimus::Error
/// when `root` is not a directory or holds no selected file.
inline std::vector<CorpusFile> corpus_files(const std::filesystem::path& root,
                                            const CorpusOptions& opt) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto st = fs::status(root, ec);
  if (!fs::exists(st)) throw Error("data directory '" + root.string() + "' does not exist");
  if (!fs::is_directory(st)) throw Error("data path '" + root.string() + "' is not a directory");
  const auto paths = io::list_text_files(root, opt.filter);
  if (paths.empty()) {
    std::string which;
    for (const auto& e : opt.filter.extensions) which += (which.empty() ? "" : " or ") + e;
    throw Error("no files" + (which.empty() ? std::string() : " ending in " + which) + " under '" +
                root.string() + "'");
  }
  std::vector<std::string> rel;
  rel.reserve(paths.size());
  for (const auto& p : paths) rel.push_back(p.lexically_relative(root).generic_string());
  const auto mask = heldout_mask(rel, opt.heldout_fraction);
  std::vector<CorpusFile> files(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    files[i].path = rel[i];
    files[i].bytes = static_cast<std::uint64_t>(fs::file_size(paths[i], ec));
    files[i].heldout = mask[i];
  }
  return files;
}

/// Reads the corpus under `root`, splits it (corpus_files) and tokenizes each side into a
/// TokenStream, files in sorted path order. Files that are not valid UTF-8 are skipped and
/// counted (as train-tokenizer does). Throws rodimus::Error when the separator is not a token
/// of `tok` or a file cannot be read.
inline Corpus load_corpus(const std::filesystem::path& root, const io::Tokenizer& tok,
                          const CorpusOptions& opt = {}) {
  Corpus c;
  const auto sep = tok.token_to_id(opt.separator);
  if (!sep)
    throw Error("the tokenizer has no token '" + opt.separator +
                "' (the end-of-text separator between files)");
  c.separator_id = *sep;
  c.files = corpus_files(root, opt);
  c.train.ids.push_back(c.separator_id);
  c.heldout.ids.push_back(c.separator_id);
  for (auto& f : c.files) {
    const std::string text = io::read_file_bytes(root / f.path);
    if (!io::detail::is_valid_utf8(text)) {
      f.skipped = true;
      ++c.skipped_not_utf8;
      continue;
    }
    TokenStream& s = f.heldout ? c.heldout : c.train;
    const auto ids = tok.encode(text);
    s.ids.insert(s.ids.end(), ids.begin(), ids.end());
    s.ids.push_back(c.separator_id);
    s.bytes += text.size();
    ++s.files;
  }
  if (c.train.files == 0) c.train.ids.clear();
  if (c.heldout.files == 0) c.heldout.ids.clear();
  return c;
}

}  // namespace rodimus::train
