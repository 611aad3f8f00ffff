// PCRE2 (UTF + UCP, JIT where available) behind a small RAII class with Oniguruma's find_iter
// semantics, as the `tokenizers` library iterates its Split and ByteLevel patterns.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "rodimus/core/error.hpp"
#include "rodimus/io/tokenizer/utf8.hpp"

namespace rodimus::io::detail {

/// Per-thread JIT stack and match context, shared by every pattern used on that thread.
struct Pcre2ThreadState {
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;

  Pcre2ThreadState() {
    context = pcre2_match_context_create(nullptr);
    // Bounds the backtracking of a hostile pattern; the built-in tokenizer patterns stay far below.
    pcre2_set_match_limit(context, 20'000'000);
    jit_stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (jit_stack != nullptr) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~Pcre2ThreadState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
  }
  Pcre2ThreadState(const Pcre2ThreadState&) = delete;
  Pcre2ThreadState& operator=(const Pcre2ThreadState&) = delete;

  static Pcre2ThreadState& get() {
    thread_local Pcre2ThreadState state;
    return state;
  }
};

/// A compiled pattern. Subjects must be well-formed UTF-8 (the tokenizer guarantees it).
class Regex {
 public:
  /// Compiles `pattern` (a literal string when `literal`); a bad pattern is a ConfigError that
  /// names `what` and quotes PCRE2's message.
  Regex(std::string_view pattern, bool literal, const std::string& what) {
    int code = 0;
    PCRE2_SIZE offset = 0;
    // \C could split a character and break the UTF-8 guarantee the matcher relies on.
    const uint32_t options =
        literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C;
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &code, &offset, nullptr);
    if (re == nullptr) {
      PCRE2_UCHAR buffer[256];
      pcre2_get_error_message(code, buffer, sizeof buffer);
      throw ConfigError(what + ": invalid regex at offset " + std::to_string(offset) + ": " +
                        reinterpret_cast<const char*>(buffer));
    }
    code_.reset(re);
    jit_ = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
  }

  /// Calls f(start, end) for each match, left to right, the way the onig crate's find_iter does:
  /// an empty match right where the previous match ended is skipped.
  template <class F>
  void find_iter(std::string_view subject, F&& f) const {
    Pcre2ThreadState& state = Pcre2ThreadState::get();
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
        pcre2_match_data_create_from_pattern(code_.get(), nullptr), &pcre2_match_data_free);
    if (!md) throw Error("tokenizer regex: out of memory");
    const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
    std::size_t last_end = 0;
    std::optional<std::size_t> last_match_end;
    while (last_end <= subject.size()) {
      const int rc = jit_ ? pcre2_jit_match(code_.get(), data, subject.size(), last_end, 0,
                                            md.get(), state.context)
                          : pcre2_match(code_.get(), data, subject.size(), last_end,
                                        PCRE2_NO_UTF_CHECK, md.get(), state.context);
      if (rc == PCRE2_ERROR_NOMATCH) return;
      if (rc < 0) {
        PCRE2_UCHAR buffer[256];
        pcre2_get_error_message(rc, buffer, sizeof buffer);
        throw Error(std::string("tokenizer regex: match failed: ") +
                    reinterpret_cast<const char*>(buffer));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      const std::size_t start = ov[0], end = ov[1];
      if (end < start) return;  // \K in a look-ahead; not something tokenizers use
      if (start == end && last_match_end == end) {
        last_end += last_end < subject.size() ? utf8_char_len(subject, last_end) : 1;
        continue;
      }
      last_end = end;
      last_match_end = end;
      f(start, end);
    }
  }

 private:
  struct Free {
    void operator()(pcre2_code* c) const { pcre2_code_free(c); }
  };
  std::unique_ptr<pcre2_code, Free> code_;
  bool jit_ = false;
};

}  // namespace rodimus::io::detail
