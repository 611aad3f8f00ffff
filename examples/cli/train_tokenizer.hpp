// `rodimus train-tokenizer`: walks a directory, learns a byte-level BPE (io::BpeTrainer), writes
// its tokenizer.json and reports the compression it reaches on the input.
#pragma once

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <rodimus/rodimus.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "args.hpp"

namespace rodimus::cli {

namespace fs = std::filesystem;

/// `rodimus train-tokenizer`: a `key: value` summary on stdout.
inline int run_train_tokenizer(const Options& o) {
  using clock = std::chrono::steady_clock;
  const auto seconds = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  const auto t0 = clock::now();
  std::error_code ec;
  const auto st = fs::status(o.input, ec);
  if (!fs::exists(st)) throw Error("input directory '" + o.input + "' does not exist");
  if (!fs::is_directory(st)) throw Error("input '" + o.input + "' is not a directory");
  const fs::path out(*o.out);
  if (fs::is_directory(out, ec)) throw Error("--out '" + *o.out + "' is a directory");
  const fs::path parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  if (!fs::is_directory(parent, ec))
    throw Error("cannot write tokenizer file '" + *o.out + "': directory '" + parent.string() +
                "' does not exist");

  io::BpeTrainerOptions options;
  options.vocab_size = static_cast<std::size_t>(o.vocab);
  options.min_frequency = static_cast<std::uint64_t>(o.min_frequency);
  options.special_tokens = o.specials;
  options.pattern = std::string(o.pattern == "gpt2" ? io::gpt2_pattern : io::code_pattern);
  // options the trainer refuses (a special token that is a byte symbol, ...) are usage errors
  io::BpeTrainer trainer = [&] {
    try {
      return io::BpeTrainer(options);
    } catch (const ArgumentError& e) {
      throw UsageError(e.what());
    }
  }();

  const std::vector<fs::path> files = io::list_text_files(o.input, {o.extensions, o.exclude_dirs});
  if (files.empty()) {
    std::string which;
    for (const auto& e : o.extensions) which += (which.empty() ? "" : " or ") + e;
    throw Error("no files" + (which.empty() ? std::string() : " ending in " + which) + " under '" +
                o.input + "'");
  }
  // --skip-heldout: leave out the files rodimus train holds out (train/data_split.hpp's rule)
  std::vector<bool> heldout(files.size(), false);
  if (o.skip_heldout) {
    std::vector<std::string> rel;
    for (const fs::path& f : files) rel.push_back(f.lexically_relative(o.input).generic_string());
    heldout = train::heldout_mask(rel);
  }
  std::vector<fs::path> used;
  std::uint64_t bytes = 0;
  std::size_t skipped = 0, held = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const fs::path& f = files[i];
    if (heldout[i]) {
      ++held;
      continue;
    }
    const std::string text = io::read_file_bytes(f);
    if (!io::detail::is_valid_utf8(text)) {
      ++skipped;
      continue;
    }
    bytes += text.size();
    trainer.add_text(text);
    used.push_back(f);
  }
  if (used.empty())
    throw Error("none of the " + std::to_string(files.size()) + " files under '" + o.input +
                "' is valid UTF-8");
  const auto t1 = clock::now();
  const io::TrainedBpe bpe = trainer.train();
  const auto t2 = clock::now();
  {
    const std::string json = bpe.dump();
    std::ofstream file(out, std::ios::binary | std::ios::trunc);
    if (file) file.write(json.data(), static_cast<std::streamsize>(json.size()));
    file.close();
    if (!file) throw Error("cannot write tokenizer file '" + *o.out + "'");
  }
  const auto t3 = clock::now();

  // The written file, loaded back, encodes the input: the compression it reaches.
  const io::Tokenizer tok = io::Tokenizer::from_file(out);
  std::uint64_t tokens = 0;
  for (const fs::path& f : used) tokens += tok.encode(io::read_file_bytes(f)).size();
  const auto t4 = clock::now();

  if (bpe.tokens.size() < options.vocab_size)
    fmt::print(stderr,
               "rodimus: note: no pair left to merge{}: the vocabulary has {} tokens, not {}\n",
               o.min_frequency > 1 ? fmt::format(" at least {} times", o.min_frequency) : "",
               bpe.tokens.size(), options.vocab_size);
  fmt::print("input: {}\n", o.input);
  fmt::print("files: {}\n", used.size());
  fmt::print("skipped_not_utf8: {}\n", skipped);
  if (o.skip_heldout) fmt::print("skipped_heldout: {}\n", held);
  fmt::print("bytes: {}\n", bytes);
  fmt::print("words: {}\n", trainer.words());
  fmt::print("word_types: {}\n", trainer.word_types());
  fmt::print("vocab_size: {}\n", bpe.tokens.size());
  fmt::print("merges: {}\n", bpe.merges.size());
  fmt::print("special_tokens: {}\n", bpe.special_count);
  fmt::print("read_seconds: {:.3f}\n", seconds(t0, t1));
  fmt::print("train_seconds: {:.3f}\n", seconds(t1, t2));
  fmt::print("write_seconds: {:.3f}\n", seconds(t2, t3));
  fmt::print("encode_seconds: {:.3f}\n", seconds(t3, t4));
  fmt::print("tokens: {}\n", tokens);
  fmt::print("bytes_per_token: {:.4f}\n", tokens > 0 ? double(bytes) / double(tokens) : 0.0);
  fmt::print("out: {}\n", *o.out);
  return exit_ok;
}

}  // namespace rodimus::cli
