// AdamW with decoupled weight decay (PyTorch semantics): fp32 moments per parameter, on any space.
#pragma once

#include <Kokkos_Core.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "rodimus/core/error.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/train/parameters.hpp"

namespace rodimus::train {

/// AdamW hyper-parameters (PyTorch's defaults but weight_decay, which is the usual LM value).
struct AdamWConfig {
  double lr = 1e-3;  ///< used by step() when no learning rate is passed
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.1;  ///< applied to parameters with `decay` set only
};

/// AdamW over a ParameterSet. One step, at step count t (1-based, after the increment), for each
/// parameter p with gradient g, as torch.optim.AdamW (amsgrad off, maximize off):
///   p <- p * (1 - lr * wd)                       (wd = weight_decay if p.decay else 0)
///   m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2
///   p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// which is p -= lr (m_hat / (sqrt(v_hat) + eps) + wd p) with the decay term taken on the old p.
/// The scalar coefficients are computed in fp64 on the host; the update runs in fp32, one
/// elementwise kernel per parameter (deterministic: no reductions).
template <class Space>
class AdamW {
 public:
  AdamW() = default;
  /// Zero moments shaped like `params`, step count 0.
  AdamW(const ParameterSet<Space>& params, const AdamWConfig& cfg = {}) : cfg_(cfg) {
    for (const auto& p : params) {
      m_.push_back(View1<float, Space>(p.name + ".exp_avg", std::size_t(p.numel())));
      v_.push_back(View1<float, Space>(p.name + ".exp_avg_sq", std::size_t(p.numel())));
    }
  }

  const AdamWConfig& config() const { return cfg_; }
  AdamWConfig& config() { return cfg_; }

  /// Steps taken so far (PyTorch's state["step"]); the bias corrections use it.
  std::int64_t step_count() const { return t_; }
  void set_step_count(std::int64_t t) { t_ = t; }

  /// First and second moments of parameter i: [numel] fp32.
  const View1<float, Space>& exp_avg(std::size_t i) const { return m_.at(i); }
  const View1<float, Space>& exp_avg_sq(std::size_t i) const { return v_.at(i); }
  std::size_t size() const { return m_.size(); }

  /// One AdamW step with learning rate `lr` on every parameter (enqueued on `space`, not fenced).
  /// Throws ArgumentError when `params` is not the set this optimiser was built for (count or
  /// sizes differ).
  void step(ParameterSet<Space>& params, double lr, const Space& space = Space()) {
    check(params);
    ++t_;
    const double bc1 = 1.0 - std::pow(cfg_.beta1, double(t_));
    const double bc2 = 1.0 - std::pow(cfg_.beta2, double(t_));
    const float b1 = float(cfg_.beta1), b2 = float(cfg_.beta2);
    const float c1 = float(1.0 - cfg_.beta1), c2 = float(1.0 - cfg_.beta2);
    const float step_size = float(lr / bc1);
    const float sqrt_bc2 = float(std::sqrt(bc2));
    const float eps = float(cfg_.eps);
    for (std::size_t i = 0; i < m_.size(); ++i) {
      auto& p = params[i];
      const float keep = float(1.0 - lr * (p.decay ? cfg_.weight_decay : 0.0));
      auto w = p.value;
      auto g = p.grad;
      auto m = m_[i];
      auto v = v_[i];
      Kokkos::parallel_for(
          "rodimus::train::adamw_step",
          Kokkos::RangePolicy<Space>(space, 0, std::int64_t(w.extent(0))),
          KOKKOS_LAMBDA(const std::int64_t j) {
            const float gj = g(j);
            const float mj = b1 * m(j) + c1 * gj;
            const float vj = b2 * v(j) + c2 * gj * gj;
            m(j) = mj;
            v(j) = vj;
            // the operation order of torch's _single_tensor_adamw
            const float denom = ::rodimus::detail::kmath::sqrt(vj) / sqrt_bc2 + eps;
            w(j) = w(j) * keep - step_size * (mj / denom);
          });
    }
  }

  /// step() at the configured learning rate config().lr.
  void step(ParameterSet<Space>& params) { step(params, cfg_.lr); }

 private:
  void check(const ParameterSet<Space>& params) const {
    if (params.size() != m_.size())
      throw ArgumentError("AdamW::step: " + std::to_string(params.size()) +
                          " parameters, the optimiser was built for " + std::to_string(m_.size()));
    for (std::size_t i = 0; i < m_.size(); ++i)
      if (params[i].numel() != std::int64_t(m_[i].extent(0)) ||
          std::int64_t(params[i].grad.extent(0)) != params[i].numel())
        throw ArgumentError("AdamW::step: parameter '" + params[i].name + "' has " +
                            std::to_string(params[i].numel()) + " elements, its state " +
                            std::to_string(m_[i].extent(0)));
  }

  AdamWConfig cfg_;
  std::vector<View1<float, Space>> m_, v_;
  std::int64_t t_ = 0;
};

}  // namespace rodimus::train
