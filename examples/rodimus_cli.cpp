// The rodimus command-line tool: model info, logits, generation from ids or text, chat,
// tokenize, detokenize, tokenizer training, training and held-out evaluation.
#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <rodimus/backend/host/blas_threads.hpp>
#include <rodimus/rodimus.hpp>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/dispatch.hpp"

namespace {

int usage_error(const char* what) {
  fmt::print(stderr, "rodimus: error: {}\n\n{}", what, rodimus::cli::usage_text());
  return rodimus::cli::exit_usage;
}

int failure(const char* what) {
  fmt::print(stderr, "rodimus: error: {}\n", what);
  return rodimus::cli::exit_failure;
}

/// `status`, or a failure when standard output could not be written.
int flushed(int status) {
  if (std::fflush(stdout) != 0) return failure("cannot write to standard output");
  return status;
}

}  // namespace

int main(int argc, char* argv[]) {
  // OpenBLAS's threads must not spin on the cores the prefill's Kokkos kernels need next
  rodimus::backend::host::reexec_with_quiet_idle_threads(argv);
  namespace cli = rodimus::cli;
  // --kokkos-* arguments go to Kokkos, the rest to our parser; Kokkos never sees --help.
  std::vector<std::string> args;
  std::vector<char*> kokkos_argv{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (cli::is_kokkos_arg(argv[i])) {
      kokkos_argv.push_back(argv[i]);
    } else {
      args.emplace_back(argv[i]);
    }
  }

  cli::Options options;
  try {
    options = cli::parse_args(args);
  } catch (const cli::UsageError& e) {
    return usage_error(e.what());
  } catch (const std::exception& e) {
    return failure(e.what());
  }
  if (options.command == cli::Command::Help) {
    fmt::print("{}", cli::usage_text());
    return flushed(cli::exit_ok);
  }
  if (options.command == cli::Command::Version) {
    fmt::print("rodimus {}\n", RODIMUS_VERSION_STRING);
    return flushed(cli::exit_ok);
  }

  // OpenMP Kokkos warns about OMP_PROC_BIND unless it is set.
  setenv("OMP_PROC_BIND", "false", /*overwrite=*/0);
  int kokkos_argc = static_cast<int>(kokkos_argv.size());
  kokkos_argv.push_back(nullptr);
  int status = cli::exit_failure;
  try {
    // Every view lives inside run(), so all are gone before the guard finalises Kokkos.
    Kokkos::ScopeGuard kokkos(kokkos_argc, kokkos_argv.data());
    status = cli::run(options);
  } catch (const cli::UsageError& e) {
    return usage_error(e.what());
  } catch (const rodimus::Error& e) {
    return failure(e.what());
  } catch (const std::exception& e) {
    return failure(e.what());
  } catch (...) {
    return failure("unknown exception");
  }
  return flushed(status);
}
