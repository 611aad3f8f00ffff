#!/usr/bin/env bash
# The demo command: builds the rodimus CLI against the OpenMP Kokkos and runs it on the default
# model, models/tiny-coder: a Rodimus+ of 6.2 M parameters that rodimus itself trained on the
# Python standard library (scripts/train_tiny_coder.sh, docs/training.md).
#
# Runs `rodimus info`, `rodimus generate` (a Python prompt, sampled) and, where Debian's Python
# 3.11 standard library is installed, `rodimus eval` on its held-out files beside gzip -9
# (see README.md for the output).
# Environment: RODIMUS_BUILD_DIR (default: build), RODIMUS_JOBS, RODIMUS_CACHE (see deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
exec </dev/null

jobs=${RODIMUS_JOBS:-$(nproc)}
dir=${RODIMUS_BUILD_DIR:-build}
model=models/tiny-coder

kokkos_prefix=$(scripts/deps.sh | tail -n1)

# Same configuration as the main stage of scripts/test.sh, so that both share build/.
mkdir -p "$dir"
if ! cmake -S . -B "$dir" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_COMPILER=g++ \
      -DKokkos_ROOT="$kokkos_prefix" \
      -DKokkos_DIR="$kokkos_prefix/lib/cmake/Kokkos" \
      -DRODIMUS_BUILD_TESTS=ON -DRODIMUS_BUILD_EXAMPLES=ON -DRODIMUS_BUILD_BENCH=ON \
      -DRODIMUS_SANITIZE=OFF -DRODIMUS_BUILD_FUZZERS=OFF >"$dir/configure.log" 2>&1; then
  tail -n 40 "$dir/configure.log" >&2
  echo "demo.sh: configure failed (log: $dir/configure.log)" >&2
  exit 1
fi
echo "demo.sh: building the rodimus CLI in $dir/ (log: $dir/demo-build.log)" >&2
if ! cmake --build "$dir" --target rodimus_cli -j"$jobs" >"$dir/demo-build.log" 2>&1; then
  grep -m 8 -A 6 'error' "$dir/demo-build.log" >&2 || tail -n 40 "$dir/demo-build.log" >&2
  echo "demo.sh: building target rodimus_cli failed (log: $dir/demo-build.log)" >&2
  exit 1
fi

cli=$dir/examples/rodimus
export OMP_PROC_BIND=${OMP_PROC_BIND:-false}
run() {
  echo
  echo "\$ $cli $*"
  "$cli" "$@"
}
run info --model "$model"
run generate --model "$model" --prompt $'class Stack:\n    def __init__(self):' -n 80 \
  --temperature 0.6 --top-k 40 --seed 1
stdlib=/usr/lib/python3.11
if [[ -d $stdlib ]]; then
  # the files training held out (5 %), scored by the model and by gzip -9
  filter=(--ext .py --exclude-dir test --exclude-dir tests --exclude-dir idle_test
          --exclude-dir site-packages)  # the files scripts/train_tiny_coder.sh trained on
  run eval --model "$model" --data "$stdlib" "${filter[@]}"
  echo
  echo "\$ scripts/gzip_baseline.sh $stdlib ${filter[*]}"
  RODIMUS="$cli" scripts/gzip_baseline.sh "$stdlib" "${filter[@]}"
fi
