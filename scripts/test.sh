#!/usr/bin/env bash
# The test command: every test of rodimus, from a fresh Debian bookworm machine.
#
# Stages, in order (each prints one line; logs go under the build folders):
#   deps  scripts/deps.sh: apt packages, the OpenMP Kokkos in the cache
#   main  Release build (-O2; the benchmarks only compiled, at -O0) against the OpenMP Kokkos in
#         build/ (or $RODIMUS_BUILD_DIR), then ctest
#   asan  the same tests under ASan + UBSan (-O0), against Debian's Serial Kokkos 3.4, in
#         build-asan/ (the examples no test runs are not built there; train_hybrid's test is
#         Release only)
#   fuzz  libFuzzer targets (clang) in build-fuzz/, each run for $RODIMUS_FUZZ_SECONDS on a copy
#         of its seed corpus
#   tidy  clang-tidy (.clang-tidy) on one TU holding every public header, plus tests/tidy/*.cpp
#         and the fuzzers
#   cuda  when nvcc is found: compiles the raw CUDA kernels' tests (tests/cuda; not their
#         benchmarks, bench/cuda, which compile the same kernels: 77 s of CPU saved) for sm_90 in
#         build-cuda/, warnings as errors, and runs the kernels' host emulations against the
#         fp64 references (no GPU is needed, none is used); without nvcc it says so and passes
# A failed stage does not stop the later ones, except a failure of deps or of the main build.
# The last line reads `test.sh: N passed, N failed` (N counts stages); the exit status is 0 only
# when no stage failed.
#
# Environment:
#   RODIMUS_BUILD_DIR     main build folder (default: build)
#   RODIMUS_ASAN_DIR      sanitizer build folder (default: build-asan)
#   RODIMUS_FUZZ_DIR      clang build folder for the fuzzers and clang-tidy (default: build-fuzz)
#   RODIMUS_FUZZ_SECONDS  seconds per fuzzer (default: 30)
#   RODIMUS_CUDA_DIR      CUDA kernels build folder (default: build-cuda)
#   RODIMUS_STAGES        stages to run (default: "main asan fuzz tidy cuda"; deps always runs)
#   RODIMUS_JOBS          parallel jobs (default: nproc)
#   RODIMUS_CACHE         cache folder for the OpenMP Kokkos (see scripts/deps.sh)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
exec </dev/null

jobs=${RODIMUS_JOBS:-$(nproc)}
stages=${RODIMUS_STAGES:-main asan fuzz tidy cuda}
main_dir=${RODIMUS_BUILD_DIR:-build}
asan_dir=${RODIMUS_ASAN_DIR:-build-asan}
fuzz_dir=${RODIMUS_FUZZ_DIR:-build-fuzz}
cuda_dir=${RODIMUS_CUDA_DIR:-build-cuda}
fuzz_seconds=${RODIMUS_FUZZ_SECONDS:-30}

passed=0
failed=0
failed_stages=()
failure_digests=() # files holding a short account of each failure, printed again at the end

say() { echo "test.sh: $*"; }

finish() {
  local digest
  if ((failed)); then
    # Repeated last, where a truncated log still shows it: which assertions failed, and where.
    for digest in "${failure_digests[@]}"; do
      [[ -s $digest ]] && { echo "---- $digest ----"; head -n 60 "$digest"; }
    done
    say "failed stages: ${failed_stages[*]}"
  fi
  echo "test.sh: $passed passed, $failed failed"
  ((failed == 0))
  exit $?
}

# Shows where a log went wrong: the first error lines with some context, then its tail.
show_log() {
  local log=$1
  if (($(wc -l <"$log") <= 60)); then
    echo "---- $log ----"
    cat "$log"
    echo "----"
    return
  fi
  echo "---- $log (first errors) ----"
  grep -n -m 8 -A 6 -E '(error|Error|ERROR)[: ]' "$log" | head -n 80
  echo "---- $log (tail) ----"
  tail -n 40 "$log"
  echo "----"
}

# run_logged LOG CMD...: runs CMD quietly into LOG; shows the log when CMD fails.
run_logged() {
  local log=$1
  shift
  mkdir -p "$(dirname "$log")"
  if ! "$@" >"$log" 2>&1; then
    say "failed: $* (log: $log)"
    show_log "$log"
    return 1
  fi
}

# configure DIR ARGS...: cmake configure into DIR, with compile_commands.json for clang-tidy.
configure() {
  local dir=$1
  shift
  run_logged "$dir/configure.log" cmake -S . -B "$dir" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "$@"
}

build() {
  local dir=$1
  run_logged "$dir/build.log" cmake --build "$dir" -j"$jobs"
}

# run_ctest DIR [CTEST ARGS...]: the tests of DIR; the summary on success, the failing tests'
# output otherwise.
run_ctest() {
  local dir=$1 log=$1/ctest.log
  shift
  if (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 1500 "$@") >"$log" 2>&1; then
    grep -E 'tests passed|No tests were found' "$log" | sed 's/^/  /'
  else
    say "ctest failed in $dir (log: $log)"
    tail -n 150 "$log"
    # Catch2's failure blocks (the check, its expansion and its INFO lines, seeds included).
    grep -n -B 4 -A 14 -E 'FAILED:|REQUIRE.*failed|due to unexpected exception' "$log" \
      >"$dir/failures.txt" || true
    failure_digests+=("$dir/failures.txt")
    return 1
  fi
}

# Debian's Kokkos (Serial) for the sanitizer and clang builds, located through its package.
debian_kokkos_dir() {
  local config
  config=$(dpkg -L libtrilinos-kokkos-dev 2>/dev/null | grep -m1 '/cmake/Kokkos/KokkosConfig.cmake$')
  dirname "${config:-/usr/lib/x86_64-linux-gnu/cmake/Kokkos/KokkosConfig.cmake}"
}

# --- stages -------------------------------------------------------------------------------------

stage_deps() {
  local out
  out=$(scripts/deps.sh) || return 1
  kokkos_prefix=$(tail -n1 <<<"$out")
  say "  OpenMP Kokkos: $kokkos_prefix"
}

# Returns 2 when the build fails: nothing later is worth running then.
stage_main() {
  # -O2 instead of Release's -O3: a quarter less compile time (27 s against 37 s for a model
  # test TU), the same code paths; the README's commands build -O3. The benchmarks are only
  # compiled here (never run), at -O0 (RODIMUS_BENCH_COMPILE_OPTIONS).
  configure "$main_dir" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
    -DCMAKE_CXX_COMPILER=g++ \
    -DKokkos_ROOT="$kokkos_prefix" \
    -DKokkos_DIR="$kokkos_prefix/lib/cmake/Kokkos" \
    -DRODIMUS_BUILD_TESTS=ON -DRODIMUS_BUILD_EXAMPLES=ON -DRODIMUS_BUILD_BENCH=ON \
    -DRODIMUS_BENCH_COMPILE_OPTIONS=-O0 \
    -DRODIMUS_SANITIZE=OFF -DRODIMUS_BUILD_FUZZERS=OFF || return 2
  build "$main_dir" || return 2
  run_ctest "$main_dir"
}

# ASAN_OPTIONS with leak detection where LeakSanitizer works (it does not under ptrace).
asan_options() {
  local probe=$asan_dir/lsan_probe
  mkdir -p "$asan_dir"
  echo 'int main() { return 0; }' >"$probe.cpp"
  if g++ -fsanitize=address "$probe.cpp" -o "$probe" 2>/dev/null &&
     ASAN_OPTIONS=detect_leaks=1 "$probe" >/dev/null 2>&1; then
    echo "detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  else
    echo "detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  fi
}

# -O0 compiles four times as fast as -O1 under the sanitizers (31 s against 126 s for a model
# test TU, measured before the extern instances; 21 s at -O0 with them), and the tests run in seconds either way; -g1 (line tables: stack traces keep their
# file and line) instead of full debug information.
stage_asan() {
  configure "$asan_dir" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1 -O0" \
    -DCMAKE_CXX_COMPILER=g++ \
    -DKokkos_DIR="$(debian_kokkos_dir)" \
    -DRODIMUS_BUILD_TESTS=ON -DRODIMUS_BUILD_EXAMPLES=ON -DRODIMUS_BUILD_BENCH=OFF \
    -DRODIMUS_SANITIZE=ON -DRODIMUS_BUILD_FUZZERS=OFF || return 1
  build "$asan_dir" || return 1
  local opts
  opts=$(asan_options)
  say "  ASAN_OPTIONS=$opts"
  (
    export ASAN_OPTIONS=$opts
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
    # Not the consumer builds: they test the packaging (main covers it), not memory safety.
    run_ctest "$asan_dir" -LE consumer
  )
}

configure_clang() {
  configure "$fuzz_dir" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
    -DCMAKE_CXX_COMPILER=clang++ \
    -DKokkos_DIR="$(debian_kokkos_dir)" \
    -DRODIMUS_BUILD_TESTS=OFF -DRODIMUS_BUILD_EXAMPLES=OFF -DRODIMUS_BUILD_BENCH=OFF \
    -DRODIMUS_SANITIZE=OFF -DRODIMUS_BUILD_FUZZERS=ON
}

# Runs one fuzzer for fuzz_seconds on a fresh copy of its seed corpus; crashes land in artifacts/.
run_fuzzer() {
  local bin=$1 name short seeds work artifacts log
  name=$(basename "$bin")
  short=${name#fuzz_}
  seeds=tests/fuzz/corpus/$short
  work=$fuzz_dir/fuzz-work/$short
  artifacts=$fuzz_dir/fuzz-artifacts/$short
  log=$fuzz_dir/fuzz-$short.log
  rm -rf "$work"
  mkdir -p "$work" "$artifacts"
  if [[ -d $seeds ]]; then cp -R "$seeds/." "$work/"; fi
  "$bin" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -max_len=131072 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" >"$log" 2>&1
}

stage_fuzz() {
  configure_clang || return 1
  build "$fuzz_dir" || return 1
  local fuzzers=("$fuzz_dir"/fuzz/fuzz_*)
  if [[ ! -x ${fuzzers[0]} ]]; then
    say "no fuzz targets (tests/fuzz/fuzz_*.cpp) found"
    return 1
  fi
  local opts status=0 i pids=() names=()
  opts=$(asan_options)
  export ASAN_OPTIONS=$opts
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  say "  ${#fuzzers[@]} fuzzers, ${fuzz_seconds} s each, $jobs at a time"
  # At most $jobs fuzzers at once; each result is collected in launch order.
  for ((i = 0; i < ${#fuzzers[@]}; i++)); do
    if ((i >= jobs)); then
      wait "${pids[i - jobs]}" || { status=1; say "  ${names[i - jobs]}: FAILED"; }
    fi
    run_fuzzer "${fuzzers[i]}" &
    pids+=($!)
    names+=("$(basename "${fuzzers[i]}")")
  done
  for ((i = (${#fuzzers[@]} > jobs ? ${#fuzzers[@]} - jobs : 0); i < ${#fuzzers[@]}; i++)); do
    wait "${pids[i]}" || { status=1; say "  ${names[i]}: FAILED"; }
  done
  local name short log runs
  for name in "${names[@]}"; do
    short=${name#fuzz_}
    log=$fuzz_dir/fuzz-$short.log
    runs=$(grep -m1 -o 'number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$')
    if grep -q -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: ' "$log"; then
      status=1
      say "  $name: crash (log: $log, artifacts: $fuzz_dir/fuzz-artifacts/$short/)"
      grep -m 30 -A 25 -E 'ERROR: |runtime error:' "$log" | head -n 60
    else
      say "  $name: ${runs:-?} runs, no crash"
    fi
  done
  return "$status"
}

stage_tidy() {
  configure_clang || return 1  # refreshes the generated TU when headers came or went
  local files=("$fuzz_dir/tests/tidy/rodimus_all_headers.cpp") f log=$fuzz_dir/tidy.log
  for f in tests/tidy/*.cpp tests/fuzz/fuzz_*.cpp; do
    if [[ -f $f ]]; then files+=("$f"); fi
  done
  say "  clang-tidy on ${#files[@]} translation units"
  local status=0
  printf '%s\0' "${files[@]}" |
    xargs -0 -n1 -P"$jobs" clang-tidy --quiet --config-file=.clang-tidy -p "$fuzz_dir" \
      >"$log" 2>&1 || status=1
  local warnings errors
  warnings=$(grep -c -E ': warning: ' "$log")
  errors=$(grep -c -E ': error: ' "$log")
  say "  $warnings warnings, $errors errors (log: $log)"
  grep -E ': (warning|error): ' "$log" | sort -u | head -n 40 | sed 's/^/  /'
  return "$status"
}

# nvcc on the PATH, else CUDA's default prefix; empty when there is none.
find_nvcc() {
  local nvcc
  nvcc=$(command -v nvcc 2>/dev/null)
  if [[ -z $nvcc && -x /usr/local/cuda/bin/nvcc ]]; then nvcc=/usr/local/cuda/bin/nvcc; fi
  echo "$nvcc"
}

# Compile only: the kernels run on a GPU machine (scripts/device_bench.sh). The host parts of
# the project stay off; Debian's Serial Kokkos satisfies the top-level find_package.
stage_cuda() {
  local nvcc
  nvcc=$(find_nvcc)
  if [[ -z $nvcc ]]; then
    say "  nvcc not found: the CUDA kernels are not compiled (skipped)"
    return 0
  fi
  say "  $("$nvcc" --version | tail -n1) ($nvcc), sm_90"
  configure "$cuda_dir" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER=g++ \
    -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_HOST_COMPILER=g++ \
    -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DKokkos_DIR="$(debian_kokkos_dir)" \
    -DRODIMUS_BUILD_TESTS=OFF -DRODIMUS_BUILD_EXAMPLES=OFF -DRODIMUS_BUILD_BENCH=OFF \
    -DRODIMUS_INSTALL=OFF -DRODIMUS_SANITIZE=OFF -DRODIMUS_BUILD_FUZZERS=OFF \
    -DRODIMUS_WARNINGS_AS_ERRORS=ON -DRODIMUS_BUILD_CUDA_KERNELS=ON || return 1
  build "$cuda_dir" || return 1
  say "  compiled: $(cd "$cuda_dir" && ls tests/cuda/test_* 2>/dev/null | xargs)"
  # The kernels' own source run on the host against the fp64 references (no GPU needed).
  local emu log status=0
  for emu in "$cuda_dir"/tests/cuda/emulate_*; do
    [[ -f $emu && -x $emu ]] || continue
    log=$cuda_dir/$(basename "$emu").log
    if "$emu" >"$log" 2>&1; then
      say "  $(tail -n1 "$log")"
    else
      say "  host emulation failed: $(basename "$emu") (log: $log)"
      grep -v '^ok' "$log" | head -n 40
      status=1
    fi
  done
  return "$status"
}

# --- driver -------------------------------------------------------------------------------------

run_stage() {
  local name=$1 start=$SECONDS rc
  "stage_$name"
  rc=$?
  if ((rc == 0)); then
    passed=$((passed + 1))
    say "[$name] passed ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failed_stages+=("$name")
    say "[$name] FAILED ($((SECONDS - start)) s)"
  fi
  return $rc
}

for stage in $stages; do
  case $stage in
    main | asan | fuzz | tidy | cuda) ;;
    *) say "unknown stage '$stage' in RODIMUS_STAGES (main asan fuzz tidy cuda)"; exit 2 ;;
  esac
done

run_stage deps || finish
for stage in $stages; do
  run_stage "$stage"
  rc=$?
  if [[ $stage == main && $rc == 2 ]]; then
    say "the main build failed: skipping the remaining stages"
    finish
  fi
done
finish
