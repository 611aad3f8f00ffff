#!/usr/bin/env bash
# Re-runs every figure of docs/performance.md: builds the benchmarks (Release, OpenMP Kokkos,
# OpenBLAS), runs them with 1 and 2 threads, writes JSON under bench-results/ and redraws the
# plot. Run it on a quiet machine.
#
#   scripts/bench.sh                 the small shape (minutes)
#   RODIMUS_BENCH_SHAPES=small,plus-1.6b,rodimus-1.4b scripts/bench.sh   also the published shapes
#   BENCH_FILTER='decode/'          passed to bench_model as --benchmark_filter
#   BENCH_THREADS="1 2"             thread counts
#   BENCH_TAG=_published            results go to model<TAG>_t<N>.json; with a tag only bench_model
#                                   runs (the scan and baseline results are left as they are)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kokkos_prefix=$(scripts/deps.sh | tail -n1)
dir=${RODIMUS_BUILD_DIR:-build}
out=${BENCH_OUT:-bench-results}
tag=${BENCH_TAG:-}
mkdir -p "$out"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DKokkos_ROOT="$kokkos_prefix" \
  -DKokkos_DIR="$kokkos_prefix/lib/cmake/Kokkos" -DRODIMUS_BUILD_BENCH=ON >/dev/null
cmake --build "$dir" -j"$(nproc)" --target bench_model bench_baseline bench_gla_scan >/dev/null
# These machines pin OpenBLAS to its Haswell kernels and a small L2, which halves its speed:
# benchmarks (only) run with OpenBLAS's own detection.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OMP_PROC_BIND=false
for t in ${BENCH_THREADS:-1 2}; do
  OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$dir/bench/bench_model" \
    --benchmark_filter="${BENCH_FILTER:-.}" --benchmark_format=json \
    --benchmark_out="$out/model${tag}_t$t.json" --benchmark_out_format=json >/dev/null
  echo "bench.sh: $out/model${tag}_t$t.json"
  [[ -n $tag ]] && continue
  OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$dir/bench/bench_gla_scan" \
    --benchmark_format=json --benchmark_out="$out/gla_scan_t$t.json" >/dev/null
  echo "bench.sh: $out/gla_scan_t$t.json"
done
if [[ -z $tag ]]; then
t=$(echo ${BENCH_THREADS:-1 2} | awk '{print $NF}')
OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$dir/bench/bench_baseline" \
  --benchmark_filter="${BASELINE_FILTER:-.}" --benchmark_out="$out/baseline.json" \
  --benchmark_out_format=json >/dev/null
echo "bench.sh: $out/baseline.json"
python3 scripts/plot_performance.py "$out/baseline.json" docs/img/decode_vs_context.svg
fi
python3 scripts/perf_tables.py "$out" --update docs/performance.md
