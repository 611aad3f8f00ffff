// The operand precision of the host's projections for the forward call in flight (the host
// counterpart of CudaContext::operands): set per call by the model, read by ops/linear.hpp.
#pragma once

#include "rodimus/core/precision.hpp"

namespace rodimus::backend::host {

namespace detail {
inline OperandPrecision& operands_slot() {
  thread_local OperandPrecision p = OperandPrecision::Split;
  return p;
}
}  // namespace detail

/// The operand precision of the calling thread's host projections: Split (the default) keeps
/// fp32 activations; Bf16 rounds them once to bf16 for the bf16-weight GEMMs (bf16_gemm.hpp).
inline OperandPrecision host_operands() { return detail::operands_slot(); }

/// Sets host_operands() of the calling thread for a scope (a forward call) and restores it.
class HostOperandScope {
 public:
  explicit HostOperandScope(OperandPrecision p) : saved_(detail::operands_slot()) {
    detail::operands_slot() = p;
  }
  ~HostOperandScope() { detail::operands_slot() = saved_; }
  HostOperandScope(const HostOperandScope&) = delete;
  HostOperandScope& operator=(const HostOperandScope&) = delete;

 private:
  OperandPrecision saved_;
};

}  // namespace rodimus::backend::host
