// How a backward op writes an input gradient: overwrite it, or add to what the caller holds.
#pragma once

namespace rodimus::grad {

/// Input gradients overwrite their buffer unless an op takes a GradMode and is given
/// `Accumulate`, which adds (`+=`) instead: for an activation that feeds several ops (fan-in),
/// e.g. the `h` read by both halves of a SwiGLU FFN's first projection. Weight gradients always
/// accumulate, whatever this says.
enum class GradMode : int {
  Overwrite = 0,  ///< dx = ...
  Accumulate = 1  ///< dx += ...
};

}  // namespace rodimus::grad
