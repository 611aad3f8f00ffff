// The BPE model of tokenizer.json: vocab, ranked merges (string "a b" or pair ["a","b"] form),
// unk/byte fallback, subword prefix/suffix and ignore_merges, merged like `tokenizers` does.
#pragma once

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rodimus/io/tokenizer/json_util.hpp"
#include "rodimus/io/tokenizer/utf8.hpp"

namespace rodimus::io::detail {

/// Transparent hash so that maps keyed by std::string take string_view look-ups.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  /// Parses the "model" object at `path`.
  BpeModel(const nlohmann::json& m, const TokenizerJson& js, const std::string& path) {
    if (const auto* d = TokenizerJson::get(m, "dropout"); d && !d->is_null()) {
      if (!d->is_number() || d->get<double>() != 0.0)
        js.fail(TokenizerJson::join(path, "dropout"),
                "is not supported (BPE dropout is random; only null or 0)");
    }
    unk_token_ = js.opt_string(m, path, "unk_token");
    prefix_ = js.opt_string(m, path, "continuing_subword_prefix");
    suffix_ = js.opt_string(m, path, "end_of_word_suffix");
    fuse_unk_ = js.opt_bool(m, path, "fuse_unk", false);
    byte_fallback_ = js.opt_bool(m, path, "byte_fallback", false);
    ignore_merges_ = js.opt_bool(m, path, "ignore_merges", false);

    const std::string vpath = TokenizerJson::join(path, "vocab");
    const auto* vocab = TokenizerJson::get(m, "vocab");
    if (!vocab) js.fail(vpath, "is missing");
    js.object(*vocab, vpath);
    vocab_.reserve(vocab->size());
    for (const auto& [token, idv] : vocab->items()) {
      const int id = js.id(idv, vpath + "." + printable(token));
      const auto it = vocab_.insert_or_assign(token, id).first;
      vocab_r_[id] = &it->first;
    }

    const std::string mpath = TokenizerJson::join(path, "merges");
    const auto* merges = TokenizerJson::get(m, "merges");
    if (merges && !merges->is_null()) {
      js.array(*merges, mpath);
      merges_.reserve(merges->size());
      const std::size_t prefix_len = prefix_ ? prefix_->size() : 0;
      std::size_t rank = 0;
      for (const auto& e : *merges) {
        const std::string epath = TokenizerJson::index(mpath, rank);
        std::string_view a, b;
        if (e.is_string()) {  // "a b": split at the first space
          const auto& s = e.get_ref<const std::string&>();
          const auto sp = s.find(' ');
          if (sp == std::string::npos)
            js.fail(epath, "must be two tokens separated by a space, got " + printable(s));
          a = std::string_view(s).substr(0, sp);
          b = std::string_view(s).substr(sp + 1);
        } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
          a = e[0].get_ref<const std::string&>();
          b = e[1].get_ref<const std::string&>();
        } else {
          js.fail(epath, "must be a string \"a b\" or a pair [\"a\", \"b\"]");
        }
        const auto ia = vocab_.find(a), ib = vocab_.find(b);
        if (ia == vocab_.end())
          js.fail(epath, "names a token that is not in the vocab: " + printable(a));
        if (ib == vocab_.end())
          js.fail(epath, "names a token that is not in the vocab: " + printable(b));
        if (b.size() < prefix_len)
          js.fail(epath, "has a right token shorter than continuing_subword_prefix");
        std::string merged(a);
        merged.append(b.substr(prefix_len));
        const auto im = vocab_.find(merged);
        if (im == vocab_.end())
          js.fail(epath, "makes a token that is not in the vocab: " + printable(merged));
        merges_[key(ia->second, ib->second)] = Merge{static_cast<std::uint32_t>(rank), im->second};
        ++rank;
      }
    }
  }
  BpeModel(const BpeModel&) = delete;  // vocab_r_ points into vocab_
  BpeModel& operator=(const BpeModel&) = delete;

  std::size_t size() const { return vocab_.size(); }
  const TokenMap& vocab() const { return vocab_; }

  std::optional<int> token_to_id(std::string_view token) const {
    const auto it = vocab_.find(token);
    return it == vocab_.end() ? std::nullopt : std::optional<int>(it->second);
  }
  const std::string* id_to_token(int id) const {
    const auto it = vocab_r_.find(id);
    return it == vocab_r_.end() ? nullptr : it->second;
  }

  /// Appends the ids of one pre-tokenized piece.
  void encode(std::string_view piece, std::vector<std::int32_t>& out) const {
    if (piece.empty()) return;
    if (ignore_merges_) {
      if (const auto it = vocab_.find(piece); it != vocab_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    std::vector<Symbol>& w = scratch();
    w.clear();
    merge_word(piece, w);
    merge_all(w);
    for (const Symbol& s : w)
      if (s.len > 0) out.push_back(s.id);
  }

 private:
  struct Merge {
    std::uint32_t rank;
    int new_id;
  };
  struct Symbol {
    int id;
    int prev, next;
    std::size_t len;  // bytes of the piece it covers; 0 once merged into its left neighbour
  };
  struct Candidate {
    std::uint32_t rank;
    int pos;
    int new_id;
    // std::push_heap keeps the largest on top: the lowest rank, then the leftmost position wins.
    bool operator<(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };

  static std::uint64_t key(int a, int b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  }

  static std::vector<Symbol>& scratch() {
    thread_local std::vector<Symbol> w;
    return w;
  }

  void add(std::vector<Symbol>& w, int id, std::size_t len) const {
    const int n = static_cast<int>(w.size());
    if (n > 0) w.back().next = n;
    w.push_back(Symbol{id, n - 1, -1, len});
  }

  /// One symbol per character (with prefix/suffix), byte fallback or unk as tokenizers does.
  void merge_word(std::string_view word, std::vector<Symbol>& w) const {
    int unk_id = -1;  // a pending unk token and the bytes it covers
    std::size_t unk_len = 0;
    std::string s;
    for (std::size_t i = 0; i < word.size();) {
      const std::size_t len = utf8_char_len(word, i);
      const bool first = i == 0, last = i + len >= word.size();
      std::string_view c = word.substr(i, len);
      i += len;
      if ((!first && prefix_ && !prefix_->empty()) || (last && suffix_ && !suffix_->empty())) {
        s.clear();
        if (!first && prefix_) s += *prefix_;
        s += c;
        if (last && suffix_) s += *suffix_;
        c = s;
      }
      if (const auto it = vocab_.find(c); it != vocab_.end()) {
        if (unk_id >= 0) {
          add(w, unk_id, unk_len);
          unk_id = -1;
        }
        add(w, it->second, len);
        continue;
      }
      if (byte_fallback_) {
        std::vector<int> ids;
        for (const char b : c) {
          static constexpr char hex[] = "0123456789ABCDEF";
          const auto u = static_cast<unsigned char>(b);
          const std::string code = std::string("<0x") + hex[u >> 4] + hex[u & 15] + ">";
          const auto it = vocab_.find(code);
          if (it == vocab_.end()) break;
          ids.push_back(it->second);
        }
        if (ids.size() == c.size()) {
          for (const int id : ids) add(w, id, 1);
          continue;
        }
      }
      if (unk_token_) {
        const auto it = vocab_.find(*unk_token_);
        if (it == vocab_.end())
          throw ConfigError("tokenizer.json: unk_token " + printable(*unk_token_) +
                            " is not in the vocab");
        if (unk_id >= 0 && fuse_unk_) {
          unk_len += len;
        } else {
          if (unk_id >= 0) add(w, unk_id, unk_len);
          unk_id = it->second;
          unk_len = len;
        }
      }
    }
    if (unk_id >= 0) add(w, unk_id, unk_len);
  }

  /// Applies merges lowest rank first, leftmost first among equals (tokenizers' Word::merge_all).
  void merge_all(std::vector<Symbol>& w) const {
    if (w.size() < 2 || merges_.empty()) return;
    thread_local std::vector<Candidate> heap;
    heap.clear();
    for (std::size_t i = 0; i + 1 < w.size(); ++i) {
      if (const auto it = merges_.find(key(w[i].id, w[i + 1].id)); it != merges_.end())
        heap.push_back(Candidate{it->second.rank, static_cast<int>(i), it->second.new_id});
    }
    std::make_heap(heap.begin(), heap.end());
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const Candidate top = heap.back();
      heap.pop_back();
      Symbol& cur = w[static_cast<std::size_t>(top.pos)];
      if (cur.len == 0 || cur.next < 0) continue;
      const int next_pos = cur.next;
      const Symbol right = w[static_cast<std::size_t>(next_pos)];
      const auto it = merges_.find(key(cur.id, right.id));
      if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale entry
      cur.id = top.new_id;
      cur.len += right.len;
      cur.next = right.next;
      w[static_cast<std::size_t>(next_pos)].len = 0;
      if (right.next >= 0) w[static_cast<std::size_t>(right.next)].prev = top.pos;
      if (cur.prev >= 0) {
        const Symbol& p = w[static_cast<std::size_t>(cur.prev)];
        if (const auto m = merges_.find(key(p.id, cur.id)); m != merges_.end()) {
          heap.push_back(Candidate{m->second.rank, cur.prev, m->second.new_id});
          std::push_heap(heap.begin(), heap.end());
        }
      }
      if (cur.next >= 0) {
        const Symbol& n = w[static_cast<std::size_t>(cur.next)];
        if (const auto m = merges_.find(key(cur.id, n.id)); m != merges_.end()) {
          heap.push_back(Candidate{m->second.rank, top.pos, m->second.new_id});
          std::push_heap(heap.begin(), heap.end());
        }
      }
    }
  }

  TokenMap vocab_;
  std::unordered_map<int, const std::string*> vocab_r_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  std::optional<std::string> unk_token_, prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
};

}  // namespace rodimus::io::detail
