#!/usr/bin/env bash
# The demo command: builds the rodimus CLI against the OpenMP Kokkos and runs it on a tiny model.
#
# Runs `rodimus info`, `rodimus generate` and `rodimus logits` on tests/data/golden/tiny_rodimus_plus,
# a random-weight Rodimus+ checkpoint kept in the repository (see README.md for the output).
# Environment: RODIMUS_BUILD_DIR (default: build), RODIMUS_JOBS, RODIMUS_CACHE (see deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
exec </dev/null

jobs=${RODIMUS_JOBS:-$(nproc)}
dir=${RODIMUS_BUILD_DIR:-build}
model=tests/data/golden/tiny_rodimus_plus

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
run generate --model "$model" --ids 5,17,3 -n 20
run logits --model "$model" --ids 5,17,3
