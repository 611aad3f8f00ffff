// Training forward and backward of the three sub-layers of a block (SPEC 2-4): the Rodimus mixer,
// SW-SKA attention and the SwiGLU FFN, in Real (float for training, double for the checks).
// Each forward saves the activations its backward reads; each backward accumulates the weight
// gradients into the RealParameter grads and overwrites the gradient of the sub-layer's input.
#pragma once

#include <cmath>
#include <string>

#include "rodimus/grad/ddts_gate.hpp"
#include "rodimus/grad/gated_rms_norm.hpp"
#include "rodimus/grad/gla_scan.hpp"
#include "rodimus/grad/linear.hpp"
#include "rodimus/grad/rope.hpp"
#include "rodimus/grad/short_conv.hpp"
#include "rodimus/grad/sliding_window_attention.hpp"
#include "rodimus/grad/swiglu.hpp"
#include "rodimus/layers/ska_attention.hpp"
#include "rodimus/model/config.hpp"
#include "rodimus/ops/ddts_gate.hpp"
#include "rodimus/ops/gated_rms_norm.hpp"
#include "rodimus/ops/gla_scan.hpp"
#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/rope.hpp"
#include "rodimus/ops/short_conv.hpp"
#include "rodimus/ops/sliding_window_attention.hpp"
#include "rodimus/ops/swiglu.hpp"
#include "rodimus/train/real_parameters.hpp"

namespace rodimus::train {

namespace detail {

template <class Real, class Space>
using CView2 = View2<const Real, Space>;

/// y = x W^T (+ b) in Real through ops/linear.hpp (fp32: the host BLAS / cuBLAS paths).
template <class Real, class Space>
void linear_fwd(const Space& space, const View2<Real, Space>& x, const CView2<Real, Space>& w,
                const View1<const Real, Space>& b, const View2<Real, Space>& y, int n) {
  linear(space, CView2<Real, Space>(x), LinearWeights<Real, Space>{w, b}, y, n);
}

/// Grows a [rows, cols] activation buffer (contents not kept).
template <class V>
void grow(V& v, std::size_t rows, std::size_t cols, const char* label) {
  ::rodimus::detail::ensure_capacity(v, rows, cols, label);
}

}  // namespace detail

/// The tensors of one layer's mixer and its pre-norm (SPEC 6 names under `model.layers.i.`).
template <class Real, class Space>
struct MixerParams {
  const RealParameter<Real, Space>*norm, *fc, *out_proj, *act_norm, *conv_w, *conv_b, *w_res,
      *in_proj, *ch_down, *ch_up, *ch_up_b, *mem, *mem_b;

  MixerParams(const RealParameters<Real, Space>& ps, int layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".mixer.";
    const std::string pi = p + "inner_mixer.";
    norm = &ps.at("model.layers." + std::to_string(layer) + ".mixer_norm.weight");
    fc = &ps.at(p + "fc.weight");
    out_proj = &ps.at(p + "out_proj.weight");
    act_norm = &ps.at(p + "act_norm.weight");
    conv_w = &ps.at(pi + "short_conv.conv1d.weight");
    conv_b = &ps.at(pi + "short_conv.conv1d.bias");
    w_res = &ps.at(pi + "residual_weight");
    in_proj = &ps.at(pi + "in_proj.weight");
    ch_down = &ps.at(pi + "ch_gate_proj.0.weight");
    ch_up = &ps.at(pi + "ch_gate_proj.1.weight");
    ch_up_b = &ps.at(pi + "ch_gate_proj.1.bias");
    mem = &ps.at(pi + "mem_gate_proj.weight");
    mem_b = &ps.at(pi + "mem_gate_proj.bias");
  }
};

/// Activations of one mixer that its backward reads (rows [0, N) of each buffer).
template <class Real, class Space>
struct MixerActivations {
  View2<Real, Space> hn;                           // [N, D] normalised input
  View2<Real, Space> x, g, xs, ze, u, o, y;        // [N, E]
  View2<Real, Space> zr;                           // [N, R]
  View2<Real, Space> q, k, kp, s_raw, tau_raw, a;  // [N, n]  (k raw, kp = k')

  void reserve(const ModelConfig& cfg, int n) {
    const std::size_t e = cfg.d_inner(), m = cfg.mem_size(), r = cfg.low_rank();
    detail::grow(hn, n, cfg.d_model, "rodimus::train.mixer.hn");
    for (auto* v : {&x, &g, &xs, &ze, &u, &o, &y}) detail::grow(*v, n, e, "rodimus::train.mixer.E");
    detail::grow(zr, n, r, "rodimus::train.mixer.R");
    for (auto* v : {&q, &k, &kp, &s_raw, &tau_raw, &a})
      detail::grow(*v, n, m, "rodimus::train.mixer.n");
  }
};

/// Scratch of the mixer's forward and backward, shared by all layers.
template <class Real, class Space>
struct MixerScratch {
  View3<Real, Space> conv_state;                     // [B, K-1, E] zeros (whole sequences)
  View3<Real, Space> gla_state, d_state0;            // [B, n, E] forward state, backward output
  View3<Real, Space> zero_state;                     // [B, n, E] zeros: the initial GLA state
  View2<Real, Space> dy, d_o, dxs, dg, du, dx, dze;  // [N, E]
  View2<Real, Space> dzr;                            // [N, R]
  View2<Real, Space> dq, dkp, da, dk, ds, dt;        // [N, n]
  GlaScanWorkspace<Space, Real> scan;
  grad::GlaScanGradWorkspace<Real, Space> scan_grad;

  void reserve(const ModelConfig& cfg, int b, int n) {
    const std::size_t e = cfg.d_inner(), m = cfg.mem_size(), r = cfg.low_rank();
    const std::size_t km1 = cfg.d_conv() - 1;
    if (conv_state.extent(0) != std::size_t(b) || conv_state.extent(1) != km1 ||
        conv_state.extent(2) != e) {
      conv_state = View3<Real, Space>("rodimus::train.conv_state", b, km1, e);  // zeros
      gla_state = View3<Real, Space>("rodimus::train.gla_state", b, m, e);
      d_state0 = View3<Real, Space>("rodimus::train.d_state0", b, m, e);
      zero_state = View3<Real, Space>("rodimus::train.zero_state", b, m, e);
    }
    for (auto* v : {&dy, &d_o, &dxs, &dg, &du, &dx, &dze})
      detail::grow(*v, n, e, "rodimus::train.mixer.dE");
    detail::grow(dzr, n, r, "rodimus::train.mixer.dR");
    for (auto* v : {&dq, &dkp, &da, &dk, &ds, &dt})
      detail::grow(*v, n, m, "rodimus::train.mixer.dn");
  }
};

/// The mixer (SPEC 2 steps 1-10) over whole sequences from a zero state: out = mixer(act.hn),
/// saving the activations in `act`. `Scan` is the chunked scan tag of the backward.
// act.hn: [N, D] (filled by the caller); out: [>=N, D]
template <class Scan, class Real, class Space>
void mixer_forward(const Space& space, const ModelConfig& cfg, const MixerParams<Real, Space>& p,
                   const SeqBatch<Space>& batch, MixerActivations<Real, Space>& act,
                   MixerScratch<Real, Space>& s, const View2<Real, Space>& out) {
  using CV = detail::CView2<Real, Space>;
  const int nt = batch.num_tokens;
  const int e = cfg.d_inner(), n = cfg.mem_size();
  const View1<const Real, Space> none;
  // 1. [x, g] = split(h W_fc^T)                                    [N, D] -> 2 x [N, E]
  detail::linear_fwd(space, act.hn, p.fc->w_rows(0, e), none, act.x, nt);
  detail::linear_fwd(space, act.hn, p.fc->w_rows(e, e), none, act.g, nt);
  // 2. xs = silu(conv(x)), zero initial state                      [N, E]
  short_conv<Real>(space, CV(act.x), p.conv_w->w(), p.conv_b->v1(), s.conv_state, batch, act.xs,
                   /*update_state=*/false);
  // 3. [q, k] = split(xs W_in^T)                                   [N, E] -> 2 x [N, n]
  detail::linear_fwd(space, act.xs, p.in_proj->w_rows(0, n), none, act.q, nt);
  detail::linear_fwd(space, act.xs, p.in_proj->w_rows(n, n), none, act.k, nt);
  // 4. u = sigmoid((x W1^T) W2^T + b2) * x; keeps z_r and z_e      [N, E]
  const ChannelGateWeights<Real, Space> cg{{p.ch_down->w(), none}, {p.ch_up->w(), p.ch_up_b->v1()}};
  channel_gate(space, CV(act.x), cg, act.zr, act.ze, act.u, nt);
  // 5-6. DDTS gates: a = -tau s, k' = s^tau k / ||k||              [N, n]
  detail::linear_fwd(space, act.xs, p.mem->w_rows(0, n), p.mem_b->v_slice(0, n), act.s_raw, nt);
  detail::linear_fwd(space, act.xs, p.mem->w_rows(n, n), p.mem_b->v_slice(n, n), act.tau_raw, nt);
  ddts_gate<Real>(space, CV(act.s_raw), CV(act.tau_raw), CV(act.k), act.a, act.kp, nt,
                  static_cast<Real>(cfg.mixer.normalize_epsilon));
  // 7. o_t = q_t S_t / sqrt(n) from S = 0                          [N, E]
  Kokkos::deep_copy(space, s.gla_state, Real(0));
  gla_scan<Scan, Real>(space, CV(act.q), CV(act.kp), CV(act.a), CV(act.u), s.gla_state, batch,
                       act.o, static_cast<Real>(1.0 / std::sqrt(double(n))), s.scan);
  // 8-9. y = rmsnorm((o + xs w_res) silu(g)) w                     [N, E]
  gated_rms_norm<Real>(space, CV(act.o), CV(act.xs), p.w_res->v1(), CV(act.g), p.act_norm->v1(),
                       act.y, nt, static_cast<Real>(cfg.norm_epsilon));
  // 10. out = y W_out^T                                            [N, E] -> [N, D]
  detail::linear_fwd(space, act.y, p.out_proj->w(), none, out, nt);
}

/// Backward of mixer_forward: given dout = dL/d(out), accumulates every mixer weight gradient
/// and overwrites dhn = dL/d(act.hn).
// dout, dhn: [>=N, D]
template <class Scan, class Real, class Space>
void mixer_backward(const Space& space, const ModelConfig& cfg, const MixerParams<Real, Space>& p,
                    const SeqBatch<Space>& batch, const MixerActivations<Real, Space>& act,
                    MixerScratch<Real, Space>& s, const View2<Real, Space>& dout,
                    const View2<Real, Space>& dhn) {
  using CV = detail::CView2<Real, Space>;
  using grad::GradMode;
  const int nt = batch.num_tokens;
  const int e = cfg.d_inner(), n = cfg.mem_size();
  const View1<Real, Space> no_db;
  // 10. dy = dout W_out; dW_out += dout^T y
  grad::linear_backward<Real>(space, CV(act.y), p.out_proj->w(), CV(dout), s.dy, p.out_proj->g(),
                              no_db, nt);
  // 8-9. gated RMSNorm: do, dxs (residual term), dg; dw_norm, dw_res
  grad::gated_rms_norm_backward<Real>(space, CV(act.o), CV(act.xs), p.w_res->v1(), CV(act.g),
                                      p.act_norm->v1(), CV(s.dy), s.d_o, s.dxs, s.dg,
                                      p.act_norm->g1(), p.w_res->g1(), nt, cfg.norm_epsilon);
  // 7. the scan: dq, dk', da, du (from a zero state; the final state is not in the loss)
  grad::gla_scan_backward<Scan, Real>(
      space, CV(act.q), CV(act.kp), CV(act.a), CV(act.u), View3<const Real, Space>(s.zero_state),
      batch, CV(s.d_o), View3<const Real, Space>(), s.dq, s.dkp, s.da, s.du, s.d_state0,
      static_cast<Real>(1.0 / std::sqrt(double(n))), s.scan_grad);
  // 5-6. DDTS gates: ds_raw, dtau_raw, dk
  grad::ddts_gate_backward<Real>(space, CV(act.s_raw), CV(act.tau_raw), CV(act.k), CV(s.da),
                                 CV(s.dkp), s.ds, s.dt, s.dk, nt, cfg.mixer.normalize_epsilon);
  // 4. channel gate: dx (overwrite), dW1, dW2, db2
  grad::channel_gate_backward<Real>(space, CV(act.x), p.ch_down->w(), p.ch_up->w(), CV(act.zr),
                                    CV(act.ze), CV(s.du), s.dzr, s.dze, s.dx, p.ch_down->g(),
                                    p.ch_up->g(), p.ch_up_b->g1(), nt);
  // 5. gate projections and 3. in_proj, into dxs (accumulate)
  grad::linear_backward<Real>(space, CV(act.xs), p.mem->w_rows(0, n), CV(s.ds), s.dxs,
                              p.mem->g_rows(0, n), p.mem_b->g_slice(0, n), nt,
                              GradMode::Accumulate);
  grad::linear_backward<Real>(space, CV(act.xs), p.mem->w_rows(n, n), CV(s.dt), s.dxs,
                              p.mem->g_rows(n, n), p.mem_b->g_slice(n, n), nt,
                              GradMode::Accumulate);
  grad::linear_backward<Real>(space, CV(act.xs), p.in_proj->w_rows(0, n), CV(s.dq), s.dxs,
                              p.in_proj->g_rows(0, n), no_db, nt, GradMode::Accumulate);
  grad::linear_backward<Real>(space, CV(act.xs), p.in_proj->w_rows(n, n), CV(s.dk), s.dxs,
                              p.in_proj->g_rows(n, n), no_db, nt, GradMode::Accumulate);
  // 2. ShortConv: dx += ...; dw, db
  grad::short_conv_backward<Real>(space, CV(act.x), p.conv_w->w(), p.conv_b->v1(), batch, CV(s.dxs),
                                  s.dx, p.conv_w->g(), p.conv_b->g1(), GradMode::Accumulate);
  // 1. fc: dhn = dx W_x + dg W_g
  grad::linear_backward<Real>(space, CV(act.hn), p.fc->w_rows(0, e), CV(s.dx), dhn,
                              p.fc->g_rows(0, e), no_db, nt);
  grad::linear_backward<Real>(space, CV(act.hn), p.fc->w_rows(e, e), CV(s.dg), dhn,
                              p.fc->g_rows(e, e), no_db, nt, GradMode::Accumulate);
}

/// The tensors of one layer's SW-SKA and FFN with their pre-norms (Rodimus+).
template <class Real, class Space>
struct AttentionParams {
  const RealParameter<Real, Space>*attn_norm, *q, *k, *v, *o, *ffn_norm, *ffn_fc, *ffn_out;

  AttentionParams(const RealParameters<Real, Space>& ps, int layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    attn_norm = &ps.at(p + "attn_norm.weight");
    ffn_norm = &ps.at(p + "ffn_norm.weight");
    q = &ps.at(p + "attn.q_proj.weight");
    k = &ps.at(p + "attn.k_proj.weight");
    v = &ps.at(p + "attn.v_proj.weight");
    o = &ps.at(p + "attn.out_proj.weight");
    ffn_fc = &ps.at(p + "ffn.fc.weight");
    ffn_out = &ps.at(p + "ffn.out_proj.weight");
  }
};

/// Activations of one SW-SKA and one FFN that their backward passes read.
template <class Real, class Space>
struct AttentionActivations {
  View2<Real, Space> hn;         // [N, D] attention input (normalised)
  View2<Real, Space> q, o;       // [N, H*hd]  q after RoPE, attention output before out_proj
  View2<Real, Space> k;          // [N, Hk*hd] after RoPE
  View2<Real, Space> v;          // [N, Hv*hd]
  View2<Real, Space> ffn_hn;     // [N, D] FFN input (normalised)
  View2<Real, Space> a, g, act;  // [N, F]  a, g halves, silu(g) a

  void reserve(const ModelConfig& cfg, int n) {
    const std::size_t hd = cfg.head_dim(), f = cfg.ffn_dim();
    detail::grow(hn, n, cfg.d_model, "rodimus::train.attn.hn");
    detail::grow(ffn_hn, n, cfg.d_model, "rodimus::train.ffn.hn");
    detail::grow(q, n, hd * cfg.num_heads(), "rodimus::train.attn.q");
    detail::grow(o, n, hd * cfg.num_heads(), "rodimus::train.attn.o");
    detail::grow(k, n, hd * cfg.num_heads_k(), "rodimus::train.attn.k");
    detail::grow(v, n, hd * cfg.num_heads_v(), "rodimus::train.attn.v");
    for (auto* x : {&a, &g, &act}) detail::grow(*x, n, f, "rodimus::train.ffn.F");
  }
};

/// Scratch of the attention and FFN passes, shared by all layers.
template <class Real, class Space>
struct AttentionScratch {
  View1<Real, Space> inv_freq;          // [rd / 2]
  View3<Real, Space> k_cache, v_cache;  // [B, 0, ...]: no cache, attention within the call
  View2<Real, Space> dq, d_o, dk, dv;   // [N, H*hd] x2, [N, Hk*hd], [N, Hv*hd]
  View2<Real, Space> dact, da, dg;      // [N, F]
  grad::SlidingWindowAttentionGradWorkspace<Real, Space> attn_grad;

  void reserve(const ModelConfig& cfg, int b, int n) {
    const std::size_t hd = cfg.head_dim(), f = cfg.ffn_dim();
    if (inv_freq.extent(0) == 0)
      inv_freq = grad::rope_inv_freq<Real, Space>(cfg.rotary_dim(), cfg.attn.rotary_emb_base);
    if (k_cache.extent(0) != std::size_t(b)) {
      k_cache = View3<Real, Space>("rodimus::train.no_k_cache", b, 0, hd * cfg.num_heads_k());
      v_cache = View3<Real, Space>("rodimus::train.no_v_cache", b, 0, hd * cfg.num_heads_v());
    }
    detail::grow(dq, n, hd * cfg.num_heads(), "rodimus::train.attn.dq");
    detail::grow(d_o, n, hd * cfg.num_heads(), "rodimus::train.attn.do");
    detail::grow(dk, n, hd * cfg.num_heads_k(), "rodimus::train.attn.dk");
    detail::grow(dv, n, hd * cfg.num_heads_v(), "rodimus::train.attn.dv");
    for (auto* x : {&dact, &da, &dg}) detail::grow(*x, n, f, "rodimus::train.ffn.dF");
  }
};

/// The attention geometry of `cfg` with the fp64 score scale (exact in the fp64 forward).
inline AttentionShape training_attention_shape(const ModelConfig& cfg) {
  AttentionShape s = attention_shape(cfg);
  s.scale = cfg.attn_scale();
  return s;
}

/// SW-SKA (SPEC 3) within each sequence: out = attn(act.hn), saving q, k (after RoPE), v, o.
// act.hn: [N, D] (filled by the caller); out: [>=N, D]
template <class Real, class Space>
void attention_forward(const Space& space, const ModelConfig& cfg,
                       const AttentionParams<Real, Space>& p, const SeqBatch<Space>& batch,
                       AttentionActivations<Real, Space>& act, AttentionScratch<Real, Space>& s,
                       const View2<Real, Space>& out) {
  using CV = detail::CView2<Real, Space>;
  const int nt = batch.num_tokens;
  const View1<const Real, Space> none;
  detail::linear_fwd(space, act.hn, p.q->w(), none, act.q, nt);  // [N, D] -> [N, H*hd]
  detail::linear_fwd(space, act.hn, p.k->w(), none, act.k, nt);  // [N, D] -> [N, Hk*hd]
  detail::linear_fwd(space, act.hn, p.v->w(), none, act.v, nt);  // [N, D] -> [N, Hv*hd]
  const View1<const Real, Space> inv(s.inv_freq);
  rope<Real>(space, act.q, cfg.num_heads(), cfg.head_dim(), inv, cfg.rotary_dim(), batch);
  rope<Real>(space, act.k, cfg.num_heads_k(), cfg.head_dim(), inv, cfg.rotary_dim(), batch);
  sliding_window_attention<Real>(space, CV(act.q), CV(act.k), CV(act.v), s.k_cache, s.v_cache,
                                 batch, act.o, training_attention_shape(cfg));
  detail::linear_fwd(space, act.o, p.o->w(), none, out, nt);  // [N, H*hd] -> [N, D]
}

/// Backward of attention_forward: weight gradients accumulate, dhn = dL/d(act.hn) (overwrite).
// dout, dhn: [>=N, D]
template <class Real, class Space>
void attention_backward(const Space& space, const ModelConfig& cfg,
                        const AttentionParams<Real, Space>& p, const SeqBatch<Space>& batch,
                        const AttentionActivations<Real, Space>& act,
                        AttentionScratch<Real, Space>& s, const View2<Real, Space>& dout,
                        const View2<Real, Space>& dhn) {
  using CV = detail::CView2<Real, Space>;
  using grad::GradMode;
  const int nt = batch.num_tokens;
  const View1<Real, Space> no_db;
  grad::linear_backward<Real>(space, CV(act.o), p.o->w(), CV(dout), s.d_o, p.o->g(), no_db, nt);
  grad::sliding_window_attention_backward<Real>(space, CV(act.q), CV(act.k), CV(act.v), batch,
                                                CV(s.d_o), s.dq, s.dk, s.dv,
                                                training_attention_shape(cfg), s.attn_grad);
  const View1<const Real, Space> inv(s.inv_freq);
  grad::rope_backward<Real>(space, s.dq, cfg.num_heads(), cfg.head_dim(), inv, cfg.rotary_dim(),
                            batch);
  grad::rope_backward<Real>(space, s.dk, cfg.num_heads_k(), cfg.head_dim(), inv, cfg.rotary_dim(),
                            batch);
  grad::linear_backward<Real>(space, CV(act.hn), p.q->w(), CV(s.dq), dhn, p.q->g(), no_db, nt);
  grad::linear_backward<Real>(space, CV(act.hn), p.k->w(), CV(s.dk), dhn, p.k->g(), no_db, nt,
                              GradMode::Accumulate);
  grad::linear_backward<Real>(space, CV(act.hn), p.v->w(), CV(s.dv), dhn, p.v->g(), no_db, nt,
                              GradMode::Accumulate);
}

/// The SwiGLU FFN (SPEC 4): out = (silu(ffn_hn W_g^T) * (ffn_hn W_a^T)) W_out^T, saving a, g, act.
// act.ffn_hn: [N, D] (filled by the caller); out: [>=N, D]
template <class Real, class Space>
void ffn_forward(const Space& space, const ModelConfig& cfg, const AttentionParams<Real, Space>& p,
                 int n_tokens, AttentionActivations<Real, Space>& act,
                 const View2<Real, Space>& out) {
  using CV = detail::CView2<Real, Space>;
  const int f = cfg.ffn_dim();
  const View1<const Real, Space> none;
  detail::linear_fwd(space, act.ffn_hn, p.ffn_fc->w_rows(0, f), none, act.a, n_tokens);
  detail::linear_fwd(space, act.ffn_hn, p.ffn_fc->w_rows(f, f), none, act.g, n_tokens);
  swiglu<Real>(space, CV(act.a), CV(act.g), act.act, n_tokens);
  detail::linear_fwd(space, act.act, p.ffn_out->w(), none, out, n_tokens);
}

/// Backward of ffn_forward: weight gradients accumulate, dhn = dL/d(act.ffn_hn) (overwrite).
// dout, dhn: [>=N, D]
template <class Real, class Space>
void ffn_backward(const Space& space, const ModelConfig& cfg, const AttentionParams<Real, Space>& p,
                  int n_tokens, const AttentionActivations<Real, Space>& act,
                  AttentionScratch<Real, Space>& s, const View2<Real, Space>& dout,
                  const View2<Real, Space>& dhn) {
  using CV = detail::CView2<Real, Space>;
  const int f = cfg.ffn_dim();
  const View1<Real, Space> no_db;
  grad::linear_backward<Real>(space, CV(act.act), p.ffn_out->w(), CV(dout), s.dact, p.ffn_out->g(),
                              no_db, n_tokens);
  grad::swiglu_backward<Real>(space, CV(act.a), CV(act.g), CV(s.dact), s.da, s.dg, n_tokens);
  grad::linear_backward<Real>(space, CV(act.ffn_hn), p.ffn_fc->w_rows(0, f), CV(s.da), dhn,
                              p.ffn_fc->g_rows(0, f), no_db, n_tokens);
  grad::linear_backward<Real>(space, CV(act.ffn_hn), p.ffn_fc->w_rows(f, f), CV(s.dg), dhn,
                              p.ffn_fc->g_rows(f, f), no_db, n_tokens, grad::GradMode::Accumulate);
}

}  // namespace rodimus::train
