// Routing of the element-wise gates (DDTS gates, channel gate, SwiGLU) to the host kernels of
// backend/host/gates.hpp on host spaces, fp32 only; each returns false (nothing done) where
// the generic Kokkos kernels of gate_kernels.hpp must run instead.
#pragma once

#include <algorithm>
#include <cstdint>

#include "rodimus/backend/host/gates.hpp"
#include "rodimus/core/parallel.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus::detail {

/// Tokens per work item of the host gate kernels.
inline constexpr std::int64_t kHostGateRows = 16;

template <class Space>
bool ddts_gate_host(const Space& space, const View2<const float, Space>& s_raw,
                    const View2<const float, Space>& tau_raw, const View2<const float, Space>& k,
                    const View2<float, Space>& a, const View2<float, Space>& k_out, int n_tokens,
                    float norm_eps) {
  if constexpr (is_host_space_v<Space>) {
    namespace hb = backend::host;
    auto st = [](const auto& v, int d) { return static_cast<std::int64_t>(v.stride(d)); };
    if (st(s_raw, 1) != 1 || st(tau_raw, 1) != 1 || st(k, 1) != 1 || st(a, 1) != 1 ||
        st(k_out, 1) != 1)
      return false;
    hb::DdtsGateArgs g;
    g.s_raw = s_raw.data();
    g.tau_raw = tau_raw.data();
    g.k = k.data();
    g.a = a.data();
    g.k_out = k_out.data();
    g.lds = st(s_raw, 0);
    g.ldt = st(tau_raw, 0);
    g.ldk = st(k, 0);
    g.lda = st(a, 0);
    g.ldko = st(k_out, 0);
    g.n = static_cast<int>(k.extent(1));
    g.eps = norm_eps;
    const std::int64_t nt = n_tokens;
    detail::host_items_for(space, RODIMUS_KERNEL_LABEL("rodimus::ddts_gate.host"),
                           (nt + kHostGateRows - 1) / kHostGateRows, [=](const std::int64_t blk) {
                             hb::ddts_gate_rows(g, blk * kHostGateRows,
                                                std::min(nt, (blk + 1) * kHostGateRows));
                           });
    return true;
  }
  return false;
}

/// out = f(z) * x for the first n_tokens rows, f = sigmoid or silu (backend/host/gates.hpp).
template <backend::host::GateProduct P, class Space>
bool gate_product_host(const Space& space, const View2<const float, Space>& z,
                       const View2<const float, Space>& x, const View2<float, Space>& out,
                       int n_tokens) {
  if constexpr (is_host_space_v<Space>) {
    namespace hb = backend::host;
    auto st = [](const auto& v, int d) { return static_cast<std::int64_t>(v.stride(d)); };
    if (st(z, 1) != 1 || st(x, 1) != 1 || st(out, 1) != 1) return false;
    hb::GateProductArgs g;
    g.z = z.data();
    g.x = x.data();
    g.out = out.data();
    g.ldz = st(z, 0);
    g.ldx = st(x, 0);
    g.ldo = st(out, 0);
    g.width = static_cast<int>(x.extent(1));
    const std::int64_t nt = n_tokens;
    const auto& label = P == hb::GateProduct::Silu
                            ? RODIMUS_KERNEL_LABEL("rodimus::swiglu.host")
                            : RODIMUS_KERNEL_LABEL("rodimus::channel_gate.host");
    detail::host_items_for(
        space, label, (nt + kHostGateRows - 1) / kHostGateRows, [=](const std::int64_t blk) {
          hb::gate_product_rows<P>(g, blk * kHostGateRows, std::min(nt, (blk + 1) * kHostGateRows));
        });
    return true;
  }
  return false;
}

}  // namespace rodimus::detail
