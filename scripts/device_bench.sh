#!/usr/bin/env bash
# On a CUDA GPU machine (H100/H200, nvcc, PyTorch, Triton; no network), from the repo root:
# builds the CUDA chunk-scan test and benchmark with nvcc, runs the test, the benchmark, and
# flash-linear-attention's chunk_gla at the same shapes (scripts/device_scan_peer.py, fla
# source under $FLA_ROOT, default .deps/fla), compute-sanitizer memcheck and racecheck on the
# test's small cases, then prints the combined table LAST.
#
# Environment: RODIMUS_CUDA_ARCH (default sm_90), FLA_ROOT, RODIMUS_TEST_SEED,
# RODIMUS_BENCH_REPS; OUT (a folder for the logs, default build-cuda-device/).
# Exit status: non-zero when the build or the test fails.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
exec </dev/null

arch=${RODIMUS_CUDA_ARCH:-sm_90}
build=build-cuda-device
logs=${OUT:-$build}
mkdir -p "$build" "$logs"
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
say() { echo "device_bench.sh: $*"; }

say "$(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -n1)"
say "$("$nvcc" --version | tail -n1)"
start=$SECONDS
flags=(-std=c++20 -O3 -arch="$arch" -Iinclude -Xcompiler=-Wall,-Wextra -Xptxas=-v)
"$nvcc" "${flags[@]}" tests/cuda/test_gla_chunk_scan.cu -o "$build/test_gla_chunk_scan" \
  >"$logs/build_test.log" 2>&1 &
pid_test=$!
"$nvcc" "${flags[@]}" bench/cuda/bench_gla_chunk_scan.cu -o "$build/bench_gla_chunk_scan" \
  >"$logs/build_bench.log" 2>&1 &
pid_bench=$!
build_ok=1
wait "$pid_test" || { build_ok=0; say "test build failed"; tail -n 40 "$logs/build_test.log"; }
wait "$pid_bench" || { build_ok=0; say "bench build failed"; tail -n 40 "$logs/build_bench.log"; }
((build_ok)) || exit 2
say "built in $((SECONDS - start)) s; registers of the scan kernels (n, C, TE, Tin, Tout):"
grep -A2 'gla_chunk_scan_kernelILi64ELi64E' "$logs/build_bench.log" | grep -o 'Used [0-9]* registers.*' | sort -u | sed 's/^/  /'

test_rc=0
timeout 120 "$build/test_gla_chunk_scan" 2>&1 | tee "$logs/test.log" || test_rc=1
say "test: $([[ $test_rc == 0 ]] && echo passed || echo FAILED)"

timeout 120 "$build/bench_gla_chunk_scan" 2>&1 | tee "$logs/bench.log" || say "bench FAILED"

export FLA_ROOT=${FLA_ROOT:-$root/.deps/fla}
PYTHONUNBUFFERED=1 timeout 100 python3 scripts/device_scan_peer.py 2>&1 | tee "$logs/peer.log" ||
  say "fla peer FAILED (see $logs/peer.log)"

# compute-sanitizer (memcheck, racecheck) on the test's three small cases, when present.
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
sanitize_status="compute-sanitizer: not found"
if [[ -x $sanitizer ]]; then
  sanitize_status="compute-sanitizer:"
  for tool in memcheck racecheck; do
    RODIMUS_TEST_QUICK=1 timeout 45 "$sanitizer" --tool "$tool" --error-exitcode 3 \
      "$build/test_gla_chunk_scan" >"$logs/sanitize_$tool.log" 2>&1
    rc=$?
    if ((rc == 0)); then
      sanitize_status+=" $tool clean"
    else
      sanitize_status+=" $tool FAILED (rc $rc)"
      tail -n 30 "$logs/sanitize_$tool.log"
    fi
  done
fi
say "$sanitize_status"

# Combined table: rodimus (bf16 out, like fla; and fp32 out) vs fla chunk_gla.
python3 - "$logs/bench.log" "$logs/peer.log" "$test_rc" "$sanitize_status" <<'PY'
import sys
rows = {}
for path in sys.argv[1:3]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        if line.startswith("CSV,"):
            f = line.split(",")
            who, b, t, out, ms = f[1], int(f[2]), int(f[3]), f[6], float(f[7])
            r = rows.setdefault((b, t), {})
            if who == "rodimus" and out == "bf16":  # best chunk / column tile per precision
                r["floor"] = float(f[8])
                key = "fast" if f[9].endswith("f") else "split"
                if ms < r.get((who, key), float("inf")):
                    r[(who, key)], r["tile_" + key] = ms, f[9]
            else:
                r[(who, out)] = ms
print()
print("combined: GLA chunk scan, n=64, E=4096, bf16 in; ms = median per call; "
      f"test {'passed' if sys.argv[3] == '0' else 'FAILED'}; {sys.argv[4]}")
print("rodimus: bf16 output, best chunk/column tile (split = fp32-accurate default; "
      "fast = ScanPrecision::Bf16); f32-out: chunk 64, split")
print(f"{'B':>3} {'T':>6} {'split ms':>9} {'C/tile':>8} {'fast ms':>8} {'C/tile':>8} "
      f"{'f32-out ms':>10} {'fla ms':>8} {'fla/split':>9} {'fla/fast':>8} {'floor ms':>8}")
fmt = lambda x: f"{x:.3f}" if x is not None else "n/a"
ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "n/a"
for (b, t) in sorted(rows):
    r = rows[(b, t)]
    split, fast = r.get(("rodimus", "split")), r.get(("rodimus", "fast"))
    f32, fla = r.get(("rodimus", "f32")), r.get(("fla", "bf16"))
    print(f"{b:3d} {t:6d} {fmt(split):>9} {r.get('tile_split', '-'):>8} {fmt(fast):>8} "
          f"{r.get('tile_fast', '-'):>8} {fmt(f32):>10} {fmt(fla):>8} {ratio(fla, split):>9} "
          f"{ratio(fla, fast):>8} {fmt(r.get('floor')):>8}")
PY
say "total $((SECONDS - start)) s"
exit "$test_rc"
