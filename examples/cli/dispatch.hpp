// Dispatch of the rodimus tool's commands to their implementations.
#pragma once

#include <rodimus/rodimus.hpp>

#include "args.hpp"
#include "commands.hpp"
#include "train.hpp"
#include "train_tokenizer.hpp"

namespace rodimus::cli {

/// Runs the command of `o` with weights stored as W.
template <class W>
int run_command(const Options& o) {
  switch (o.command) {
    case Command::Info:
      return run_info<W>(o);
    case Command::Logits:
      return run_logits<W>(o);
    case Command::Generate:
      return o.prompt ? run_generate_text<W>(o) : run_generate<W>(o);
    case Command::Chat:
      return run_chat<W>(o);
    case Command::Tokenize:
      return run_tokenize(o);
    case Command::Detokenize:
      return run_detokenize(o);
    case Command::TrainTokenizer:
      return run_train_tokenizer(o);
    case Command::Train:
      return run_train(o);
    case Command::Eval:
      return run_eval<W>(o);
    default:
      return exit_ok;
  }
}

/// Runs the command of `o`; Kokkos must be initialised.
inline int run(const Options& o) {
  return o.dtype == WeightDType::BF16 ? run_command<bf16>(o) : run_command<float>(o);
}

}  // namespace rodimus::cli
