// A growing K/V cache of one attention layer: row p of a slot holds the key and value of
// position p of that slot's sequence; capacity grows by doubling, keeping what it holds.
#pragma once

#include <string>

#include "rodimus/backend/exec_space_traits.hpp"
#include "rodimus/core/views.hpp"

namespace rodimus {

/// The keys and values of every past position of `slots` sequences, for one attention layer
/// (the operand of `causal_attention`). All slots share one capacity (rows per slot).
/// `reserve` grows it to max(rows, 2 * capacity), so a sequence grown token by token
/// reallocates O(log T) times; while a call fits in the capacity nothing is allocated.
namespace detail {
/// out(s, r, c) = old(s, r, c) for every row of `old` (out has at least as many rows). A free
/// function: CUDA's extended lambdas may not sit in private member functions.
// old: [S, R, d], out: [S, >=R, d]
template <class Space>
void copy_kv_rows(const View3<float, Space>& old, const View3<float, Space>& out) {
  const int rows = static_cast<int>(old.extent(1)), d = static_cast<int>(old.extent(2));
  const std::int64_t per_slot = std::int64_t(rows) * d;
  if (per_slot <= 0) return;
  Kokkos::parallel_for(
      RODIMUS_KERNEL_LABEL("rodimus::kv_cache.grow"),
      Kokkos::RangePolicy<Space>(Space(), 0, std::int64_t(old.extent(0)) * per_slot),
      KOKKOS_LAMBDA(const std::int64_t i) {
        const int s = static_cast<int>(i / per_slot);
        const int r = static_cast<int>((i % per_slot) / d), c = static_cast<int>(i % d);
        out(s, r, c) = old(s, r, c);
      });
  Space().fence();
}
}  // namespace detail

template <class Space>
class KvCache {
 public:
  KvCache() = default;

  /// An empty cache of `capacity` rows per slot for keys/values of `kv_dim` floats.
  KvCache(int slots, int kv_dim, int capacity) : slots_(slots), kv_dim_(kv_dim) {
    if (slots <= 0 || kv_dim <= 0 || capacity < 0)
      throw ArgumentError("KvCache: slots and kv_dim must be positive, capacity >= 0");
    require_launch_thread<Space>("KvCache");
    k_ = alloc("rodimus::kv_cache.k", capacity);
    v_ = alloc("rodimus::kv_cache.v", capacity);
  }

  int slots() const { return slots_; }
  int kv_dim() const { return kv_dim_; }
  /// Rows per slot.
  int capacity() const { return static_cast<int>(k_.extent(1)); }
  /// [slots, capacity, kv_dim]
  const View3<float, Space>& k() const { return k_; }
  const View3<float, Space>& v() const { return v_; }

  /// Makes room for `rows` positions per slot, keeping every row held. Returns true when it
  /// reallocated (new capacity = max(rows, 2 * capacity)).
  bool reserve(std::int64_t rows) {
    if (rows <= capacity()) return false;
    if (rows > std::int64_t(INT32_MAX))
      throw ArgumentError("KvCache: " + std::to_string(rows) + " rows exceed the int32 range");
    const std::int64_t doubled = 2 * std::int64_t(capacity());
    const std::int64_t cap = rows > doubled ? rows : (doubled > INT32_MAX ? INT32_MAX : doubled);
    k_ = grown(k_, static_cast<int>(cap));
    v_ = grown(v_, static_cast<int>(cap));
    return true;
  }

  /// Copies the first `rows` positions of slot `src_slot` of `src` into slot `dst_slot`
  /// (growing this cache when needed).
  void copy_slot(int dst_slot, const KvCache& src, int src_slot, int rows) {
    if (dst_slot < 0 || dst_slot >= slots_ || src_slot < 0 || src_slot >= src.slots_ ||
        src.kv_dim_ != kv_dim_ || rows < 0 || rows > src.capacity())
      throw ArgumentError("KvCache::copy_slot: slots, kv_dim or rows out of range");
    reserve(rows);
    const int d = kv_dim_;
    const auto dk = k_, dv = v_, sk = src.k_, sv = src.v_;
    Kokkos::parallel_for(
        RODIMUS_KERNEL_LABEL("rodimus::kv_cache.copy_slot"),
        Kokkos::RangePolicy<Space>(Space(), 0, std::int64_t(rows) * d),
        KOKKOS_LAMBDA(const std::int64_t i) {
          const int r = static_cast<int>(i / d), c = static_cast<int>(i % d);
          dk(dst_slot, r, c) = sk(src_slot, r, c);
          dv(dst_slot, r, c) = sv(src_slot, r, c);
        });
    Space().fence();
  }

  /// Bytes allocated for keys and values.
  std::size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

 private:
  View3<float, Space> alloc(const char* label, int capacity) const {
    detail::note_reallocation();
    return View3<float, Space>(
        Kokkos::view_alloc(std::string(label), Space(), Kokkos::WithoutInitializing), slots_,
        capacity, kv_dim_);
  }
  // A view of `cap` rows per slot holding the rows of `old`.
  View3<float, Space> grown(const View3<float, Space>& old, int cap) const {
    auto out = alloc(old.label().c_str(), cap);
    detail::copy_kv_rows<Space>(old, out);
    return out;
  }

  int slots_ = 0, kv_dim_ = 0;
  View3<float, Space> k_, v_;
};

}  // namespace rodimus
