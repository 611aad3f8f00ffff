// The operand precision of the GPU's tensor-core products (projections, GLA scan, attention).
#pragma once

namespace rodimus {

/// How fp32 activations enter the tensor cores on a GPU (Workspace::gpu_operands) and the
/// bf16-weight GEMMs on the host (Workspace::host_operands; Split there means fp32 operands).
/// Accumulation and every stored activation stay fp32 either way.
enum class OperandPrecision {
  /// Each fp32 operand as two 16-bit halves (x = hi + lo, ~16 significant bits): results as
  /// accurate as fp32 products (~1e-5 relative), at two to three times the tensor-core work.
  /// The default.
  Split,
  /// Each fp32 operand rounded once to bf16 (the weights' 16-bit type for the projections),
  /// as the authors' bf16 PyTorch release computes: half the GEMM work of Split; the logits
  /// moved by 0.3 % (2-norm) on test_model_device's random Rodimus+ model on an H200.
  Bf16
};

}  // namespace rodimus
