// The training forward and backward of a whole Rodimus / Rodimus+ model (SPEC 5): the loss of a
// batch of token sequences and the gradient of every parameter.
//
// API (namespace rodimus::train):
//
//   template <class Real, class Space, class Scan = ChunkedScan<64>> class ModelTrainer;
//
//   ModelTrainer(const ModelConfig& cfg);
//
//   // tokens: [B, T + 1] ids; inputs tokens[:, :T], next-token targets tokens[:, 1:].
//   double forward_backward(ParameterSet<Space>& params, const View2<const int, Space>& tokens,
//                           double normalizer = 0);
//   // ids, targets: [B, T]; targets equal to -100 (grad::kIgnoreIndex) are left out.
//   double forward_backward(ParameterSet<Space>& params, const View2<const int, Space>& ids,
//                           const View2<const int, Space>& targets, double normalizer = 0);
//   double forward_loss(const ParameterSet<Space>& params, const View2<const int, Space>& tokens);
//   double forward_loss(const ParameterSet<Space>& params, const View2<const int, Space>& ids,
//                       const View2<const int, Space>& targets);
//   // the same on Real parameters (RealParameters<Real, Space>: aliases or fp64 copies)
//   double forward_backward(const RealParameters<Real, Space>& w, ids, targets, normalizer = 0);
//   double forward_loss(const RealParameters<Real, Space>& w, ids, targets);
//   const grad::CrossEntropyResult& last() const;  // loss, loss_sum, count of the last call
//
// Every call returns the mean cross-entropy over the counted targets (in nats). forward_backward
// ADDS the gradient of `sum of the counted token losses / normalizer` to every parameter's
// gradient (normalizer <= 0: the count of this batch, i.e. the gradient of the returned mean).
// Zero the gradients once per optimiser step (ParameterSet::zero_grad); for gradient
// accumulation over micro-batches either pass the step's total target count as `normalizer`
// or scale the gradients afterwards (scale_grads). With tied embeddings the LM head's gradient
// lands in `model.embeddings.weight`'s.
//
// Real = float trains: the fp32 master weights are read in place and the gradients accumulate
// straight into the ParameterSet (the host BLAS and the host scan/attention kernels run the
// forward). Real = double is the gradient check: the parameters are copied to fp64, everything
// runs in the generic fp64 kernels, and the fp64 gradients are added (rounded to fp32) to the
// ParameterSet; the RealParameters overloads keep them in fp64.
//
// Sequences run from a zero state (conv, GLA state and attention start empty), all of the same
// length T; each is one slot of the packed batch (N = B T rows). The forward saves the
// activations the backward reads (about (7E + 6n + R + 3D) values per token per layer, plus
// (2 H hd + Hk hd + Hv hd + 3F + 5D) for Rodimus+), plus 3D and the logits [N, V].
// Bad input (shapes, ids outside [0, V), targets outside [0, V) and not -100, a parameter set of
// another model) throws ArgumentError naming it before anything is written.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "rodimus/core/instantiation.hpp"
#include "rodimus/core/seq_batch.hpp"
#include "rodimus/grad/cross_entropy.hpp"
#include "rodimus/grad/embedding.hpp"
#include "rodimus/grad/impl/check_ids.hpp"
#include "rodimus/grad/linear.hpp"
#include "rodimus/grad/rms_norm.hpp"
#include "rodimus/model/tensor_table.hpp"
#include "rodimus/ops/embedding.hpp"
#include "rodimus/ops/rms_norm.hpp"
#include "rodimus/train/layer_grad.hpp"
#include "rodimus/train/parameters.hpp"
#include "rodimus/train/real_parameters.hpp"

namespace rodimus::train {

namespace detail {

// Free functions, not members: CUDA lambdas may not sit in private member functions.

/// ids[i] = tokens[b, j], targets[i] = tokens[b, j + 1] for i = b T + j < N.
// tokens: [B, T + 1]; ids, targets: [>=N]
template <class Space>
void split_tokens(const Space& space, const View2<const int, Space>& tokens,
                  const View1<int, Space>& ids, const View1<int, Space>& targets, int t, int n) {
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::train.split_tokens"), Kokkos::RangePolicy<Space>(space, 0, n),
      KOKKOS_LAMBDA(const int i) {
        ids(i) = tokens(i / t, i % t);
        targets(i) = tokens(i / t, i % t + 1);
      });
}

/// ids[b T + j] = ids_in[b, j], targets likewise.
// ids_in, targets_in: [B, T]; ids, targets: [>=N]
template <class Space>
void flatten_ids(const Space& space, const View2<const int, Space>& ids_in,
                 const View2<const int, Space>& targets_in, const View1<int, Space>& ids,
                 const View1<int, Space>& targets, int t, int n) {
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::train.flatten_ids"), Kokkos::RangePolicy<Space>(space, 0, n),
      KOKKOS_LAMBDA(const int i) {
        ids(i) = ids_in(i / t, i % t);
        targets(i) = targets_in(i / t, i % t);
      });
}

}  // namespace detail

/// Loss and gradients of a whole model on batches of equal-length sequences (see the top of
/// this header). One trainer per thread; it keeps the activation buffers between calls.
template <class Real, class Space, class Scan = ChunkedScan<64>>
class ModelTrainer {
  static_assert(std::is_same_v<Real, float> || std::is_same_v<Real, double>,
                "ModelTrainer: Real must be float or double");
  static_assert(rodimus::detail::is_chunked_scan<Scan>::value,
                "ModelTrainer: Scan must be ChunkedScan<C>");

 public:
  explicit ModelTrainer(const ModelConfig& cfg) : cfg_(cfg) {}

  const ModelConfig& config() const { return cfg_; }

  /// Mean loss of `tokens` ([B, T + 1]: inputs [:, :T], targets [:, 1:]) and its gradient,
  /// added to params' gradients.
  double forward_backward(ParameterSet<Space>& params, const View2<const int, Space>& tokens,
                          double normalizer = 0.0) {
    split_tokens(tokens);
    return run_on(params, normalizer, &params);
  }

  /// Mean loss of ids [B, T] against targets [B, T] and its gradient, added to params' gradients.
  double forward_backward(ParameterSet<Space>& params, const View2<const int, Space>& ids,
                          const View2<const int, Space>& targets, double normalizer = 0.0) {
    copy_ids(ids, targets);
    return run_on(params, normalizer, &params);
  }

  /// Mean loss only (no gradients are touched).
  double forward_loss(const ParameterSet<Space>& params, const View2<const int, Space>& tokens) {
    split_tokens(tokens);
    return run_on(params, 0.0, nullptr);
  }
  double forward_loss(const ParameterSet<Space>& params, const View2<const int, Space>& ids,
                      const View2<const int, Space>& targets) {
    copy_ids(ids, targets);
    return run_on(params, 0.0, nullptr);
  }

  /// The same on parameters already in Real; gradients accumulate into w's grads.
  double forward_backward(const RealParameters<Real, Space>& w, const View2<const int, Space>& ids,
                          const View2<const int, Space>& targets, double normalizer = 0.0) {
    copy_ids(ids, targets);
    check_parameters(w);
    return run(w, /*backward=*/true, normalizer);
  }
  double forward_loss(const RealParameters<Real, Space>& w, const View2<const int, Space>& ids,
                      const View2<const int, Space>& targets) {
    copy_ids(ids, targets);
    check_parameters(w);
    return run(w, /*backward=*/false, 0.0);
  }

  /// Loss, loss sum and target count of the last call.
  const grad::CrossEntropyResult& last() const { return last_; }

 private:
  using CV = View2<const Real, Space>;

  // ---- input handling ------------------------------------------------------------------------

  void set_shape(std::int64_t b, std::int64_t t, const char* what) {
    if (b < 1 || t < 1)
      throw ArgumentError(std::string("ModelTrainer: ") + what + ": need at least one sequence " +
                          "of at least one token, got [" + std::to_string(b) + ", " +
                          std::to_string(t) + "]");
    if (b * t > std::int64_t(1) << 30)
      throw ArgumentError(std::string("ModelTrainer: ") + what + ": too many tokens");
    b_ = static_cast<int>(b);
    t_ = static_cast<int>(t);
    n_ = b_ * t_;
    if (ids_.extent(0) < std::size_t(n_)) {
      ids_ = View1<int, Space>(
          Kokkos::view_alloc("rodimus::train.ids", Kokkos::WithoutInitializing), n_);
      targets_ = View1<int, Space>(
          Kokkos::view_alloc("rodimus::train.targets", Kokkos::WithoutInitializing), n_);
    }
  }

  void split_tokens(const View2<const int, Space>& tokens) {
    if (tokens.extent(1) < 2)
      throw ArgumentError("ModelTrainer: tokens: extent 1 is " + std::to_string(tokens.extent(1)) +
                          ", need at least 2 (T + 1 with T >= 1)");
    set_shape(tokens.extent(0), std::int64_t(tokens.extent(1)) - 1, "tokens");
    detail::split_tokens(space_, tokens, ids_, targets_, t_, n_);
    check_inputs("tokens");
  }

  void copy_ids(const View2<const int, Space>& ids_in, const View2<const int, Space>& targets_in) {
    ::rodimus::detail::check_extent(targets_in, 0, ids_in.extent(0), "ModelTrainer: targets");
    ::rodimus::detail::check_extent(targets_in, 1, ids_in.extent(1), "ModelTrainer: targets");
    set_shape(ids_in.extent(0), ids_in.extent(1), "ids");
    detail::flatten_ids(space_, ids_in, targets_in, ids_, targets_, t_, n_);
    check_inputs("ids");
  }

  // Ids in [0, V); targets in [0, V) or ignored; on the device, before anything is written.
  void check_inputs(const char* what) {
    const int v = cfg_.vocab_size;
    const std::string w(what);
    const bool tok = w == "tokens";
    grad::detail::check_ids(
        space_, View1<const int, Space>(ids_), n_, v, 0,
        "ModelTrainer: " + (tok ? std::string("input ids (tokens[:, :T])") : std::string("ids")) +
            " (flattened)");
    grad::detail::check_ids(
        space_, View1<const int, Space>(targets_), n_, v, grad::kIgnoreIndex,
        "ModelTrainer: " + (tok ? std::string("targets (tokens[:, 1:])") : std::string("targets")) +
            " (flattened)");
    std::vector<int> lengths(b_, t_), pos0(b_, 0), slots(b_);
    for (int i = 0; i < b_; ++i) slots[i] = i;
    batch_ = batch_buffers_.build(lengths, pos0, slots);
  }

  // The parameters must be those of cfg_: every SPEC 6 tensor by name, in order, with its size.
  template <class PS>
  void check_parameters(const PS& ps) const {
    const auto table = checkpoint_tensors(cfg_);
    if (ps.size() != table.size())
      throw ArgumentError("ModelTrainer: the parameters hold " + std::to_string(ps.size()) +
                          " tensors, the model has " + std::to_string(table.size()));
    for (std::size_t i = 0; i < table.size(); ++i) {
      std::int64_t numel = 0;
      if constexpr (requires { ps[i].numel(); }) {
        numel = ps[i].numel();
      } else {
        numel = ps[i].rows * ps[i].cols;
      }
      if (ps[i].name != table[i].name || numel != table[i].numel())
        throw ArgumentError("ModelTrainer: parameter " + std::to_string(i) + " is '" + ps[i].name +
                            "' of " + std::to_string(numel) + " elements, expected '" +
                            table[i].name + "' of " + std::to_string(table[i].numel()));
    }
  }

  // The forward on params, and with `grads` (= &params) the backward into its gradients.
  double run_on(const ParameterSet<Space>& params, double normalizer,
                ParameterSet<Space>* grads) {
    check_parameters(params);
    const bool backward = grads != nullptr;
    if constexpr (std::is_same_v<Real, float>) {
      return run(RealParameters<float, Space>::bind(params), backward, normalizer);
    } else {
      if (copy_.size() == 0) {
        copy_ = RealParameters<Real, Space>::copy_of(params);
      } else {
        copy_.copy_values_from(params, space_);
        copy_.zero_grad(space_);
      }
      const double loss = run(copy_, backward, normalizer);
      if (backward) copy_.add_grads_to(*grads, space_);
      return loss;
    }
  }

  // ---- forward and backward ------------------------------------------------------------------

  void reserve() {
    const int nl = cfg_.n_layer;
    const std::size_t d = cfg_.d_model;
    for (auto* v : {&h0_, &h_embed_, &hf_, &dh_, &dr_, &dhn_, &dh2_})
      detail::grow(*v, n_, d, "rodimus::train.D");
    detail::grow(logits_, n_, cfg_.vocab_size, "rodimus::train.logits");
    mix_.resize(nl);
    h_mix_.resize(nl);
    r_mix_.resize(nl);
    for (int l = 0; l < nl; ++l) {
      mix_[l].reserve(cfg_, n_);
      detail::grow(h_mix_[l], n_, d, "rodimus::train.h_mix");
      detail::grow(r_mix_[l], n_, d, "rodimus::train.r_mix");
    }
    mix_scratch_.reserve(cfg_, b_, n_);
    if (cfg_.is_plus()) {
      att_.resize(nl);
      h_attn_.resize(nl);
      h_ffn_.resize(nl);
      r_attn_.resize(nl);
      for (int l = 0; l < nl; ++l) {
        att_[l].reserve(cfg_, n_);
        for (auto* v : {&h_attn_[l], &h_ffn_[l], &r_attn_[l]})
          detail::grow(*v, n_, d, "rodimus::train.h_attn");
      }
      att_scratch_.reserve(cfg_, b_, n_);
    }
  }

  // dst[0:N] = src[0:N]
  void copy_rows(const View2<Real, Space>& dst, const View2<Real, Space>& src) const {
    const auto rows = Kokkos::pair<std::size_t, std::size_t>(0, std::size_t(n_));
    Kokkos::deep_copy(space_, Kokkos::subview(dst, rows, Kokkos::ALL),
                      Kokkos::subview(src, rows, Kokkos::ALL));
  }

  double run(const RealParameters<Real, Space>& w, bool backward, double normalizer);

  ModelConfig cfg_;
  Space space_{};
  int b_ = 0, t_ = 0, n_ = 0;
  View1<int, Space> ids_, targets_;  // [N]
  rodimus::detail::SeqBatchBuffers<Space> batch_buffers_;
  SeqBatch<Space> batch_;
  RealParameters<Real, Space> copy_;  // Real = double: the fp64 copy of a ParameterSet
  grad::CrossEntropyResult last_;

  // saved activations
  View2<Real, Space> h0_, h_embed_, hf_, logits_;                            // [N, D] x3, [N, V]
  std::vector<View2<Real, Space>> h_mix_, r_mix_, h_attn_, h_ffn_, r_attn_;  // [N, D] per layer
  std::vector<MixerActivations<Real, Space>> mix_;
  std::vector<AttentionActivations<Real, Space>> att_;
  MixerScratch<Real, Space> mix_scratch_;
  AttentionScratch<Real, Space> att_scratch_;
  // gradient buffers
  View2<Real, Space> dh_, dr_, dhn_, dh2_;  // [N, D]
};

// Out of the class body (not implicitly inline), so that RODIMUS_EXTERN_TEMPLATES leaves it to
// the translation unit that compiles the instances below (core/instantiation.hpp).
template <class Real, class Space, class Scan>
double ModelTrainer<Real, Space, Scan>::run(const RealParameters<Real, Space>& w, bool backward,
                                           double normalizer) {
  reserve();
  const Space& sp = space_;
  const int nt = n_, nl = cfg_.n_layer;
  const Real eps = static_cast<Real>(cfg_.norm_epsilon);
  const auto& embed = w.at("model.embeddings.weight");
  const auto& norm_f = w.at("model.norm_f.weight");
  const auto& lm = cfg_.tie_word_embeddings ? embed : w.at("lm_head.weight");
  const Real escale =
      cfg_.use_scale_embedding ? static_cast<Real>(std::sqrt(double(cfg_.mem_size()))) : Real(1);
  std::vector<MixerParams<Real, Space>> mp;
  std::vector<AttentionParams<Real, Space>> ap;
  for (int l = 0; l < nl; ++l) {
    mp.emplace_back(w, l);
    if (cfg_.is_plus()) ap.emplace_back(w, l);
  }

  // ---- forward: h = Embed[ids] (* sqrt n) (-> embed_norm)                   [N] -> [N, D]
  embedding(sp, View1<const int, Space>(ids_), embed.w(), escale, h0_, nt);
  View2<Real, Space> h = h0_;
  if (cfg_.use_norm_embedding) {
    rms_norm<Real>(sp, CV(h0_), w.at("model.embed_norm.weight").v1(), h_embed_, nt, eps);
    h = h_embed_;
  }
  View2<Real, Space> r;  // the residual stream after the latest prenorm add
  for (int l = 0; l < nl; ++l) {
    // prenorm add (r = h + r; r = h in layer 0) -> mixer
    if (l > 0) copy_rows(r_mix_[l], r);
    add_rms_norm<Real>(sp, CV(h), r_mix_[l], mp[l].norm->v1(), mix_[l].hn, nt, eps,
                       l == 0 ? ResidualMode::Start : ResidualMode::Add);
    r = r_mix_[l];
    mixer_forward<Scan>(sp, cfg_, mp[l], batch_, mix_[l], mix_scratch_, h_mix_[l]);
    h = h_mix_[l];
    if (!cfg_.is_plus()) continue;
    // prenorm add -> SW-SKA; FFN on RMSNorm(h + r) without updating r
    copy_rows(r_attn_[l], r);
    add_rms_norm<Real>(sp, CV(h), r_attn_[l], ap[l].attn_norm->v1(), att_[l].hn, nt, eps,
                       ResidualMode::Add);
    r = r_attn_[l];
    attention_forward(sp, cfg_, ap[l], batch_, att_[l], att_scratch_, h_attn_[l]);
    add_rms_norm<Real>(sp, CV(h_attn_[l]), r, ap[l].ffn_norm->v1(), att_[l].ffn_hn, nt, eps,
                       ResidualMode::AddNoStore);
    ffn_forward(sp, cfg_, ap[l], nt, att_[l], h_ffn_[l]);
    h = h_ffn_[l];
  }
  // logits = RMSNorm_f(h + r) W_lm^T                                         [N, D] -> [N, V]
  add_rms_norm<Real>(sp, CV(h), r, norm_f.v1(), hf_, nt, eps, ResidualMode::AddNoStore);
  detail::linear_fwd(sp, hf_, lm.w(), View1<const Real, Space>(), logits_, nt);
  // loss, and dlogits in place of the logits
  last_ = grad::cross_entropy<Real>(sp, CV(logits_), View1<const int, Space>(targets_), logits_,
                                    nt, normalizer);
  if (!backward) {
    sp.fence();
    return last_.loss;
  }

  // ---- backward
  using grad::GradMode;
  const View1<Real, Space> no_db;
  // lm head: dhf = dlogits W_lm; dW_lm += dlogits^T hf (the embedding's grad when tied)
  grad::linear_backward<Real>(sp, CV(hf_), lm.w(), CV(logits_), dhn_, lm.g(), no_db, nt);
  // final norm (AddNoStore): dh = g, dr = g
  Kokkos::deep_copy(sp, dr_, Real(0));
  grad::add_rms_norm_backward<Real>(sp, CV(h), CV(r), norm_f.v1(), CV(dhn_), dr_, dh_,
                                    norm_f.g1(), nt, cfg_.norm_epsilon, ResidualMode::AddNoStore);
  for (int l = nl - 1; l >= 0; --l) {
    if (cfg_.is_plus()) {
      // dh = dL/d(FFN output), dr = dL/d(r_attn)
      ffn_backward(sp, cfg_, ap[l], nt, att_[l], att_scratch_, dh_, dhn_);
      grad::add_rms_norm_backward<Real>(sp, CV(h_attn_[l]), CV(r_attn_[l]), ap[l].ffn_norm->v1(),
                                        CV(dhn_), dr_, dh2_, ap[l].ffn_norm->g1(), nt,
                                        cfg_.norm_epsilon, ResidualMode::AddNoStore);
      attention_backward(sp, cfg_, ap[l], batch_, att_[l], att_scratch_, dh2_, dhn_);
      grad::add_rms_norm_backward<Real>(sp, CV(), CV(r_attn_[l]), ap[l].attn_norm->v1(), CV(dhn_),
                                        dr_, dh_, ap[l].attn_norm->g1(), nt, cfg_.norm_epsilon,
                                        ResidualMode::Add);
    }
    // dh = dL/d(mixer output), dr = dL/d(r_mix)
    mixer_backward<Scan>(sp, cfg_, mp[l], batch_, mix_[l], mix_scratch_, dh_, dhn_);
    grad::add_rms_norm_backward<Real>(sp, CV(), CV(r_mix_[l]), mp[l].norm->v1(), CV(dhn_), dr_,
                                      dh_, mp[l].norm->g1(), nt, cfg_.norm_epsilon,
                                      l == 0 ? ResidualMode::Start : ResidualMode::Add);
  }
  // dh = dL/d(embedding output)
  if (cfg_.use_norm_embedding) {
    const auto& en = w.at("model.embed_norm.weight");
    grad::rms_norm_backward<Real>(sp, CV(h0_), en.v1(), CV(dh_), dh_, en.g1(), nt,
                                  cfg_.norm_epsilon);
  }
  grad::embedding_backward<Real>(sp, View1<const int, Space>(ids_), CV(dh_), escale, embed.g(),
                                 nt);
  sp.fence();
  return last_.loss;
}

#ifdef RODIMUS_TEMPLATE_INSTANCE
// fp32 training on the host (Trainer's, the examples' and the CLI's).
RODIMUS_TEMPLATE_INSTANCE class ModelTrainer<float, Kokkos::DefaultHostExecutionSpace>;
#endif

}  // namespace rodimus::train
