// Host kernel of the sliding-window KV-cache update: copies each sequence's last `wc` key and
// value rows of a call into its ring of `wc` rows (row (pos0 + i) % wc of its slot), a row
// memcpy each. A decode-sized call (up to 64 Ki floats) is one work item; larger ones take a
// sequence per item.
//
// Work: 2 x 4 x (kd + vd) bytes moved per cached token; nothing else.
#pragma once

#include <cstdint>
#include <cstring>

namespace rodimus::backend::host {

/// Plain pointers and sizes of one cache update (all host memory; rows of unit stride, caches
/// contiguous [S, wc, kd] and [S, wc, vd]).
struct KvCacheArgs {
  const float* k;  // [N, ldk]
  const float* v;  // [N, ldv]
  float* k_cache;  // [S, wc, kd]
  float* v_cache;  // [S, wc, vd]
  std::int64_t ldk, ldv, kd, vd;
  int wc, num_seqs, num_tokens;
  const int* offsets;  // [B + 1]
  const int* pos0;     // [B]
  const int* slot;     // [B]
};

/// Work items of the update: 1 for a decode-sized call, else one per sequence.
inline std::int64_t kv_cache_items(const KvCacheArgs& a) {
  return std::int64_t(a.num_tokens) * (a.kd + a.vd) <= (std::int64_t(1) << 16) ? 1 : a.num_seqs;
}

/// Runs work item `item` of kv_cache_items(a) items.
inline void kv_cache_update_item(const KvCacheArgs& a, std::int64_t item) {
  const bool whole = kv_cache_items(a) == 1;  // one item: every sequence
  const int s0 = whole ? 0 : static_cast<int>(item);
  const int s1 = whole ? a.num_seqs : s0 + 1;
  for (int s = s0; s < s1; ++s) {
    const int off = a.offsets[s], len = a.offsets[s + 1] - off;
    for (int i = len > a.wc ? len - a.wc : 0; i < len; ++i) {
      const std::int64_t row = std::int64_t(a.slot[s]) * a.wc + (a.pos0[s] + i) % a.wc;
      std::memcpy(a.k_cache + row * a.kd, a.k + (off + i) * a.ldk, sizeof(float) * a.kd);
      std::memcpy(a.v_cache + row * a.vd, a.v + (off + i) * a.ldv, sizeof(float) * a.vd);
    }
  }
}

}  // namespace rodimus::backend::host
