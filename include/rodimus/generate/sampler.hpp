// Next-token sampling from a row of logits: repetition penalty, then greedy or temperature with
// top-k, top-p and min-p filtering, drawn from a seeded random stream.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "rodimus/core/error.hpp"
#include "rodimus/generate/random.hpp"

namespace rodimus {

/// How the next token is chosen (Hugging Face `generate` semantics, in its order: repetition
/// penalty, temperature, top-k, top-p, min-p).
struct SamplerConfig {
  /// Logits are divided by it before sampling; 0 means greedy (argmax, no randomness).
  double temperature = 0.0;
  /// Keep the k largest logits (ties with the k-th are kept too); 0 keeps all.
  int top_k = 0;
  /// Keep the smallest set of most probable tokens whose probability reaches top_p; 1 keeps all.
  double top_p = 1.0;
  /// Drop tokens less probable than min_p times the most probable one; 0 keeps all.
  double min_p = 0.0;
  /// Logits of tokens already seen (prompt and generated) are divided by it when positive and
  /// multiplied by it when negative; 1 is off.
  double repetition_penalty = 1.0;
  /// Seed of the random stream: the same seed and inputs give the same tokens.
  std::uint64_t seed = 0;

  bool greedy() const { return temperature == 0.0; }

  /// Throws ArgumentError naming the first parameter out of range.
  void validate() const {
    const auto bad = [](const std::string& what) { throw ArgumentError("sampler: " + what); };
    if (!std::isfinite(temperature) || temperature < 0.0)
      bad("temperature must be a finite number >= 0 (0 = greedy), got " +
          std::to_string(temperature));
    if (top_k < 0) bad("top_k must be >= 0 (0 = off), got " + std::to_string(top_k));
    if (!(top_p > 0.0 && top_p <= 1.0))
      bad("top_p must be in (0, 1] (1 = off), got " + std::to_string(top_p));
    if (!(min_p >= 0.0 && min_p <= 1.0))
      bad("min_p must be in [0, 1] (0 = off), got " + std::to_string(min_p));
    if (!std::isfinite(repetition_penalty) || repetition_penalty <= 0.0)
      bad("repetition_penalty must be a finite number > 0 (1 = off), got " +
          std::to_string(repetition_penalty));
  }
};

/// Chooses tokens from logits. Keeps the set of tokens seen so far for the repetition penalty
/// and its own random stream; after the first call it allocates nothing for a vocabulary of the
/// same size.
class Sampler {
 public:
  /// Throws ArgumentError for an invalid `cfg`.
  explicit Sampler(const SamplerConfig& cfg = {}) : cfg_(cfg), rng_(cfg.seed) { cfg_.validate(); }

  const SamplerConfig& config() const { return cfg_; }

  /// Forgets the seen tokens (the random stream goes on).
  void clear_history() {
    for (const std::int32_t id : seen_) seen_flag_[static_cast<std::size_t>(id)] = 0;
    seen_.clear();
  }

  /// Restarts the random stream at `seed`.
  void reseed(std::uint64_t seed) { rng_.seed(seed); }

  /// Adds tokens to the seen set of the repetition penalty.
  void observe(std::span<const std::int32_t> ids) {
    for (const std::int32_t id : ids) observe(id);
  }
  void observe(std::int32_t id) {
    if (id < 0) throw ArgumentError("sampler: negative token id " + std::to_string(id));
    const auto i = static_cast<std::size_t>(id);
    if (i >= seen_flag_.size()) seen_flag_.resize(i + 1, 0);
    if (!seen_flag_[i]) {
      seen_flag_[i] = 1;
      seen_.push_back(id);
    }
  }

  /// The seen tokens, in first-seen order.
  const std::vector<std::int32_t>& history() const { return seen_; }

  /// The next token for `logits` (one row, [V]).
  std::int32_t sample(std::span<const float> logits) {
    const auto v = static_cast<std::int32_t>(logits.size());
    if (v == 0) throw ArgumentError("sampler: empty logits");
    scores_.assign(logits.begin(), logits.end());
    // Repetition penalty (HF RepetitionPenaltyLogitsProcessor): once per distinct seen token.
    if (cfg_.repetition_penalty != 1.0) {
      const auto p = static_cast<float>(cfg_.repetition_penalty);
      for (const std::int32_t id : seen_) {
        if (id >= v) continue;
        float& s = scores_[static_cast<std::size_t>(id)];
        s = s < 0.f ? s * p : s / p;
      }
    }
    if (cfg_.greedy()) return argmax();

    // Candidates, scaled by 1 / temperature: z_i = s_i / T.
    const double inv_t = 1.0 / cfg_.temperature;
    order_.resize(static_cast<std::size_t>(v));
    for (std::int32_t i = 0; i < v; ++i) order_[static_cast<std::size_t>(i)] = i;
    const auto z = [&](std::int32_t i) {
      return double(scores_[static_cast<std::size_t>(i)]) * inv_t;
    };
    // larger score first, smaller id first on ties: a total order, so results are reproducible
    const auto before = [&](std::int32_t a, std::int32_t b) {
      const float sa = scores_[static_cast<std::size_t>(a)],
                  sb = scores_[static_cast<std::size_t>(b)];
      return sa > sb || (sa == sb && a < b);
    };
    std::size_t n = order_.size();
    bool sorted = false;
    // top-k: keep scores >= the k-th largest (HF TopKLogitsWarper keeps ties).
    if (cfg_.top_k > 0 && static_cast<std::size_t>(cfg_.top_k) < n) {
      const auto k = static_cast<std::size_t>(cfg_.top_k);
      std::nth_element(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(k - 1),
                       order_.end(), before);
      const float kth = scores_[static_cast<std::size_t>(order_[k - 1])];
      n = static_cast<std::size_t>(std::partition(order_.begin(), order_.end(),
                                                  [&](std::int32_t i) {
                                                    return scores_[static_cast<std::size_t>(i)] >=
                                                           kth;
                                                  }) -
                                   order_.begin());
    }
    if (cfg_.top_p < 1.0) {
      std::sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(n), before);
      sorted = true;
    }
    // Unnormalised probabilities relative to the best candidate: w_i = exp(z_i - max z) <= 1.
    double zmax = -INFINITY;
    for (std::size_t j = 0; j < n; ++j) zmax = std::max(zmax, z(order_[j]));
    if (!std::isfinite(zmax)) return argmax();  // every logit -inf (or NaN): nothing to sample
    weights_.resize(n);
    double total = 0.0;
    for (std::size_t j = 0; j < n; ++j) total += weights_[j] = std::exp(z(order_[j]) - zmax);
    // top-p (HF TopPLogitsWarper): keep the most probable tokens while the probability before
    // them is below top_p, so the token that crosses top_p stays; at least one is kept.
    if (cfg_.top_p < 1.0 && sorted) {
      double before_mass = 0.0;
      std::size_t keep = 0;
      while (keep < n && (keep == 0 || before_mass < cfg_.top_p * total))
        before_mass += weights_[keep++];
      n = keep;
    }
    // min-p (HF MinPLogitsWarper): p_i < min_p * p_max  <=>  w_i < min_p, since w_max = 1.
    if (cfg_.min_p > 0.0) {
      std::size_t kept = 0;
      for (std::size_t j = 0; j < n; ++j) {
        if (weights_[j] >= cfg_.min_p) {
          order_[kept] = order_[j];
          weights_[kept] = weights_[j];
          ++kept;
        }
      }
      n = kept;  // the best candidate has w = 1 >= min_p, so n >= 1
    }
    total = 0.0;
    for (std::size_t j = 0; j < n; ++j) total += weights_[j];
    // Inverse CDF over the kept candidates: the first whose running sum exceeds u * total.
    const double u = rng_.uniform() * total;
    double run = 0.0;
    for (std::size_t j = 0; j < n; ++j) {
      run += weights_[j];
      if (u < run) return order_[j];
    }
    return order_[n - 1];
  }

 private:
  /// Index of the largest (penalised) score, the smallest such id on ties.
  std::int32_t argmax() const {
    std::size_t best = 0;
    for (std::size_t i = 1; i < scores_.size(); ++i)
      if (scores_[i] > scores_[best]) best = i;
    return static_cast<std::int32_t>(best);
  }

  SamplerConfig cfg_;
  Rng rng_;
  std::vector<float> scores_;
  std::vector<std::int32_t> order_;
  std::vector<double> weights_;
  std::vector<unsigned char> seen_flag_;
  std::vector<std::int32_t> seen_;
};

}  // namespace rodimus
