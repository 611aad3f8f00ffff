// The training data pipeline: the held-out split rule, token streams and their byte counts,
// batch sampling (deterministic, resumable, independent of micro-batching), evaluation windows.
#include <cmath>
#include <map>
#include <numbers>
#include <set>

#include "rodimus/io/tokenizer.hpp"
#include "rodimus/train/batch_sampler.hpp"
#include "rodimus/train/corpus.hpp"
#include "rodimus/train/data_split.hpp"
#include "rodimus/train/evaluate.hpp"
#include "train_test_util.hpp"

using namespace rodimus;
namespace fs = std::filesystem;

namespace {

train::CorpusOptions py_options() {
  train::CorpusOptions o;
  o.filter.extensions = {".py"};
  o.filter.exclude_dirs = {"test"};
  return o;
}

}  // namespace

TEST_CASE("data split: FNV-1a and the held-out rule", "[train][dataset]") {
  // published FNV-1a 64 test vectors
  CHECK(train::fnv1a64("") == 0xcbf29ce484222325ull);
  CHECK(train::fnv1a64("a") == 0xaf63dc4c8601ec8cull);
  CHECK(train::fnv1a64("foobar") == 0x85944171f73967e8ull);

  CHECK(train::heldout_count(0, 0.05) == 0);
  CHECK(train::heldout_count(1, 0.05) == 1);
  CHECK(train::heldout_count(20, 0.05) == 1);
  CHECK(train::heldout_count(30, 0.05) == 2);  // 1.5 rounds away from zero
  CHECK(train::heldout_count(638, 0.05) == 32);
  CHECK(train::heldout_count(10, 0.0) == 0);
  CHECK_THROWS_AS(train::heldout_count(10, 1.0), ArgumentError);
  CHECK_THROWS_AS(train::heldout_count(10, -0.1), ArgumentError);

  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  std::vector<std::string> paths;
  for (int i = 0; i < 200; ++i)
    paths.push_back("dir" + std::to_string(rng.integer(0, 9)) + "/f" + std::to_string(i) + ".py");
  const auto mask = train::heldout_mask(paths);
  CHECK(std::count(mask.begin(), mask.end(), true) == 10);
  // the held-out files are those with the smallest hashes
  std::uint64_t max_in = 0, min_out = ~0ull;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const auto h = train::fnv1a64(paths[i]);
    if (mask[i])
      max_in = std::max(max_in, h);
    else
      min_out = std::min(min_out, h);
  }
  CHECK(max_in < min_out);
  // the order the files are given in does not matter
  auto shuffled = paths;
  std::shuffle(shuffled.begin(), shuffled.end(), rng.gen);
  const auto mask2 = train::heldout_mask(shuffled);
  std::set<std::string> a, b;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (mask[i]) a.insert(paths[i]);
    if (mask2[i]) b.insert(shuffled[i]);
  }
  CHECK(a == b);
}

TEST_CASE("corpus: split by file, streams and byte counts", "[train][dataset]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  test::TempDir dir("corpus");
  const auto rel = test::write_markov_corpus(dir.path, 41, rng.seed);
  // a file that is not UTF-8 is skipped and counted
  { std::ofstream(dir.path / "b" / "latin1.py", std::ios::binary) << "caf\xe9\n"; }
  const auto tok = io::Tokenizer::from_file(test::small_tokenizer_file());
  const auto opt = py_options();

  const auto files = train::corpus_files(dir.path, opt);
  REQUIRE(files.size() == rel.size() + 1);  // + latin1.py; not test/ nor the .txt
  for (const auto& f : files)
    CHECK((f.path.starts_with("test/") || f.path.ends_with(".txt")) == false);
  const auto n_held = std::count_if(files.begin(), files.end(), [](auto& f) { return f.heldout; });
  CHECK(n_held == 2);  // round(0.05 * 42)

  const train::Corpus c = train::load_corpus(dir.path, tok, opt);
  CHECK(c.separator_id == 510);
  CHECK(c.skipped_not_utf8 == 1);
  // the same split as corpus_files, and the same again on a second load
  const train::Corpus c2 = train::load_corpus(dir.path, tok, opt);
  CHECK(c2.train.ids == c.train.ids);
  CHECK(c2.heldout.ids == c.heldout.ids);
  std::uint64_t train_bytes = 0, held_bytes = 0;
  std::size_t train_files = 0, held_files = 0;
  std::string train_text, held_text;
  for (std::size_t i = 0; i < files.size(); ++i) {
    CHECK(c.files[i].path == files[i].path);
    CHECK(c.files[i].heldout == files[i].heldout);
    if (c.files[i].skipped) continue;
    const std::string text = io::read_file_bytes(dir.path / files[i].path);
    CHECK(text.size() == files[i].bytes);
    (files[i].heldout ? held_bytes : train_bytes) += text.size();
    (files[i].heldout ? held_files : train_files) += 1;
    (files[i].heldout ? held_text : train_text) += "<|endoftext|>" + text;
  }
  CHECK(c.train.bytes == train_bytes);
  CHECK(c.heldout.bytes == held_bytes);
  CHECK(c.train.files == train_files);
  CHECK(c.heldout.files == held_files);
  // sep f1 sep f2 ... sep: decoding gives the files' text with the separators
  CHECK(tok.decode(c.train.ids) == train_text + "<|endoftext|>");
  CHECK(tok.decode(c.heldout.ids) == held_text + "<|endoftext|>");
  CHECK(c.heldout.targets() == std::int64_t(c.heldout.ids.size()) - 1);

  // the split does not depend on file contents or on other folders being created first
  test::TempDir dir2("corpus2");
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    fs::create_directories((dir2.path / it->path).parent_path());
    std::ofstream(dir2.path / it->path) << "x = 1\n";
  }
  const auto files2 = train::corpus_files(dir2.path, opt);
  REQUIRE(files2.size() == files.size());
  for (std::size_t i = 0; i < files.size(); ++i) CHECK(files2[i].heldout == files[i].heldout);

  // errors name the problem
  CHECK_THROWS_WITH(train::corpus_files(dir.path / "none", opt), Catch::Contains("does not exist"));
  auto none = opt;
  none.filter.extensions = {".nothing"};
  CHECK_THROWS_WITH(train::corpus_files(dir.path, none),
                    Catch::Contains("no files ending in .nothing"));
  auto bad_sep = opt;
  bad_sep.separator = "<|nope|>";
  CHECK_THROWS_WITH(train::load_corpus(dir.path, tok, bad_sep),
                    Catch::Contains("has no token '<|nope|>'"));
}

TEST_CASE("batch sampler: deterministic, resumable, micro-batch independent", "[train][dataset]") {
  test::TestRng rng;
  RODIMUS_SEED_INFO(rng);
  std::vector<std::int32_t> stream(5000);
  for (std::size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<std::int32_t>(i);
  const int t = 16;
  const std::uint64_t seed = rng.seed;
  const train::BatchSampler s(stream, t, seed);
  const auto full = s.batch(7, 0, 8);
  REQUIRE(full.tokens.size() == 8u * (t + 1));
  // every row is a contiguous slice of the stream
  for (int b = 0; b < 8; ++b) {
    const auto row = full.row(b);
    CHECK(row[0] == s.offset(7, b));
    for (int i = 1; i <= t; ++i) CHECK(row[std::size_t(i)] == row[0] + i);
    CHECK(full.inputs(b).size() == std::size_t(t));
    CHECK(full.targets(b)[0] == row[1]);
  }
  // the same batch from a fresh sampler (a resumed run), and from micro-batches
  const train::BatchSampler s2(stream, t, seed);
  CHECK(s2.batch(7, 0, 8).tokens == full.tokens);
  std::vector<std::int32_t> parts;
  for (int m = 0; m < 4; ++m) {
    const auto mb = s2.batch(7, 2 * m, 2);
    parts.insert(parts.end(), mb.tokens.begin(), mb.tokens.end());
  }
  CHECK(parts == full.tokens);
  // other steps and other seeds give other batches
  CHECK(s.batch(8, 0, 8).tokens != full.tokens);
  CHECK(train::BatchSampler(stream, t, seed + 1).batch(7, 0, 8).tokens != full.tokens);
  // starts cover [0, n - T - 1] evenly
  double sum = 0;
  std::int64_t lo = 1 << 30, hi = -1;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    const auto o = s.offset(i, i % 3);
    lo = std::min(lo, o);
    hi = std::max(hi, o);
    sum += double(o);
  }
  CHECK(lo >= 0);
  CHECK(hi <= std::int64_t(stream.size()) - t - 1);
  const double mid = double(stream.size() - t - 1) / 2;
  CHECK(std::abs(sum / draws - mid) < 0.03 * mid);
  CHECK_THROWS_AS(train::BatchSampler(std::span<const std::int32_t>(stream).first(16), 16, 1),
                  ArgumentError);
}

TEST_CASE("eval windows score every target once; bits per byte", "[train][dataset]") {
  for (int n : {2, 17, 33, 34, 100}) {
    for (int t : {1, 4, 16, 32}) {
      std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) ids[std::size_t(i)] = i;
      const auto w = train::eval_window_count(n, t);
      std::vector<int> seen(std::size_t(n), 0);
      for (std::int64_t k = 0; k < w; ++k) {
        const auto win = train::eval_window(ids, t, k);
        CHECK(win.size() >= 2);
        CHECK(win.size() <= std::size_t(t) + 1);
        for (std::size_t j = 1; j < win.size(); ++j) ++seen[std::size_t(win[j])];
      }
      CHECK(seen[0] == 0);
      for (int i = 1; i < n; ++i) CHECK(seen[std::size_t(i)] == 1);
    }
  }
  train::EvalResult r;
  r.nats = 8 * std::numbers::ln2 * 100;  // 800 bits
  r.targets = 50;
  r.bytes = 100;
  CHECK(r.bits_per_byte() == Approx(8.0));
  CHECK(r.loss() == Approx(16 * std::numbers::ln2));
}
