// Stop strings on streamed text: holds back text that may be the start of a stop string, so a
// stop string split across tokens is found and never emitted.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "rodimus/core/error.hpp"

namespace rodimus {

/// Watches a stream of text pieces for any of a set of stop strings. push() returns the text
/// that is safe to show: everything except a tail that could still grow into a stop string.
/// When a stop string appears, push() returns the text before it and reports the stop.
class StopStrings {
 public:
  StopStrings() = default;

  /// Throws ArgumentError for an empty stop string.
  explicit StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
    for (std::size_t i = 0; i < stops_.size(); ++i)
      if (stops_[i].empty()) throw ArgumentError("stop string " + std::to_string(i) + " is empty");
  }

  bool empty() const { return stops_.empty(); }
  const std::vector<std::string>& strings() const { return stops_; }

  /// Appends `piece`. Writes the text that is safe to emit to `out` (replacing its contents)
  /// and returns true when a stop string is complete: `out` then holds the text before it and
  /// the filter is done (later pushes emit nothing).
  bool push(std::string_view piece, std::string& out) {
    out.clear();
    if (stopped_) return true;
    held_.append(piece);
    if (stops_.empty()) {
      out.swap(held_);
      return false;
    }
    // The earliest stop string wins; held_ held none before this piece.
    std::size_t first = std::string::npos;
    for (const auto& s : stops_) first = std::min(first, held_.find(s));
    if (first != std::string::npos) {
      out.assign(held_, 0, first);
      held_.clear();
      stopped_ = true;
      return true;
    }
    // Hold back the longest tail of held_ that is a proper prefix of some stop string.
    std::size_t keep = 0;
    for (const auto& s : stops_) {
      for (std::size_t k = std::min(held_.size(), s.size() - 1); k > keep; --k) {
        if (std::string_view(held_).substr(held_.size() - k) == std::string_view(s).substr(0, k)) {
          keep = k;
          break;
        }
      }
    }
    out.assign(held_, 0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return false;
  }

  /// The held-back text, at the end of the stream (nothing once a stop string was found).
  std::string flush() {
    std::string out;
    out.swap(held_);
    return out;
  }

  /// Starts over with nothing held.
  void reset() {
    held_.clear();
    stopped_ = false;
  }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace rodimus
