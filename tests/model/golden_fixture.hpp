// Test helper: loads a golden case (tests/data/golden/<name>) and compares logits to it.
#pragma once

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rodimus/io/safetensors.hpp"
#include "rodimus/model/model.hpp"

namespace rodimus::test {

inline std::string golden_dir(const std::string& name) {
  return std::string(RODIMUS_TEST_DATA_DIR) + "/golden/" + name;
}

/// The expected outputs of one golden case.
struct Golden {
  int batch = 0, tokens = 0, vocab = 0;
  std::vector<std::vector<std::int32_t>> ids;  // [B][T]
  io::SafetensorsFile expected;

  explicit Golden(const std::string& name)
      : expected(io::SafetensorsFile::open(golden_dir(name) + "/expected.safetensors")) {
    const auto* t = expected.find("input_ids");
    batch = static_cast<int>(t->shape[0]);
    tokens = static_cast<int>(t->shape[1]);
    ids.assign(batch, std::vector<std::int32_t>(tokens));
    for (int b = 0; b < batch; ++b)
      for (int i = 0; i < tokens; ++i) {
        std::int64_t v;
        std::memcpy(&v, t->bytes.data() + 8 * (std::size_t(b) * tokens + i), 8);
        ids[b][i] = static_cast<std::int32_t>(v);
      }
    vocab = static_cast<int>(expected.find("logits")->shape[2]);
  }

  /// Element [b, t, c] of an fp32 tensor [B, T, C].
  float at(const std::string& name, int b, int t, int c) const {
    const auto* ref = expected.find(name);
    const std::size_t cols = ref->shape[2];
    float v;
    std::memcpy(&v, ref->bytes.data() + 4 * ((std::size_t(b) * tokens + t) * cols + c), 4);
    return v;
  }

  /// max |x| over a whole fp32 tensor.
  float abs_max(const std::string& name) const {
    const auto* ref = expected.find(name);
    float m = 0;
    for (std::int64_t i = 0; i < ref->numel(); ++i) {
      float v;
      std::memcpy(&v, ref->bytes.data() + 4 * i, 4);
      m = std::max(m, std::fabs(v));
    }
    return m;
  }
};

/// max |got[row, :] - expected[b, t, :]| over the rows given; got is a host-accessible view.
template <class V>
double max_err_row(const V& got, int row, const Golden& g, const std::string& name, int b, int t) {
  const int cols = static_cast<int>(g.expected.find(name)->shape[2]);
  double e = 0;
  for (int c = 0; c < cols; ++c)
    e = std::max(e, std::fabs(double(got(row, c)) - g.at(name, b, t, c)));
  return e;
}

}  // namespace rodimus::test
