// Reference model weights: checkpoint tensors by SPEC section 6 name, converted to double.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "rodimus/core/error.hpp"

namespace rodimus::reference {

/// Every tensor of a checkpoint, keyed by its SPEC section 6 name (e.g.
/// "model.layers.0.mixer.fc.weight"), row-major in double; shapes are implied by the config.
using Weights = std::map<std::string, std::vector<double>>;

/// The tensor `name`, checked to hold `expected` elements; CheckpointError naming it otherwise.
inline const std::vector<double>& weight(const Weights& w, const std::string& name,
                                         std::size_t expected) {
  const auto it = w.find(name);
  if (it == w.end()) throw CheckpointError("rodimus::reference: missing tensor " + name);
  if (it->second.size() != expected) {
    throw CheckpointError("rodimus::reference: tensor " + name + " has " +
                          std::to_string(it->second.size()) + " elements, expected " +
                          std::to_string(expected));
  }
  return it->second;
}

/// "model.layers.<i>." — the prefix of layer i's tensors.
inline std::string layer_prefix(int i) { return "model.layers." + std::to_string(i) + "."; }

}  // namespace rodimus::reference
