// The parameters of a ParameterSet in the training arithmetic type Real: aliases of the fp32
// masters and gradients (Real = float), or fp64 copies for the gradient checks (Real = double).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "rodimus/core/error.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/train/parameters.hpp"

namespace rodimus::train {

/// One parameter as the training forward and backward read it: flat `value` and `grad` views of
/// numel() Real elements, row-major over [rows, cols] (cols = the product of the trailing dims).
template <class Real, class Space>
struct RealParameter {
  std::string name;
  std::int64_t rows = 0, cols = 0;
  View1<Real, Space> value;  ///< [rows * cols]
  View1<Real, Space> grad;   ///< [rows * cols], accumulated by the backward

  /// value / grad as [rows, cols] (unmanaged aliases).
  View2<const Real, Space> w() const { return w_rows(0, rows); }
  View2<Real, Space> g() const { return g_rows(0, rows); }
  /// Rows [row0, row0 + count): the halves of a fused weight.
  View2<const Real, Space> w_rows(std::int64_t row0, std::int64_t count) const {
    check(row0 * cols, count * cols);
    return View2<const Real, Space>(value.data() + row0 * cols, std::size_t(count),
                                    std::size_t(cols));
  }
  View2<Real, Space> g_rows(std::int64_t row0, std::int64_t count) const {
    check(row0 * cols, count * cols);
    return View2<Real, Space>(grad.data() + row0 * cols, std::size_t(count), std::size_t(cols));
  }
  /// The whole tensor, or elements [begin, begin + count), as a vector (norm weights, biases).
  View1<const Real, Space> v1() const { return View1<const Real, Space>(value); }
  View1<Real, Space> g1() const { return grad; }
  View1<const Real, Space> v_slice(std::int64_t begin, std::int64_t count) const {
    check(begin, count);
    return View1<const Real, Space>(value.data() + begin, std::size_t(count));
  }
  View1<Real, Space> g_slice(std::int64_t begin, std::int64_t count) const {
    check(begin, count);
    return View1<Real, Space>(grad.data() + begin, std::size_t(count));
  }

 private:
  void check(std::int64_t begin, std::int64_t count) const {
    if (begin < 0 || count < 0 || begin + count > rows * cols)
      throw ArgumentError(name + ": elements [" + std::to_string(begin) + ", " +
                          std::to_string(begin + count) + ") are outside [0, " +
                          std::to_string(rows * cols) + ")");
  }
};

/// Every parameter of a ParameterSet, in its order, in Real.
///  - `bind(ps)` (Real = float only): aliases of the fp32 master weights and gradients, so the
///    backward accumulates straight into ps's gradients. Nothing is copied.
///  - `copy_of(ps)` (any Real): own copies of the values converted to Real and zero gradients;
///    `add_grads_to(ps)` adds the gradients (rounded to fp32) into ps's.
template <class Real, class Space>
class RealParameters {
 public:
  static_assert(std::is_floating_point_v<Real>, "RealParameters: Real must be float or double");

  RealParameters() = default;

  static RealParameters bind(const ParameterSet<Space>& ps) requires std::is_same_v<Real, float> {
    RealParameters out;
    for (const auto& p : ps) out.params_.push_back(make(p, p.value, p.grad));
    return out;
  }

  static RealParameters copy_of(const ParameterSet<Space>& ps) {
    RealParameters out;
    for (const auto& p : ps) {
      View1<Real, Space> v(Kokkos::view_alloc(p.name + ".real", Kokkos::WithoutInitializing),
                           p.value.extent(0));
      View1<Real, Space> g(p.name + ".real_grad", p.value.extent(0));
      out.params_.push_back(make(p, v, g));
    }
    out.copy_values_from(ps);
    return out;
  }

  /// value = ps's master weights (converted to Real). Names and sizes must match.
  void copy_values_from(const ParameterSet<Space>& ps, const Space& space = Space()) {
    check_same(ps);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto dst = params_[i].value;
      const View1<const float, Space> src = ps[i].value;
      if (dst.data() == reinterpret_cast<const void*>(src.data())) continue;  // bound
      Kokkos::parallel_for(
          RODIMUS_KERNEL_LABEL("rodimus::train.copy_values"),
          Kokkos::RangePolicy<Space>(space, 0, dst.extent(0)),
          KOKKOS_LAMBDA(const std::int64_t j) { dst(j) = static_cast<Real>(src(j)); });
    }
    space.fence();
  }

  /// ps.grad += grad (rounded to fp32), for every parameter; a no-op for bound parameters.
  void add_grads_to(ParameterSet<Space>& ps, const Space& space = Space()) const {
    check_same(ps);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const View1<const Real, Space> src = params_[i].grad;
      const auto dst = ps[i].grad;
      if (dst.data() == reinterpret_cast<const void*>(src.data())) continue;
      Kokkos::parallel_for(
          RODIMUS_KERNEL_LABEL("rodimus::train.add_grads"),
          Kokkos::RangePolicy<Space>(space, 0, dst.extent(0)),
          KOKKOS_LAMBDA(const std::int64_t j) { dst(j) += static_cast<float>(src(j)); });
    }
    space.fence();
  }

  /// Sets every gradient to zero.
  void zero_grad(const Space& space = Space()) {
    for (auto& p : params_) Kokkos::deep_copy(space, p.grad, Real(0));
  }

  std::size_t size() const { return params_.size(); }
  const RealParameter<Real, Space>& operator[](std::size_t i) const { return params_[i]; }
  auto begin() const { return params_.begin(); }
  auto end() const { return params_.end(); }

  /// The parameter called `name`; ArgumentError naming it when there is none.
  const RealParameter<Real, Space>& at(std::string_view name) const {
    for (const auto& p : params_)
      if (p.name == name) return p;
    throw ArgumentError("RealParameters: no parameter named '" + std::string(name) + "'");
  }

 private:
  static RealParameter<Real, Space> make(const Parameter<Space>& p, const View1<Real, Space>& v,
                                         const View1<Real, Space>& g) {
    RealParameter<Real, Space> r;
    r.name = p.name;
    r.rows = p.rows();
    r.cols = p.cols();
    r.value = v;
    r.grad = g;
    return r;
  }
  void check_same(const ParameterSet<Space>& ps) const {
    if (ps.size() != params_.size())
      throw ArgumentError("RealParameters: the parameter set has " + std::to_string(ps.size()) +
                          " tensors, expected " + std::to_string(params_.size()));
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (ps[i].name != params_[i].name || ps[i].numel() != params_[i].rows * params_[i].cols)
        throw ArgumentError("RealParameters: parameter " + std::to_string(i) + " is '" +
                            ps[i].name + "', expected '" + params_[i].name + "' of the same size");
  }

  std::vector<RealParameter<Real, Space>> params_;
};

}  // namespace rodimus::train
