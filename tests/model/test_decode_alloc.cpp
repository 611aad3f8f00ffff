// A decode step allocates nothing, on the host heap or through Kokkos, once the workspace has
// seen a step of that batch size. (Its own binary: it replaces the global operator new.)
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <new>

#include "golden_fixture.hpp"
#include "rodimus/model/transformer.hpp"

namespace {
std::atomic<long> g_news{0};
std::atomic<long> g_kokkos_allocs{0};
void count_kokkos_alloc(Kokkos_Profiling_SpaceHandle, const char*, const void*, std::uint64_t) {
  ++g_kokkos_allocs;
}
}  // namespace

// Every unaligned form is replaced, so that no allocation pairs a sanitizer's new with our free.
void* operator new(std::size_t n) {
  ++g_news;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  ++g_news;
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

using namespace rodimus;
using Host = Kokkos::DefaultHostExecutionSpace;

TEST_CASE("decode steps allocate no memory after the first", "[model][decode][alloc]") {
  Kokkos::Tools::Experimental::set_allocate_data_callback(count_kokkos_alloc);
  for (const char* name : {"tiny_rodimus", "tiny_rodimus_plus"}) {
    const auto model = Model<Host, float>::load(test::golden_dir(name));
    auto state = model.make_state(4);
    Workspace<Host> ws;
    const std::vector<std::int32_t> next = {3, 1, 4, 1};
    // Reaching the same workspace high-water mark first: one prefill-sized call is not needed,
    // a decode step of the same batch size is.
    model.decode(state, ws, next);
    // Sanity: the counters see allocations at all.
    const long kokkos_before = g_kokkos_allocs.load();
    { auto probe = model.make_state(1); }
    const bool kokkos_counter_works = g_kokkos_allocs.load() > kokkos_before;
    const long news0 = g_news.load(), kokkos0 = g_kokkos_allocs.load();
    for (int step = 0; step < 50; ++step) model.decode(state, ws, next);
    const long news = g_news.load() - news0, kokkos = g_kokkos_allocs.load() - kokkos0;
    INFO(name << ": operator new calls " << news << ", Kokkos allocations " << kokkos);
    CHECK(news == 0);
    CHECK(kokkos_counter_works);
    CHECK(kokkos == 0);
    CHECK(state.position(0) == 51);
  }
  Kokkos::Tools::Experimental::set_allocate_data_callback(nullptr);
}

TEST_CASE("Transformer decode steps allocate nothing while the KV cache has room",
          "[model][decode][alloc][transformer]") {
  Kokkos::Tools::Experimental::set_allocate_data_callback(count_kokkos_alloc);
  TransformerConfig cfg;
  cfg.d_model = 32;
  cfg.n_layer = 2;
  cfg.heads = 4;
  cfg.kv_heads = 2;
  cfg.head_dim = 8;
  cfg.ffn_dim = 40;
  cfg.vocab = 50;
  const auto model = TransformerModel<Host, float>::random(cfg, 5);
  auto state = model.make_state(4, 64);
  TransformerWorkspace<Host> ws;
  const std::vector<std::int32_t> next = {3, 1, 4, 1};
  model.decode(state, ws, next);
  const long news0 = g_news.load(), kokkos0 = g_kokkos_allocs.load();
  for (int step = 0; step < 50; ++step) model.decode(state, ws, next);
  long news = g_news.load() - news0, kokkos = g_kokkos_allocs.load() - kokkos0;
  INFO("operator new calls " << news << ", Kokkos allocations " << kokkos);
  CHECK(news == 0);
  CHECK(kokkos == 0);
  CHECK(state.capacity() == 64);
  // past the capacity the caches grow (by doubling), then decode is allocation-free again
  for (int step = 0; step < 20; ++step) model.decode(state, ws, next);
  CHECK(state.capacity() == 128);
  CHECK(g_kokkos_allocs.load() - kokkos0 > 0);
  const long kokkos1 = g_kokkos_allocs.load(), news1 = g_news.load();
  for (int step = 0; step < 10; ++step) model.decode(state, ws, next);
  CHECK(g_news.load() == news1);
  CHECK(g_kokkos_allocs.load() == kokkos1);
  CHECK(state.position(0) == 81);
  Kokkos::Tools::Experimental::set_allocate_data_callback(nullptr);
}
