// Command-line parsing of the rodimus tool: subcommands, options, token id lists, usage text.
#pragma once

#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace rodimus::cli {

/// Exit status of a successful run, a runtime failure (loading, I/O) and a usage error.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

/// A wrong command line: the message names the problem; the tool prints it with the usage
/// and exits with `exit_usage`.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Command { Help, Version, Info, Logits, Generate };

/// Weight storage type in memory.
enum class WeightDType { F32, BF16 };

inline std::string_view dtype_name(WeightDType d) { return d == WeightDType::F32 ? "f32" : "bf16"; }

/// Everything the command line asked for.
struct Options {
  Command command = Command::Help;
  std::string model;                     ///< --model DIR
  std::vector<std::int32_t> ids;         ///< --ids 5,17,3
  std::optional<std::string> out;        ///< --out FILE (logits)
  int max_new_tokens = 20;               ///< -n N (generate)
  bool stop_at_eos = false;              ///< --stop-at-eos (generate)
  WeightDType dtype = WeightDType::F32;  ///< --dtype f32|bf16
};

/// The usage text printed by `rodimus help` and after every usage error.
inline std::string usage_text() {
  return R"(usage: rodimus <command> [options] [--kokkos-*...]

Runs Rodimus / Rodimus+ language models (a directory with config.json and
model.safetensors or a sharded model.safetensors.index.json).

commands:
  info      --model DIR                  print the configuration, parameter count,
                                         decode state size, weight dtype, backend
  logits    --model DIR --ids LIST [--out FILE]
                                         run one forward pass; print the top-5 ids of
                                         the last position, and max |logit| and the sum
                                         over all T x V logits; --out writes `logits`
                                         F32 [T, V] and `input_ids` I64 [T] (safetensors)
  generate  --model DIR --ids LIST [-n N] [--stop-at-eos]
                                         greedy decoding: prints the N generated ids
                                         (default 20) comma-separated on stdout and a
                                         timing line on stderr; --stop-at-eos stops
                                         after a config eos id
  help      print this text (also -h, --help)

options:
  --model DIR       model directory
  --ids LIST        comma-separated token ids, e.g. 5,17,3
  --out FILE        safetensors file for the logits (logits only)
  -n, --max-new-tokens N
                    tokens to generate, N >= 0 (generate only)
  --stop-at-eos     stop after generating an eos id of the config (generate only)
  --dtype f32|bf16  weight storage type in memory (default f32); arithmetic is fp32
  --version         print the version
  --kokkos-*        passed to Kokkos, e.g. --kokkos-threads=4 (Kokkos 3) or
                    --kokkos-num-threads=4 (Kokkos 4); OMP_NUM_THREADS works too

exit status: 0 success, 1 runtime error (unreadable model, write failure), 2 usage error
)";
}

/// Parses "5,17,3" into token ids. Each entry is a decimal integer in [0, 2^31), optionally
/// surrounded by spaces. Throws UsageError naming the bad entry.
inline std::vector<std::int32_t> parse_ids(std::string_view text) {
  std::vector<std::int32_t> ids;
  const auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  std::size_t start = 0;
  for (std::size_t index = 0;; ++index) {
    const std::size_t comma = text.find(',', start);
    std::string_view item = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!item.empty() && is_space(item.front())) item.remove_prefix(1);
    while (!item.empty() && is_space(item.back())) item.remove_suffix(1);
    if (item.empty()) {
      if (text.find_first_not_of(" \t") == std::string_view::npos)
        throw UsageError("--ids is empty: give at least one token id");
      throw UsageError("--ids: entry " + std::to_string(index) + " is empty in '" +
                       std::string(text) + "'");
    }
    std::int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec == std::errc::result_out_of_range ||
        (ec == std::errc() && ptr == item.data() + item.size() &&
         v > std::numeric_limits<std::int32_t>::max()))
      throw UsageError("--ids: token id '" + std::string(item) + "' is too large");
    if (ec != std::errc() || ptr != item.data() + item.size() || item.front() == '+')
      throw UsageError("--ids: '" + std::string(item) +
                       "' is not a token id (a non-negative integer)");
    if (v < 0) throw UsageError("--ids: token id " + std::to_string(v) + " is negative");
    ids.push_back(static_cast<std::int32_t>(v));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return ids;
}

/// Parses the value of -n: a decimal integer in [0, 2^31).
inline int parse_count(std::string_view flag, std::string_view text) {
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && ptr == text.data() + text.size() && v < 0)
    throw UsageError(std::string(flag) + " must be non-negative, got " + std::string(text));
  if (ec == std::errc::result_out_of_range ||
      (ec == std::errc() && ptr == text.data() + text.size() &&
       v > std::numeric_limits<std::int32_t>::max()))
    throw UsageError(std::string(flag) + " is too large: " + std::string(text));
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size())
    throw UsageError(std::string(flag) + " needs a non-negative integer, got '" +
                     std::string(text) + "'");
  return static_cast<int>(v);
}

/// True for an argument Kokkos consumes (`--kokkos-...`); the tool forwards these.
inline bool is_kokkos_arg(std::string_view a) { return a.starts_with("--kokkos-"); }

/// Parses the arguments after the program name, `--kokkos-*` ones already removed.
/// Throws UsageError for anything it does not accept.
inline Options parse_args(const std::vector<std::string>& args) {
  Options o;
  if (args.empty()) throw UsageError("no command given");
  const std::string& cmd = args[0];
  if (cmd == "help" || cmd == "-h" || cmd == "--help") {
    o.command = Command::Help;
    return o;  // anything after help is ignored
  }
  if (cmd == "--version") {
    if (args.size() > 1) throw UsageError("unexpected argument '" + args[1] + "' after --version");
    o.command = Command::Version;
    return o;
  }
  if (cmd == "info") {
    o.command = Command::Info;
  } else if (cmd == "logits") {
    o.command = Command::Logits;
  } else if (cmd == "generate") {
    o.command = Command::Generate;
  } else if (cmd.starts_with("-")) {
    throw UsageError("expected a command before option '" + cmd + "'");
  } else {
    throw UsageError("unknown command '" + cmd + "'");
  }

  bool seen_model = false, seen_ids = false, seen_out = false, seen_n = false, seen_dtype = false,
       seen_eos = false;
  const auto once = [&](bool& seen, std::string_view name) {
    if (seen) throw UsageError("option '" + std::string(name) + "' given twice");
    seen = true;
  };
  const auto only_if = [&](std::string_view name, bool valid) {
    if (!valid)
      throw UsageError("option '" + std::string(name) + "' is not valid for '" + cmd + "'");
  };
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      o = Options{};
      o.command = Command::Help;
      return o;
    }
    // --name=value or --name value
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (arg.starts_with("--")) {
      if (const auto eq = arg.find('='); eq != std::string::npos) {
        name = arg.substr(0, eq);
        inline_value = arg.substr(eq + 1);
      }
    }
    const auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size() || args[i + 1].starts_with("--"))
        throw UsageError("option '" + name + "' needs a value");
      return args[++i];
    };
    if (name == "--model") {
      once(seen_model, name);
      o.model = value();
      if (o.model.empty()) throw UsageError("option '--model' needs a value");
    } else if (name == "--ids") {
      only_if(name, o.command != Command::Info);
      once(seen_ids, name);
      o.ids = parse_ids(value());
    } else if (name == "--out") {
      only_if(name, o.command == Command::Logits);
      once(seen_out, name);
      o.out = value();
      if (o.out->empty()) throw UsageError("option '--out' needs a value");
    } else if (name == "-n" || name == "--max-new-tokens") {
      only_if(name, o.command == Command::Generate);
      once(seen_n, "-n");
      o.max_new_tokens = parse_count(name, value());
    } else if (name == "--stop-at-eos") {
      only_if(name, o.command == Command::Generate);
      if (inline_value) throw UsageError("option '--stop-at-eos' takes no value");
      once(seen_eos, name);
      o.stop_at_eos = true;
    } else if (name == "--dtype") {
      once(seen_dtype, name);
      const std::string d = value();
      if (d == "f32") {
        o.dtype = WeightDType::F32;
      } else if (d == "bf16") {
        o.dtype = WeightDType::BF16;
      } else {
        throw UsageError("--dtype must be f32 or bf16, got '" + d + "'");
      }
    } else if (arg.starts_with("-")) {
      throw UsageError("unknown option '" + name + "' for '" + cmd + "'");
    } else {
      throw UsageError("unexpected argument '" + arg + "'");
    }
  }
  if (!seen_model) throw UsageError("missing --model DIR");
  if (o.command != Command::Info && !seen_ids) throw UsageError("missing --ids LIST");
  return o;
}

}  // namespace rodimus::cli
