#!/usr/bin/env bash
# Builds the libFuzzer targets under ASan + UBSan and runs each for a bounded time on its seed corpus.
# usage: tests/fuzz/run_fuzz.sh [seconds per fuzzer, default 60] [build dir, default build-fuzz]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
secs="${1:-60}"
out="${2:-$root/build-fuzz}"
cxx="${CXX_FUZZ:-clang++}"
kokkos_inc="${KOKKOS_INCLUDE_DIR:-/usr/include/trilinos}"
mkdir -p "$out"
for target in safetensors config; do
  "$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Wno-deprecated-anon-enum-enum-conversion -I"$root/include" -I"$kokkos_inc" \
    "$here/fuzz_$target.cpp" -o "$out/fuzz_$target"
done
for target in safetensors config; do
  work="$out/corpus_$target"   # new inputs go here, never into the committed seeds
  mkdir -p "$work" "$out/artifacts_$target"
  echo "== fuzz_$target: ${secs}s"
  "$out/fuzz_$target" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=131072 -print_final_stats=1 \
    -dict="$here/$target.dict" -artifact_prefix="$out/artifacts_$target/" "$work" "$here/corpus/$target"
done
