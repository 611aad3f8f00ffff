// Tokenizer encode throughput on one core: a few MB of Python source (/usr/lib/python3.11/*.py)
// through the Qwen3 and Llama 3 tokenizer.json files of tests/data/tokenizer. Reports bytes/s
// and tokens/s. Set RODIMUS_BENCH_TEXT_DIR to read another folder of .py files, and
// RODIMUS_TOKENIZER_DIR for another folder of tokenizer files (default: the source tree's).
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench_main.hpp"
#include "rodimus/io/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;

/// About `limit` bytes of Python source, files in name order (the same text every run).
const std::string& corpus() {
  static const std::string text = [] {
    const char* env = std::getenv("RODIMUS_BENCH_TEXT_DIR");
    const fs::path dir = env ? env : "/usr/lib/python3.11";
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".py") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    constexpr std::size_t limit = 4 << 20;
    std::string all;
    for (const auto& f : files) {
      if (all.size() >= limit) break;
      std::ifstream in(f, std::ios::binary);
      std::ostringstream s;
      s << in.rdbuf();
      all += s.str();
    }
    return all;
  }();
  return text;
}

fs::path tokenizer_dir() {
  if (const char* env = std::getenv("RODIMUS_TOKENIZER_DIR")) return env;
  return fs::path(__FILE__).parent_path().parent_path() / "tests" / "data" / "tokenizer";
}

void bm_encode(benchmark::State& state, const char* file) {
  const std::string& text = corpus();
  if (text.empty()) {
    state.SkipWithError("no .py files found (set RODIMUS_BENCH_TEXT_DIR)");
    return;
  }
  const auto tok = rodimus::io::Tokenizer::from_file(tokenizer_dir() / file);
  std::size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = tok.encode(text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens * state.iterations()),
                                                  benchmark::Counter::kIsRate);
  state.counters["MB"] = static_cast<double>(text.size()) / 1e6;
}

BENCHMARK_CAPTURE(bm_encode, qwen3, "qwen3.json")->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(bm_encode, llama3, "llama3.json")->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

RODIMUS_BENCHMARK_MAIN()
