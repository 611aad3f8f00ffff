// The model's parameters on the device, bound from a checkpoint by the SPEC section 6 names.
#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "rodimus/io/checkpoint.hpp"
#include "rodimus/model/config.hpp"
#include "rodimus/ops/ddts_gate.hpp"
#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/rope.hpp"
#include "rodimus/ops/swiglu.hpp"

namespace rodimus {

/// Parameters of one Rodimus mixer (SPEC 2). Fused projections are stored split.
template <StorageType W, class Space>
struct MixerWeights {
  LinearWeights<W, Space> fc_x, fc_g;    ///< W_fc rows [0, E) and [E, 2E): [E, D] each
  View2<const float, Space> conv_w;      ///< [E, K]
  View1<const float, Space> conv_b;      ///< [E]
  LinearWeights<W, Space> in_q, in_k;    ///< W_in rows: [n, E] each
  ChannelGateWeights<W, Space> ch_gate;  ///< [R, E] and [E, R] + [E]
  LinearWeights<W, Space> mem_s, mem_t;  ///< W_mem rows + b_mem halves: [n, E] + [n] each
  View1<const float, Space> w_res;       ///< [E]
  View1<const float, Space> act_norm;    ///< [E]
  LinearWeights<W, Space> out;           ///< [D, E]
};

/// Parameters of the shared-key attention (SPEC 3).
template <StorageType W, class Space>
struct AttentionWeights {
  LinearWeights<W, Space> q, k, v, o;  ///< [H*hd, D], [Hk*hd, D], [Hv*hd, D], [D, D]
};

/// Parameters of one block; the attention/FFN members are empty for a pure Rodimus block.
template <StorageType W, class Space>
struct LayerWeights {
  View1<const float, Space> mixer_norm;
  MixerWeights<W, Space> mixer;
  View1<const float, Space> attn_norm;
  AttentionWeights<W, Space> attn;
  View1<const float, Space> ffn_norm;
  SwigluWeights<W, Space> ffn;
};

/// Every parameter of a model.
template <StorageType W, class Space>
struct ModelWeights {
  View2<const W, Space> embed;           ///< [V, D]
  View1<const float, Space> embed_norm;  ///< [D] or empty
  std::vector<LayerWeights<W, Space>> layers;
  View1<const float, Space> norm_f;         ///< [D]
  LinearWeights<W, Space> lm_head;          ///< [V, D]; shares `embed` when tied
  View1<const float, Space> rope_inv_freq;  ///< [rd / 2]
};

namespace detail {

/// Reads tensors from a checkpoint (any float dtype) into device views of the model's types,
/// checking each name and shape.
template <StorageType W, class Space>
class WeightBinder {
 public:
  explicit WeightBinder(const io::Checkpoint& ckpt) : ckpt_(ckpt) {}

  /// The tensor `name` of `shape`, converted to T and viewed as [rows, cols] (cols = product
  /// of the trailing dims), cut into consecutive row blocks of `row_counts` (default: one block
  /// of all rows). The tensor is read once however many blocks it is cut into.
  template <class T>
  std::vector<View2<const T, Space>> matrices(const std::string& name,
                                              const std::vector<std::int64_t>& shape,
                                              std::vector<std::int64_t> row_counts = {}) {
    auto host = read<T>(name, shape);
    const std::int64_t cols = shape.size() > 1 ? numel(shape) / shape[0] : 1;
    if (row_counts.empty()) row_counts.push_back(shape[0]);
    std::vector<View2<const T, Space>> out;
    std::int64_t row0 = 0;
    for (const std::int64_t rows : row_counts) {
      detail::note_reallocation();
      View2<T, Space> v(Kokkos::view_alloc(name, Kokkos::WithoutInitializing), rows, cols);
      auto h = Kokkos::create_mirror_view(v);
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < cols; ++c) h(r, c) = host[(row0 + r) * cols + c];
      Kokkos::deep_copy(Space(), v, h);
      out.push_back(v);
      row0 += rows;
    }
    Space().fence();
    return out;
  }

  template <class T>
  View2<const T, Space> matrix(const std::string& name, const std::vector<std::int64_t>& shape) {
    return matrices<T>(name, shape).front();
  }

  /// The elements [begin, begin + count) of tensor `name` as an fp32 vector view.
  View1<const float, Space> vector(const std::string& name, const std::vector<std::int64_t>& shape,
                                   std::int64_t begin = 0, std::int64_t count = -1) {
    auto host = read<float>(name, shape);
    if (count < 0) count = numel(shape) - begin;
    detail::note_reallocation();
    View1<float, Space> v(Kokkos::view_alloc(name, Kokkos::WithoutInitializing), count);
    auto h = Kokkos::create_mirror_view(v);
    for (std::int64_t i = 0; i < count; ++i) h(i) = host[begin + i];
    Kokkos::deep_copy(Space(), v, h);
    Space().fence();
    return v;
  }

  LinearWeights<W, Space> linear(const std::string& name, std::int64_t out, std::int64_t in) {
    LinearWeights<W, Space> lw;
    lw.w = matrix<W>(name, {out, in});
    return lw;
  }

  /// Two linear layers from the two row halves of one fused [2 * half, in] weight.
  std::pair<LinearWeights<W, Space>, LinearWeights<W, Space>> linear_halves(const std::string& name,
                                                                            std::int64_t half,
                                                                            std::int64_t in) {
    auto m = matrices<W>(name, {2 * half, in}, {half, half});
    LinearWeights<W, Space> a, b;
    a.w = m[0];
    b.w = m[1];
    return {a, b};
  }

 private:
  static std::int64_t numel(const std::vector<std::int64_t>& s) {
    std::int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
  }
  template <class T>
  std::vector<T> read(const std::string& name, const std::vector<std::int64_t>& shape) {
    std::vector<T> host(static_cast<std::size_t>(numel(shape)));
    ckpt_.template read<T>(name, std::span<const std::int64_t>(shape), host.data());
    return host;
  }
  const io::Checkpoint& ckpt_;
};

}  // namespace detail

/// Binds every tensor of SPEC section 6 for `cfg` from `ckpt`, converting to storage type W
/// (matrices) and fp32 (vectors). Throws CheckpointError naming any missing or mis-shaped tensor.
template <StorageType W, class Space>
ModelWeights<W, Space> bind_weights(const ModelConfig& cfg, const io::Checkpoint& ckpt) {
  detail::WeightBinder<W, Space> b(ckpt);
  const std::int64_t d = cfg.d_model, e = cfg.d_inner(), n = cfg.mem_size(), k = cfg.d_conv(),
                     r = cfg.low_rank(), v = cfg.vocab_size;
  ModelWeights<W, Space> mw;
  mw.embed = b.template matrix<W>("model.embeddings.weight", {v, d});
  if (cfg.use_norm_embedding) mw.embed_norm = b.vector("model.embed_norm.weight", {d});
  mw.norm_f = b.vector("model.norm_f.weight", {d});
  if (cfg.tie_word_embeddings) {
    mw.lm_head.w = mw.embed;
  } else {
    mw.lm_head = b.linear("lm_head.weight", v, d);
  }
  for (int l = 0; l < cfg.n_layer; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string im = p + "mixer.inner_mixer.";
    LayerWeights<W, Space> lw;
    lw.mixer_norm = b.vector(p + "mixer_norm.weight", {d});
    auto& m = lw.mixer;
    std::tie(m.fc_x, m.fc_g) = b.linear_halves(p + "mixer.fc.weight", e, d);
    m.conv_w = b.template matrix<float>(im + "short_conv.conv1d.weight", {e, 1, k});
    m.conv_b = b.vector(im + "short_conv.conv1d.bias", {e});
    std::tie(m.in_q, m.in_k) = b.linear_halves(im + "in_proj.weight", n, e);
    m.ch_gate.down = b.linear(im + "ch_gate_proj.0.weight", r, e);
    m.ch_gate.up = b.linear(im + "ch_gate_proj.1.weight", e, r);
    m.ch_gate.up.b = b.vector(im + "ch_gate_proj.1.bias", {e});
    std::tie(m.mem_s, m.mem_t) = b.linear_halves(im + "mem_gate_proj.weight", n, e);
    m.mem_s.b = b.vector(im + "mem_gate_proj.bias", {2 * n}, 0, n);
    m.mem_t.b = b.vector(im + "mem_gate_proj.bias", {2 * n}, n, n);
    m.w_res = b.vector(im + "residual_weight", {e});
    m.act_norm = b.vector(p + "mixer.act_norm.weight", {e});
    m.out = b.linear(p + "mixer.out_proj.weight", d, e);
    if (cfg.is_plus()) {
      const std::int64_t hd = cfg.head_dim(), h = cfg.num_heads(), hk = cfg.num_heads_k(),
                         hv = cfg.num_heads_v(), f = cfg.ffn_dim();
      lw.attn_norm = b.vector(p + "attn_norm.weight", {d});
      lw.attn.q = b.linear(p + "attn.q_proj.weight", h * hd, d);
      lw.attn.k = b.linear(p + "attn.k_proj.weight", hk * hd, d);
      lw.attn.v = b.linear(p + "attn.v_proj.weight", hv * hd, d);
      lw.attn.o = b.linear(p + "attn.out_proj.weight", d, d);
      lw.ffn_norm = b.vector(p + "ffn_norm.weight", {d});
      std::tie(lw.ffn.fc_a, lw.ffn.fc_g) = b.linear_halves(p + "ffn.fc.weight", f, d);
      lw.ffn.out = b.linear(p + "ffn.out_proj.weight", d, f);
    }
    mw.layers.push_back(std::move(lw));
  }
  if (cfg.is_plus())
    mw.rope_inv_freq = rope_inv_freq<Space>(cfg.rotary_dim(), cfg.attn.rotary_emb_base);
  return mw;
}

}  // namespace rodimus
