// The trainable parameters of a model: fp32 master weights and gradients, by published name.
#pragma once

#include <Kokkos_Core.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "rodimus/core/error.hpp"
#include "rodimus/core/views.hpp"
#include "rodimus/io/checkpoint.hpp"
#include "rodimus/model/config.hpp"
#include "rodimus/model/tensor_table.hpp"

namespace rodimus::train {

/// One trainable tensor: its SPEC 6 name and shape, fp32 master weights and gradient as flat
/// views of numel() elements (row-major over `shape`), and whether weight decay applies.
template <class Space>
struct Parameter {
  std::string name;
  std::vector<std::int64_t> shape;
  TensorRole role = TensorRole::Matrix;
  bool decay = false;         ///< true for matrices (linear and conv weights) only
  View1<float, Space> value;  ///< [numel] master weights
  View1<float, Space> grad;   ///< [numel] gradient (accumulated by the backward ops)

  std::int64_t numel() const { return static_cast<std::int64_t>(value.extent(0)); }
  /// shape[0], and the product of the trailing dims (1 for a vector).
  std::int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  std::int64_t cols() const { return rows() ? numel() / rows() : 0; }
  /// The master weights / gradient viewed as [rows, cols] (unmanaged, aliases value / grad):
  /// the form the grad ops take (`dW: [out, in]`; conv `[E, 1, K]` as `[E, K]`).
  View2<float, Space> value_matrix() const {
    return View2<float, Space>(value.data(), std::size_t(rows()), std::size_t(cols()));
  }
  View2<float, Space> grad_matrix() const {
    return View2<float, Space>(grad.data(), std::size_t(rows()), std::size_t(cols()));
  }
  /// Rows [row0, row0 + count) of value_matrix() / grad_matrix(): the halves of a fused weight
  /// (`mixer.fc.weight` rows [0, E) = W_x, [E, 2E) = W_g), as bind_weights splits them.
  View2<float, Space> value_rows(std::int64_t row0, std::int64_t count) const {
    check_range(row0, count, rows(), "value_rows");
    return View2<float, Space>(value.data() + row0 * cols(), std::size_t(count),
                               std::size_t(cols()));
  }
  View2<float, Space> grad_rows(std::int64_t row0, std::int64_t count) const {
    check_range(row0, count, rows(), "grad_rows");
    return View2<float, Space>(grad.data() + row0 * cols(), std::size_t(count),
                               std::size_t(cols()));
  }
  /// Elements [begin, begin + count) of value / grad: the halves of a fused bias
  /// (`mem_gate_proj.bias` [0, n) = selection, [n, 2n) = temperature).
  View1<float, Space> value_slice(std::int64_t begin, std::int64_t count) const {
    check_range(begin, count, numel(), "value_slice");
    return View1<float, Space>(value.data() + begin, std::size_t(count));
  }
  View1<float, Space> grad_slice(std::int64_t begin, std::int64_t count) const {
    check_range(begin, count, numel(), "grad_slice");
    return View1<float, Space>(grad.data() + begin, std::size_t(count));
  }

 private:
  void check_range(std::int64_t begin, std::int64_t count, std::int64_t size,
                   const char* what) const {
    if (begin < 0 || count < 0 || begin + count > size)
      throw ArgumentError(name + ": " + what + "(" + std::to_string(begin) + ", " +
                          std::to_string(count) + ") is outside [0, " + std::to_string(size) + ")");
  }
};

/// Is weight decay applied to a tensor of this role? Only matrices: linear weights, the LM head
/// and the ShortConv kernel. Not embeddings, norm weights, biases, the residual weight
/// (the release marks it `_no_weight_decay`) or the gate bias (issue 6).
constexpr bool decays(TensorRole r) {
  return r == TensorRole::Matrix || r == TensorRole::ConvWeight;
}

/// How make_parameters initialises the weights.
struct InitOptions {
  double std = 0.02;       ///< matrices and embeddings ~ N(0, std) (config `initializer_range`)
  std::uint64_t seed = 0;  ///< the host generator's seed; the same seed gives the same weights
};

/// The config.json key `initializer_range` of `file_or_dir` (a directory means its
/// config.json), or `fallback` when the key is absent. Throws ConfigError naming the file.
inline double initializer_range(const std::filesystem::path& file_or_dir, double fallback = 0.02) {
  std::error_code ec;
  const auto file =
      std::filesystem::is_directory(file_or_dir, ec) ? file_or_dir / "config.json" : file_or_dir;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file.string() + ": cannot open the config file");
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    const auto j = nlohmann::json::parse(ss.str());
    const auto it = j.find("initializer_range");
    if (it == j.end() || it->is_null()) return fallback;
    if (!it->is_number())
      throw ConfigError(file.string() + ": 'initializer_range' is not a number");
    return it->get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(file.string() + ": " + e.what());
  }
}

/// Every trainable parameter of a model, in the order of checkpoint_tensors(cfg). With tied
/// embeddings there is no lm_head entry: the LM head's gradient belongs in the embedding's.
template <class Space>
class ParameterSet {
 public:
  using execution_space = Space;

  ParameterSet() = default;
  ParameterSet(const ModelConfig& cfg, std::vector<Parameter<Space>> params, double init_std = 0.02)
      : cfg_(cfg), params_(std::move(params)), init_std_(init_std) {}

  const ModelConfig& config() const { return cfg_; }
  /// The std the matrices were initialised with (written as config.json's initializer_range).
  double init_std() const { return init_std_; }
  std::size_t size() const { return params_.size(); }
  Parameter<Space>& operator[](std::size_t i) { return params_[i]; }
  const Parameter<Space>& operator[](std::size_t i) const { return params_[i]; }
  auto begin() { return params_.begin(); }
  auto end() { return params_.end(); }
  auto begin() const { return params_.begin(); }
  auto end() const { return params_.end(); }

  /// The parameter called `name`, or nullptr.
  Parameter<Space>* find(std::string_view name) {
    for (auto& p : params_)
      if (p.name == name) return &p;
    return nullptr;
  }
  const Parameter<Space>* find(std::string_view name) const {
    return const_cast<ParameterSet*>(this)->find(name);
  }
  /// The parameter called `name`; throws ArgumentError when there is none.
  Parameter<Space>& at(std::string_view name) {
    if (auto* p = find(name)) return *p;
    throw ArgumentError("ParameterSet: no parameter named '" + std::string(name) + "'");
  }
  const Parameter<Space>& at(std::string_view name) const {
    return const_cast<ParameterSet*>(this)->at(name);
  }

  /// Total number of trainable elements.
  std::int64_t numel() const {
    std::int64_t n = 0;
    for (const auto& p : params_) n += p.numel();
    return n;
  }

  /// Sets every gradient to zero (one launch per parameter on Space; not fenced).
  void zero_grad(const Space& space = Space()) {
    for (auto& p : params_) Kokkos::deep_copy(space, p.grad, 0.f);
  }

 private:
  ModelConfig cfg_;
  std::vector<Parameter<Space>> params_;
  double init_std_ = 0.02;
};

namespace detail {

/// N(0, 1) from a 64-bit generator by Box-Muller, so the weights a seed gives do not depend on
/// the standard library's normal_distribution.
class NormalSource {
 public:
  explicit NormalSource(std::uint64_t seed) : gen_(seed) {}
  double uniform() { return double(gen_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform(), u2 = uniform();  // u1 in (0, 1]
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * std::numbers::pi * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  std::mt19937_64 gen_;
  double spare_ = 0;
  bool has_spare_ = false;
};

/// Fills `h` (numel of tensor `t`) with the initial values of its role; see make_parameters.
inline void init_tensor(const TensorSpec& t, double std, int conv_k, NormalSource& src,
                        std::vector<float>& h) {
  switch (t.role) {
    case TensorRole::Embedding:
    case TensorRole::Matrix:
      for (auto& x : h) x = static_cast<float>(std * src.normal());
      break;
    case TensorRole::ConvWeight:
    case TensorRole::ConvBias: {  // PyTorch Conv1d default: U(-1/sqrt(K), 1/sqrt(K)) (fan_in = K)
      const double bound = 1.0 / std::sqrt(double(conv_k));
      for (auto& x : h) x = static_cast<float>((2.0 * src.uniform() - 1.0) * bound);
      break;
    }
    case TensorRole::Norm:
    case TensorRole::ResidualWeight:
      for (auto& x : h) x = 1.f;
      break;
    case TensorRole::LinearBias:
      for (auto& x : h) x = 0.f;
      break;
    case TensorRole::MemGateBias: {
      // The release's init (RodimusFlowInner._init_weights): selection half s_raw with
      // softplus(s_raw) = exp(U(log 1e-3, log 0.1)) (clamped >= 1e-4), i.e. the inverse softplus
      // s + log(-expm1(-s)); temperature half tau_raw = logit(U(1/16, 0.9)).
      const std::size_t n = h.size() / 2;
      for (std::size_t i = 0; i < n; ++i) {
        double s = std::exp(src.uniform() * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3));
        s = std::max(s, 1e-4);
        h[i] = static_cast<float>(s + std::log(-std::expm1(-s)));
      }
      for (std::size_t i = n; i < h.size(); ++i) {
        const double tau = 1.0 / 16 + src.uniform() * (0.9 - 1.0 / 16);
        h[i] = static_cast<float>(std::log(tau / (1.0 - tau)));
      }
      break;
    }
  }
}

}  // namespace detail

/// The parameters of `cfg` with zero gradients, initialised on the host from `opt.seed` and
/// copied to Space (the same seed gives the same weights on every space):
/// - embeddings and matrices (linear weights, lm_head when untied) ~ N(0, opt.std);
/// - ShortConv weight and bias ~ U(-1/sqrt(K), 1/sqrt(K)) (PyTorch's Conv1d default, which the
///   release keeps);
/// - norm weights and the residual weight `w_res` = 1 (the release's torch.ones);
/// - the channel gate's bias = 0;
/// - the memory gate bias as the release initialises it: softplus(s_raw) log-uniform in
///   [1e-3, 0.1], sigmoid(tau_raw) uniform in [1/16, 0.9].
/// The release initialises in_proj, ch_gate_proj and mem_gate_proj weights with Xavier-uniform;
/// here every matrix is N(0, std), as the issue asks.
template <class Space>
ParameterSet<Space> make_parameters(const ModelConfig& cfg, const InitOptions& opt = {}) {
  detail::NormalSource src(opt.seed);
  std::vector<Parameter<Space>> params;
  for (const TensorSpec& t : checkpoint_tensors(cfg)) {
    Parameter<Space> p;
    p.name = t.name;
    p.shape = t.shape;
    p.role = t.role;
    p.decay = decays(t.role);
    p.value = View1<float, Space>(Kokkos::view_alloc(t.name, Kokkos::WithoutInitializing),
                                  std::size_t(t.numel()));
    p.grad = View1<float, Space>(t.name + ".grad", std::size_t(t.numel()));
    std::vector<float> h(std::size_t(t.numel()));
    detail::init_tensor(t, opt.std, cfg.d_conv(), src, h);
    Kokkos::deep_copy(
        Space(), p.value,
        Kokkos::View<const float*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>(h.data(), h.size()));
    Space().fence();
    params.push_back(std::move(p));
  }
  return ParameterSet<Space>(cfg, std::move(params), opt.std);
}

/// Copies every tensor of `ckpt` (any float dtype, checked by name and shape) into the master
/// weights of `params`: to fine-tune a published checkpoint. Throws CheckpointError naming a
/// missing or mis-shaped tensor.
template <class Space>
void load_parameters(const io::Checkpoint& ckpt, ParameterSet<Space>& params) {
  std::vector<float> h;
  for (auto& p : params) {
    h.resize(std::size_t(p.numel()));
    ckpt.read<float>(p.name, std::span<const std::int64_t>(p.shape), h.data());
    Kokkos::deep_copy(
        Space(), p.value,
        Kokkos::View<const float*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>(h.data(), h.size()));
    Space().fence();
  }
}

/// The master weights of `p` on the host.
template <class Space>
std::vector<float> download_value(const Parameter<Space>& p) {
  std::vector<float> h(std::size_t(p.numel()));
  Kokkos::deep_copy(
      Kokkos::View<float*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>(h.data(), h.size()),
      p.value);
  return h;
}

}  // namespace rodimus::train
