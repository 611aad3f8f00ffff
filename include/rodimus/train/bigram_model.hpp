// The loss and gradient of a Rodimus model without blocks (n_layer = 0): a bigram model,
// built from the grad ops alone; the trainer's first plug-in.
#pragma once

#include <Kokkos_Core.hpp>
#include <cmath>
#include <string>

#include "rodimus/core/error.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/grad/cross_entropy.hpp"
#include "rodimus/grad/embedding.hpp"
#include "rodimus/grad/linear.hpp"
#include "rodimus/grad/rms_norm.hpp"
#include "rodimus/model/config.hpp"
#include "rodimus/ops/embedding.hpp"
#include "rodimus/ops/linear.hpp"
#include "rodimus/ops/rms_norm.hpp"
#include "rodimus/train/batch_sampler.hpp"
#include "rodimus/train/parameters.hpp"

namespace rodimus::train {

/// A Rodimus / Rodimus+ config with n_layer = 0 is the model Model runs as (SPEC 5 without
/// blocks):
///   e = E[x] * s                       s = sqrt(n) with use_scale_embedding, else 1     [N, D]
///   h = RMSNorm(e) w_embed_norm        (use_norm_embedding; else h = e)
///   logits = RMSNorm(h) w_norm_f W^T   W = lm_head, or E when tied                      [N, V]
/// Each token's logits depend on that token alone: a bigram model. `operator()` is the trainer's
/// loss-and-gradient (train/trainer.hpp): the mean cross-entropy over a batch's B*T targets,
/// with its gradient added to the parameters' grads; `loss` is the forward alone.
template <class Space>
class BigramModel {
 public:
  explicit BigramModel(const ModelConfig& cfg) : cfg_(cfg) {
    if (cfg.n_layer != 0)
      throw ConfigError("BigramModel: the config has n_layer = " + std::to_string(cfg.n_layer) +
                        "; the bigram model is the n_layer = 0 case");
  }

  /// Mean cross-entropy of `batch`; adds its gradient to the grads of `params`.
  double operator()(ParameterSet<Space>& params, const TrainBatch& batch) {
    return run(params, batch, true);
  }
  /// Mean cross-entropy of `batch`; gradients untouched.
  double loss(ParameterSet<Space>& params, const TrainBatch& batch) {
    return run(params, batch, false);
  }

 private:
  using CV2 = View2<const float, Space>;
  using CV1 = View1<const float, Space>;

  double run(ParameterSet<Space>& params, const TrainBatch& batch, bool backward) {
    if (params.config().n_layer != 0 || params.config().vocab_size != cfg_.vocab_size ||
        params.config().d_model != cfg_.d_model)
      throw ArgumentError("BigramModel: the parameters were built for another config");
    const Space space{};
    const int n = static_cast<int>(batch.num_targets());
    const int d = cfg_.d_model, v = cfg_.vocab_size;
    reserve(n, d, v);
    for (int b = 0; b < batch.batch; ++b) {
      const auto in = batch.inputs(b), tg = batch.targets(b);
      for (int t = 0; t < batch.seq_len; ++t) {
        ids_h_(b * batch.seq_len + t) = in[std::size_t(t)];
        tg_h_(b * batch.seq_len + t) = tg[std::size_t(t)];
      }
    }
    for (int t = 0; t < n; ++t)
      if (ids_h_(t) < 0 || ids_h_(t) >= v)
        throw ArgumentError("BigramModel: token id " + std::to_string(ids_h_(t)) +
                            " is outside the vocabulary [0, " + std::to_string(v) + ")");
    Kokkos::deep_copy(space, ids_, ids_h_);
    Kokkos::deep_copy(space, tg_, tg_h_);

    const auto& table = params.at("model.embeddings.weight");
    const auto& norm_f = params.at("model.norm_f.weight");
    const auto& head = cfg_.tie_word_embeddings ? table : params.at("lm_head.weight");
    const Parameter<Space>* embed_norm =
        cfg_.use_norm_embedding ? &params.at("model.embed_norm.weight") : nullptr;
    const float eps = static_cast<float>(cfg_.norm_epsilon);
    const float scale = cfg_.use_scale_embedding ? std::sqrt(float(cfg_.mem_size())) : 1.f;

    // forward
    embedding(space, View1<const int, Space>(ids_), CV2(table.value_matrix()), scale, e_, n);
    if (embed_norm) rms_norm(space, CV2(e_), CV1(embed_norm->value), h_, n, eps);
    const auto h = embed_norm ? h_ : e_;  // [N, D]
    rms_norm(space, CV2(h), CV1(norm_f.value), hn_, n, eps);
    linear(space, CV2(hn_), LinearWeights<float, Space>{CV2(head.value_matrix()), {}}, logits_, n);
    // logits -> dlogits in place: (softmax - onehot) / N
    const auto ce =
        grad::cross_entropy<float>(space, CV2(logits_), View1<const int, Space>(tg_), logits_, n);
    if (backward) {
      // dhn = dlogits W; dW += dlogits^T hn                                          [N, D]
      grad::linear_backward<float>(space, CV2(hn_), CV2(head.value_matrix()), CV2(logits_), dx_,
                                   head.grad_matrix(), View1<float, Space>(), n);
      // dh = RMSNorm_f'(dhn), dw_f +=
      grad::rms_norm_backward<float>(space, CV2(h), CV1(norm_f.value), CV2(dx_), dx_, norm_f.grad,
                                     n, cfg_.norm_epsilon);
      if (embed_norm)
        grad::rms_norm_backward<float>(space, CV2(e_), CV1(embed_norm->value), CV2(dx_), dx_,
                                       embed_norm->grad, n, cfg_.norm_epsilon);
      grad::embedding_backward<float>(space, View1<const int, Space>(ids_), CV2(dx_), scale,
                                      table.grad_matrix(), n);
    }
    space.fence();
    return ce.loss;
  }

  void reserve(int n, int d, int v) {
    if (static_cast<int>(ids_.extent(0)) >= n) return;
    ids_ = View1<int, Space>("rodimus::bigram.ids", n);
    tg_ = View1<int, Space>("rodimus::bigram.targets", n);
    ids_h_ = Kokkos::create_mirror_view(ids_);
    tg_h_ = Kokkos::create_mirror_view(tg_);
    e_ = View2<float, Space>("rodimus::bigram.e", n, d);
    h_ = View2<float, Space>("rodimus::bigram.h", n, d);
    hn_ = View2<float, Space>("rodimus::bigram.hn", n, d);
    dx_ = View2<float, Space>("rodimus::bigram.dx", n, d);
    logits_ = View2<float, Space>("rodimus::bigram.logits", n, v);
  }

  ModelConfig cfg_;
  View1<int, Space> ids_, tg_;
  typename View1<int, Space>::HostMirror ids_h_, tg_h_;
  View2<float, Space> e_, h_, hn_, dx_, logits_;
};

}  // namespace rodimus::train
