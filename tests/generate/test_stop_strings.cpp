// Stop strings on streamed text: random texts cut into random pieces, against a plain search.
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "rodimus/generate/stop_strings.hpp"

using namespace rodimus;

TEST_CASE("StopStrings: finds stop strings across piece boundaries and never emits them",
          "[stop]") {
  const std::uint64_t seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  // a small alphabet (with a two-byte character) so stop strings and near misses are frequent
  const std::vector<std::string> alphabet = {"a", "b", "c", " ", "\xc3\xa9"};
  const auto random_text = [&](std::size_t chars) {
    std::string s;
    for (std::size_t i = 0; i < chars; ++i) s += alphabet[pick(alphabet.size())];
    return s;
  };
  int stopped_cases = 0, open_cases = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<std::string> stops;
    const std::size_t n_stops = 1 + pick(3);
    for (std::size_t i = 0; i < n_stops; ++i) stops.push_back(random_text(1 + pick(4)));
    const std::string text = random_text(pick(40));
    std::size_t first = std::string::npos, max_len = 0;
    for (const auto& s : stops) {
      first = std::min(first, text.find(s));
      max_len = std::max(max_len, s.size());
    }
    // cut into pieces of 0..5 bytes (a piece may split a character: the filter works on bytes)
    std::vector<std::string> pieces;
    for (std::size_t at = 0; at < text.size();) {
      const std::size_t len = std::min(text.size() - at, pick(6));
      pieces.push_back(text.substr(at, len));
      at += len;
    }
    StopStrings filter(stops);
    std::string emitted, out;
    std::size_t fed = 0, fed_before = 0;
    bool stopped = false;
    for (const auto& p : pieces) {
      fed_before = fed;
      stopped = filter.push(p, out);
      emitted += out;
      fed += p.size();
      if (stopped) break;
      // only a possible start of a stop string is held back
      REQUIRE(emitted.size() + max_len - 1 >= fed);
      REQUIRE(text.compare(0, emitted.size(), emitted) == 0);
    }
    CAPTURE(text, stops);
    if (first == std::string::npos) {
      REQUIRE_FALSE(stopped);
      emitted += filter.flush();
      REQUIRE(emitted == text);
      ++open_cases;
    } else {
      REQUIRE(stopped);
      // the text before the earliest stop string complete in what was fed (a later-starting
      // one may complete first: "b" in "a b" stops before " bc" could)
      const std::string prefix = text.substr(0, fed);
      std::size_t cut = std::string::npos;
      for (const auto& s : stops) cut = std::min(cut, prefix.find(s));
      REQUIRE(emitted == text.substr(0, cut));
      // stopped at the piece that completes the first stop string, not later
      std::size_t end = std::string::npos;
      for (const auto& s : stops)
        if (const auto at = text.find(s); at != std::string::npos)
          end = std::min(end, at + s.size());
      REQUIRE(fed_before < end);
      REQUIRE(end <= fed);
      REQUIRE(filter.flush().empty());
      REQUIRE(filter.push("more", out));
      REQUIRE(out.empty());
      ++stopped_cases;
    }
  }
  REQUIRE(stopped_cases > 100);
  REQUIRE(open_cases > 100);
}

TEST_CASE("StopStrings: no stop strings pass everything through; empty ones are errors", "[stop]") {
  StopStrings none;
  std::string out;
  REQUIRE_FALSE(none.push("abc", out));
  REQUIRE(out == "abc");
  REQUIRE(none.flush().empty());
  REQUIRE_THROWS_WITH(StopStrings({"ok", ""}), Catch::Contains("stop string 1 is empty"));
}
