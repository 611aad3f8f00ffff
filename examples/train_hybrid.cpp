// Training a hybrid composed from the library's parts (docs/training.md, "A custom hybrid").
//
// The published Rodimus+ block runs mixer -> SW-SKA -> FFN. This hybrid turns it around:
// every layer runs the shared-key sliding-window attention and its FFN first and the Rodimus
// mixer (ShortConv, DDTS gates, GLA scan) after them, so local attention sees the tokens before
// the linear-attention state summarises them. The parameters are those of a Rodimus+ config
// (the same tensors, the same names), the layers are train/layer_grad.hpp's forward and
// backward passes of the sub-layers, and train::Trainer trains it through the LossAndGradient
// interface. The program
//   1. checks the hybrid's gradient in fp64 against central finite differences of its loss,
//   2. trains it for a few hundred steps on a synthetic token stream with a learnable rule,
// and exits non-zero unless the gradient check passes and the loss falls clearly.
//
//   build/examples/train_hybrid [--steps N] [--verbose]   (--verbose: the check per tensor)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <rodimus/backend/host/blas_threads.hpp>
#include <rodimus/rodimus.hpp>
#include <string>
#include <vector>

namespace {

using Space = Kokkos::DefaultExecutionSpace;
using namespace rodimus;
using namespace rodimus::train;

/// Loss and gradients of the attention-first hybrid on [B, T] ids and targets (Real = float to
/// train, double to check), every sequence from a zero state.
template <class Real>
class AttentionFirstHybrid {
 public:
  using Scan = ChunkedScan<16>;
  explicit AttentionFirstHybrid(const ModelConfig& cfg) : cfg_(cfg) {}

  /// Mean cross-entropy; with `backward`, its gradient is added to w's gradients.
  double run(const RealParameters<Real, Space>& w, const std::vector<int>& ids,
             const std::vector<int>& targets, int b, int t, bool backward) {
    using CV = View2<const Real, Space>;
    const Space sp;
    const int nt = b * t, nl = cfg_.n_layer;
    const Real eps = static_cast<Real>(cfg_.norm_epsilon);
    reserve(b, t);
    upload(ids, ids_);
    upload(targets, targets_);
    const auto& embed = w.at("model.embeddings.weight");  // tied: also the LM head
    const auto& norm_f = w.at("model.norm_f.weight");
    std::vector<MixerParams<Real, Space>> mp;
    std::vector<AttentionParams<Real, Space>> ap;
    for (int l = 0; l < nl; ++l) {
      mp.emplace_back(w, l);
      ap.emplace_back(w, l);
    }

    // forward ---------------------------------------------------------------------------------
    embedding(sp, View1<const int, Space>(ids_), embed.w(), Real(1), h0_, nt);  // [N, D]
    View2<Real, Space> h = h0_, r;
    for (int l = 0; l < nl; ++l) {
      // r = h (+ r) -> SW-SKA on its norm
      if (l > 0) copy_rows(r_attn_[l], r, nt);
      add_rms_norm<Real>(sp, CV(h), r_attn_[l], ap[l].attn_norm->v1(), att_[l].hn, nt, eps,
                         l == 0 ? ResidualMode::Start : ResidualMode::Add);
      r = r_attn_[l];
      attention_forward(sp, cfg_, ap[l], batch_, att_[l], att_scratch_, h_attn_[l]);
      // FFN on the norm of (attention output + r), r unchanged
      add_rms_norm<Real>(sp, CV(h_attn_[l]), r, ap[l].ffn_norm->v1(), att_[l].ffn_hn, nt, eps,
                         ResidualMode::AddNoStore);
      ffn_forward(sp, cfg_, ap[l], nt, att_[l], h_ffn_[l]);
      // r = FFN output + r -> the Rodimus mixer on its norm
      copy_rows(r_mix_[l], r, nt);
      add_rms_norm<Real>(sp, CV(h_ffn_[l]), r_mix_[l], mp[l].norm->v1(), mix_[l].hn, nt, eps,
                         ResidualMode::Add);
      r = r_mix_[l];
      mixer_forward<Scan>(sp, cfg_, mp[l], batch_, mix_[l], mix_scratch_, h_mix_[l]);
      h = h_mix_[l];
    }
    add_rms_norm<Real>(sp, CV(h), r, norm_f.v1(), hf_, nt, eps, ResidualMode::AddNoStore);
    linear(sp, CV(hf_), LinearWeights<Real, Space>{embed.w(), {}}, logits_, nt);  // [N, V]
    const auto ce = grad::cross_entropy<Real>(sp, CV(logits_), View1<const int, Space>(targets_),
                                              logits_, nt, 0.0);  // dlogits in place
    if (!backward) return ce.loss;

    // backward: the same steps in reverse, each op's backward from grad/ or layer_grad.hpp ----
    const View1<Real, Space> no_db;
    grad::linear_backward<Real>(sp, CV(hf_), embed.w(), CV(logits_), dhn_, embed.g(), no_db, nt);
    Kokkos::deep_copy(sp, dr_, Real(0));
    grad::add_rms_norm_backward<Real>(sp, CV(h), CV(r), norm_f.v1(), CV(dhn_), dr_, dh_,
                                      norm_f.g1(), nt, cfg_.norm_epsilon, ResidualMode::AddNoStore);
    for (int l = nl - 1; l >= 0; --l) {
      // dh_ = dL/d(mixer output), dr_ = dL/d(r after the mixer's add)
      mixer_backward<Scan>(sp, cfg_, mp[l], batch_, mix_[l], mix_scratch_, dh_, dhn_);
      grad::add_rms_norm_backward<Real>(sp, CV(), CV(r_mix_[l]), mp[l].norm->v1(), CV(dhn_), dr_,
                                        dh_, mp[l].norm->g1(), nt, cfg_.norm_epsilon,
                                        ResidualMode::Add);
      // dh_ = dL/d(FFN output)
      ffn_backward(sp, cfg_, ap[l], nt, att_[l], att_scratch_, dh_, dhn_);
      grad::add_rms_norm_backward<Real>(sp, CV(h_attn_[l]), CV(r_attn_[l]), ap[l].ffn_norm->v1(),
                                        CV(dhn_), dr_, dh2_, ap[l].ffn_norm->g1(), nt,
                                        cfg_.norm_epsilon, ResidualMode::AddNoStore);
      // dh2_ = dL/d(attention output)
      attention_backward(sp, cfg_, ap[l], batch_, att_[l], att_scratch_, dh2_, dhn_);
      grad::add_rms_norm_backward<Real>(sp, CV(), CV(r_attn_[l]), ap[l].attn_norm->v1(), CV(dhn_),
                                        dr_, dh_, ap[l].attn_norm->g1(), nt, cfg_.norm_epsilon,
                                        l == 0 ? ResidualMode::Start : ResidualMode::Add);
    }
    grad::embedding_backward<Real>(sp, View1<const int, Space>(ids_), CV(dh_), Real(1), embed.g(),
                                   nt);
    sp.fence();
    return ce.loss;
  }

 private:
  void reserve(int b, int t) {
    const int nt = b * t, nl = cfg_.n_layer;
    const std::size_t d = cfg_.d_model;
    for (auto* v : {&h0_, &hf_, &dh_, &dr_, &dhn_, &dh2_})
      train::detail::grow(*v, nt, d, "hybrid.D");
    train::detail::grow(logits_, nt, cfg_.vocab_size, "hybrid.logits");
    for (auto* per_layer : {&h_attn_, &h_ffn_, &h_mix_, &r_attn_, &r_mix_}) {
      per_layer->resize(nl);
      for (auto& v : *per_layer) train::detail::grow(v, nt, d, "hybrid.layer");
    }
    mix_.resize(nl);
    att_.resize(nl);
    for (int l = 0; l < nl; ++l) {
      mix_[l].reserve(cfg_, nt);
      att_[l].reserve(cfg_, nt);
    }
    mix_scratch_.reserve(cfg_, b, nt);
    att_scratch_.reserve(cfg_, b, nt);
    std::vector<int> lengths(b, t), pos0(b, 0), slots(b);
    for (int i = 0; i < b; ++i) slots[i] = i;
    batch_ = batch_buffers_.build(lengths, pos0, slots);
  }
  static void upload(const std::vector<int>& h, View1<int, Space>& d) {
    if (d.extent(0) < h.size()) d = View1<int, Space>("hybrid.ids", h.size());
    Kokkos::deep_copy(
        Kokkos::subview(d, std::make_pair(std::size_t(0), h.size())),
        Kokkos::View<const int*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>(h.data(), h.size()));
  }
  static void copy_rows(const View2<Real, Space>& dst, const View2<Real, Space>& src, int n) {
    const auto rows = std::make_pair(std::size_t(0), std::size_t(n));
    Kokkos::deep_copy(Space(), Kokkos::subview(dst, rows, Kokkos::ALL),
                      Kokkos::subview(src, rows, Kokkos::ALL));
  }

  ModelConfig cfg_;
  View1<int, Space> ids_, targets_;
  rodimus::detail::SeqBatchBuffers<Space> batch_buffers_;
  SeqBatch<Space> batch_;
  View2<Real, Space> h0_, hf_, logits_, dh_, dr_, dhn_, dh2_;
  std::vector<View2<Real, Space>> h_attn_, h_ffn_, h_mix_, r_attn_, r_mix_;
  std::vector<MixerActivations<Real, Space>> mix_;
  std::vector<AttentionActivations<Real, Space>> att_;
  MixerScratch<Real, Space> mix_scratch_;
  AttentionScratch<Real, Space> att_scratch_;
};

/// The trainer's plug-in (train/trainer.hpp's LossAndGradient): fp32, on the master weights.
struct HybridLoss {
  AttentionFirstHybrid<float> net;
  double operator()(ParameterSet<Space>& p, const TrainBatch& b) { return run(p, b, true); }
  double loss(ParameterSet<Space>& p, const TrainBatch& b) { return run(p, b, false); }
  double run(ParameterSet<Space>& p, const TrainBatch& b, bool backward) {
    std::vector<int> ids, targets;
    for (int i = 0; i < b.batch; ++i) {
      for (int x : b.inputs(i)) ids.push_back(x);
      for (int x : b.targets(i)) targets.push_back(x);
    }
    return net.run(RealParameters<float, Space>::bind(p), ids, targets, b.batch, b.seq_len,
                   backward);
  }
};

// A small Rodimus+ config: the hybrid reuses its tensors.
const char* kConfig = R"({
  "block_type": "rodimus_plus", "d_model": 64, "n_layer": 2, "vocab_size": 64,
  "norm_epsilon": 1e-05, "tie_word_embeddings": true,
  "mixer_cfg": {"d_conv": 4, "expand_ratio": 2, "mem_size": 16, "input_gate_low_rank": 8},
  "attn_cfg": {"num_heads": 4, "num_heads_k": 1, "num_heads_v": 4, "window_size": 16,
               "rotary_emb_dim": -1, "ffn_expand_ratio": 2.0}})";

/// Tokens with a rule to learn: runs that count up by a step fixed per run (mod V), with noise.
TokenStream synthetic_stream(int vocab, std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  TokenStream s;
  int x = 0, step = 1, left = 0;
  while (s.ids.size() < n) {
    if (left-- <= 0) {
      step = 1 + int(rng() % 5);
      left = 8 + int(rng() % 24);
      x = int(rng() % unsigned(vocab));
    }
    x = (x + step) % vocab;
    s.ids.push_back(rng() % 16 == 0 ? int(rng() % unsigned(vocab)) : x);
  }
  s.bytes = s.ids.size();
  return s;
}

/// fp64 gradient of every tensor's largest entries against central differences of the loss.
double gradient_check(const ModelConfig& cfg, bool verbose) {
  // weights of about 1 / sqrt(fan-in), not the training init's 0.02: every tensor then has
  // gradients far above the difference quotient's rounding noise (~1e-11 on a loss of ~4)
  const auto ps = make_parameters<Space>(cfg, {0.15, 11});
  auto w = RealParameters<double, Space>::copy_of(ps);
  AttentionFirstHybrid<double> net(cfg);
  std::mt19937 rng(5);
  const int b = 2, t = 12;
  std::vector<int> ids(b * t), targets(b * t);
  for (auto& x : ids) x = int(rng() % unsigned(cfg.vocab_size));
  for (auto& x : targets) x = int(rng() % unsigned(cfg.vocab_size));
  net.run(w, ids, targets, b, t, true);
  double worst = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const auto& p = w[i];
    auto value = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), p.value);
    auto grad = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), p.grad);
    // the 3 entries with the largest gradient: where the difference quotient is far above its
    // rounding noise (~1e-11 here), so the comparison measures the gradient, not the noise
    std::vector<std::size_t> order(value.extent(0));
    for (std::size_t j = 0; j < order.size(); ++j) order[j] = j;
    const std::size_t picks = std::min<std::size_t>(3, order.size());
    std::partial_sort(
        order.begin(), order.begin() + picks, order.end(),
        [&](std::size_t a, std::size_t c) { return std::fabs(grad(a)) > std::fabs(grad(c)); });
    double num = 0, den = 0;
    for (std::size_t k = 0; k < picks; ++k) {
      const std::size_t j = order[k];
      const double x0 = value(j), step = 1e-5 * std::max(1.0, std::fabs(x0));
      auto at = [&](double x) {
        Kokkos::deep_copy(Kokkos::subview(p.value, j), x);
        return net.run(w, ids, targets, b, t, false);
      };
      const double fd = (at(x0 + step) - at(x0 - step)) / (2 * step);
      Kokkos::deep_copy(Kokkos::subview(p.value, j), x0);
      num += (grad(j) - fd) * (grad(j) - fd);
      den += fd * fd;
    }
    if (den > 0) worst = std::max(worst, std::sqrt(num / den));
    if (verbose)
      std::printf("  %-58s relative error %.2e (|fd| %.2e)\n", p.name.c_str(),
                  den > 0 ? std::sqrt(num / den) : 0.0, std::sqrt(den));
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP's idle threads and OpenBLAS's must not spin against each other (the variables are
  // read as the libraries load, so this re-executes the program once with them set)
  rodimus::backend::host::reexec_with_quiet_idle_threads(argv);
  setenv("OMP_PROC_BIND", "false", 0);
  Kokkos::ScopeGuard guard(argc, argv);
  std::int64_t steps = 300;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) {
      steps = std::atoll(argv[++i]);
    } else if (a == "--verbose") {
      verbose = true;
    } else {
      std::fprintf(stderr, "usage: train_hybrid [--steps N (>= 1)] [--verbose]\n");
      return 2;
    }
  }
  if (steps < 1) {
    std::fprintf(stderr, "train_hybrid: --steps must be at least 1\n");
    return 2;
  }
  const ModelConfig cfg = io::parse_config(kConfig, "train_hybrid config");
  ParameterSet<Space> params = make_parameters<Space>(cfg);

  const double err = gradient_check(cfg, verbose);
  std::printf("fp64 gradient vs central differences: worst relative error %.2e\n", err);

  const TokenStream train = synthetic_stream(cfg.vocab_size, 200000, 1);
  const TokenStream heldout = synthetic_stream(cfg.vocab_size, 20000, 2);
  TrainerOptions opt;
  opt.batch = 8;
  opt.seq_len = 64;
  opt.steps = steps;
  opt.lr = 3e-3;
  opt.min_lr = 3e-4;
  opt.warmup_steps = 20;
  opt.seed = 7;
  Trainer<Space> trainer(params, train, &heldout, opt);
  HybridLoss model{AttentionFirstHybrid<float>(cfg)};
  const double before = trainer.evaluate(model, 16).loss();
  TrainerCallbacks cb;
  cb.on_step = [&](const StepReport& s) {
    if (s.step % 50 == 0 || s.step == steps)
      std::printf("step %lld  loss %.4f\n", static_cast<long long>(s.step), s.loss);
  };
  trainer.run(model, cb);
  const double after = trainer.evaluate(model, 16).loss();
  std::printf("held-out loss: %.4f before training, %.4f after %lld steps (uniform: %.4f)\n",
              before, after, static_cast<long long>(steps), std::log(double(cfg.vocab_size)));
  const bool ok = err < 1e-6 && after < before - 1.0;
  std::printf("%s\n", ok ? "ok" : "FAILED (gradient error >= 1e-6 or loss fell by < 1 nat)");
  return ok ? 0 : 1;
}
