// The learning-rate schedule: linear warm-up, then cosine decay to a floor.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace rodimus::train {

/// lr(step) for the 0-based optimiser step `step` (the number of steps already taken):
///   step <  warmup_steps:          max_lr * (step + 1) / warmup_steps   (never 0)
///   warmup_steps <= step < total:  min_lr + (max_lr - min_lr) (1 + cos(pi x)) / 2,
///                                  x = (step - warmup_steps) / (total_steps - warmup_steps)
///   step >= total_steps:           min_lr
struct CosineSchedule {
  double max_lr = 3e-4;
  double min_lr = 3e-5;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;

  double lr(std::int64_t step) const {
    if (step < 0) step = 0;
    if (step < warmup_steps) return max_lr * double(step + 1) / double(warmup_steps);
    if (step >= total_steps) return min_lr;
    const double x = double(step - warmup_steps) / double(total_steps - warmup_steps);
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * x));
  }
  double operator()(std::int64_t step) const { return lr(step); }
};

}  // namespace rodimus::train
