// Decode states at a given context without prefilling it: every recurrent state and cache row
// gets random contents and every slot's position is advanced. Decode cost does not depend on
// the contents (no kernel skips work by value on these inputs), so a decode step timed from
// such a state costs what it costs after a real prefill of `ctx` tokens (bench_model's
// decode_prefilled cases check that), without minutes of prefill per benchmark.
#pragma once

#include <Kokkos_Random.hpp>
#include <cstdint>
#include <random>

#include "rodimus/model/state.hpp"
#include "rodimus/model/transformer_state.hpp"

namespace rodimus::bench {

/// Fills `v` with uniform values in [-1, 1], generated where `v` lives (a GPU fills its tens of
/// GiB of batch-128 caches in milliseconds).
template <class V>
void fill_random(const V& v, std::mt19937& rng) {
  using Space = typename V::execution_space;
  Kokkos::Random_XorShift64_Pool<Space> pool(rng());
  // as one flat array: Kokkos fills a view of rank > 1 with one thread per index of its first
  // extent (16 threads for 16 slots of a GiB-sized cache: minutes on a GPU)
  Kokkos::View<typename V::value_type*, typename V::memory_space,
               Kokkos::MemoryTraits<Kokkos::Unmanaged>>
      flat(v.data(), v.size());
  Kokkos::fill_random(flat, pool, -1.f, 1.f);
  Space().fence();
}

/// Puts every slot of a Rodimus / Rodimus+ state at position `ctx` with random contents.
template <class Space>
void fast_forward(rodimus::State<Space>& st, std::int64_t ctx, unsigned seed) {
  std::mt19937 rng(seed);
  for (int l = 0; l < st.num_layers(); ++l) {
    const auto& L = st.layer(l);
    fill_random(L.conv, rng);
    fill_random(L.gla, rng);
    fill_random(L.k_cache, rng);
    fill_random(L.v_cache, rng);
  }
  for (int b = 0; b < st.slots(); ++b) st.advance(b, ctx - st.position(b));
}

/// Puts every slot of a Transformer state at position `ctx` (the caches must hold it) with
/// random keys and values.
template <class Space>
void fast_forward(rodimus::TransformerState<Space>& st, std::int64_t ctx, unsigned seed) {
  std::mt19937 rng(seed);
  for (int l = 0; l < st.num_layers(); ++l) {
    fill_random(st.layer(l).k(), rng);
    fill_random(st.layer(l).v(), rng);
  }
  for (int b = 0; b < st.slots(); ++b) st.advance(b, ctx - st.position(b));
}

}  // namespace rodimus::bench
