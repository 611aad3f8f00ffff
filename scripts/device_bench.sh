#!/usr/bin/env bash
# On a CUDA GPU machine (H100/H200, nvcc, PyTorch, Triton; no network), from the repo root.
# Stages (DEVICE_STAGES, default "scan model"; also "attn"), each printing a table; the tables
# come LAST:
#   scan   builds the raw CUDA chunk-scan test and benchmark with nvcc (or takes them from
#          $RODIMUS_CUDA_BIN), runs the test, the benchmark, and flash-linear-attention's
#          chunk_gla at the same shapes (scripts/device_scan_peer.py, fla source under $FLA_ROOT,
#          default .deps/fla), compute-sanitizer memcheck and racecheck on the test's small cases.
#   model  the library on Kokkos::Cuda: test_ops (every op on Cuda and Serial against the fp64
#          reference) and test_model (golden vectors, bf16 vs fp32), then bench_model at the
#          Rodimus+-1.6B shape (random bf16 weights): prefill T = 2k, 8k and decode B = 1, 16,
#          128 beside the rooflines the same binary measures (cuBLAS bf16 GEMM, device triad),
#          split and bf16 tensor-core operands; bench_linear (decode-sized projections alone).
#          The binaries come from $RODIMUS_CUDA_BIN (built elsewhere against a CUDA Kokkos), or
#          are built here with cmake against the CUDA Kokkos at $KOKKOS_CUDA_ROOT.
#   attn   the flash attention kernel's test and benchmark (tests/cuda/test_flash_attention.cu,
#          bench/cuda/bench_flash_attention.cu: from $RODIMUS_CUDA_BIN or built with nvcc),
#          bench_window_attention (the op, from $RODIMUS_CUDA_BIN, when there), at 16 heads of
#          128, window 2048 back, T = 4k, 16k, beside PyTorch SDPA (scripts/device_attn_peer.py).
#
# Environment: RODIMUS_CUDA_ARCH (default sm_90), FLA_ROOT, RODIMUS_TEST_SEED,
# RODIMUS_BENCH_REPS, PEER_TIMEOUT (s, default 200); OUT (a folder for the logs, default
# build-cuda-device/).
# Exit status: non-zero when a build or a test fails.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
exec </dev/null

arch=${RODIMUS_CUDA_ARCH:-sm_90}
build=build-cuda-device
logs=${OUT:-$build}
stages=${DEVICE_STAGES:-scan model}
bin=${RODIMUS_CUDA_BIN:-}
mkdir -p "$build" "$logs"
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
say() { echo "device_bench.sh: $*"; }
has_stage() { [[ " $stages " == *" $1 "* ]]; }
rc_all=0
tables=()  # files printed at the end

say "$(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -n1)"
say "$("$nvcc" --version | tail -n1)"
start=$SECONDS

stage_scan() {
  local exe_test=$build/test_gla_chunk_scan exe_bench=$build/bench_gla_chunk_scan
  if [[ -n $bin && -x $bin/test_gla_chunk_scan && -x $bin/bench_gla_chunk_scan ]]; then
    exe_test=$bin/test_gla_chunk_scan exe_bench=$bin/bench_gla_chunk_scan
    say "scan: prebuilt binaries from $bin"
  else
    local flags=(-std=c++20 -O3 -arch="$arch" -Iinclude -Xcompiler=-Wall,-Wextra -Xptxas=-v)
    "$nvcc" "${flags[@]}" tests/cuda/test_gla_chunk_scan.cu -o "$exe_test" \
      >"$logs/build_test.log" 2>&1 &
    local pid_test=$!
    "$nvcc" "${flags[@]}" bench/cuda/bench_gla_chunk_scan.cu -o "$exe_bench" \
      >"$logs/build_bench.log" 2>&1 &
    local pid_bench=$! build_ok=1
    wait "$pid_test" || { build_ok=0; say "test build failed"; tail -n 40 "$logs/build_test.log"; }
    wait "$pid_bench" || { build_ok=0; say "bench build failed"; tail -n 40 "$logs/build_bench.log"; }
    ((build_ok)) || { rc_all=2; return; }
    say "built in $((SECONDS - start)) s; registers of the scan kernels (n, C, TE, Tin, Tout):"
    grep -A2 'gla_chunk_scan_kernelILi64ELi64E' "$logs/build_bench.log" | grep -o 'Used [0-9]* registers.*' | sort -u | sed 's/^/  /'
  fi

  local test_rc=0
  timeout 120 "$exe_test" 2>&1 | tee "$logs/test.log" || test_rc=1
  say "scan test: $([[ $test_rc == 0 ]] && echo passed || echo FAILED)"
  ((test_rc == 0)) || rc_all=1

  timeout 120 "$exe_bench" 2>&1 | tee "$logs/bench.log" || say "bench FAILED"

  export FLA_ROOT=${FLA_ROOT:-$root/.deps/fla}
  PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-200}" python3 scripts/device_scan_peer.py 2>&1 |
    tee "$logs/peer.log" || say "fla peer FAILED or cut short (see $logs/peer.log)"

  # compute-sanitizer (memcheck, racecheck) on the test's three small cases, when present.
  local sanitizer
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  local sanitize_status="compute-sanitizer: not found"
  if [[ -x $sanitizer ]]; then
    sanitize_status="compute-sanitizer:"
    for tool in memcheck racecheck; do
      RODIMUS_TEST_QUICK=1 timeout 45 "$sanitizer" --tool "$tool" --error-exitcode 3 \
        "$exe_test" >"$logs/sanitize_$tool.log" 2>&1
      local rc=$?
      if ((rc == 0)); then
        sanitize_status+=" $tool clean"
      else
        sanitize_status+=" $tool FAILED (rc $rc)"
        tail -n 30 "$logs/sanitize_$tool.log"
      fi
    done
  fi
  say "$sanitize_status"
  scan_table "$test_rc" "$sanitize_status" >"$logs/table_scan.txt"
  tables+=("$logs/table_scan.txt")
}

scan_table() {
# Combined table: rodimus (bf16 out, like fla; and fp32 out) vs fla chunk_gla.
python3 - "$logs/bench.log" "$logs/peer.log" "$1" "$2" <<'PY'
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
}

stage_model() {
  local dir=$bin
  if [[ -z $dir || ! -x $dir/test_ops ]]; then
    [[ -n ${KOKKOS_CUDA_ROOT:-} ]] || {
      say "model: no prebuilt binaries (RODIMUS_CUDA_BIN) and no KOKKOS_CUDA_ROOT to build them"
      rc_all=2
      return
    }
    local k=$KOKKOS_CUDA_ROOT
    cmake -S . -B build-cuda-kokkos -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_COMPILER="$k/bin/nvcc_wrapper" -DKokkos_ROOT="$k" \
      -DRODIMUS_BUILD_TESTS=ON -DRODIMUS_BUILD_BENCH=ON -DRODIMUS_BUILD_EXAMPLES=OFF \
      -DRODIMUS_USE_BLAS=OFF -DRODIMUS_INSTALL=OFF >"$logs/model_configure.log" 2>&1 &&
      cmake --build build-cuda-kokkos -j"$(nproc)" --target test_ops test_model bench_model bench_linear \
        >"$logs/model_build.log" 2>&1 || {
      say "model: build failed"
      tail -n 40 "$logs/model_build.log"
      rc_all=2
      return
    }
    mkdir -p "$build/bin"
    cp build-cuda-kokkos/tests/ops/test_ops build-cuda-kokkos/tests/model/test_model \
      build-cuda-kokkos/bench/bench_model build-cuda-kokkos/bench/bench_linear "$build/bin/"
    dir=$build/bin
  fi
  local t0=$SECONDS
  for t in test_ops test_model; do
    if timeout 150 "$dir/$t" --reporter compact >"$logs/$t.log" 2>&1; then
      say "model: $t passed ($(tail -n 1 "$logs/$t.log"))"
    else
      say "model: $t FAILED"
      grep -B 5 -A 15 "FAILED" "$logs/$t.log" | head -n 80
      tail -n 5 "$logs/$t.log"
      rc_all=1
    fi
  done
  say "model: tests took $((SECONDS - t0)) s"
  RODIMUS_BENCH_SHAPES=plus-1.6b RODIMUS_BENCH_DIR=${RODIMUS_BENCH_DIR:-/tmp} \
    timeout ${MODEL_TIMEOUT:-400} "$dir/bench_model" \
    --benchmark_filter='machine_limits|prefill(_bf16ops)?/plus-1.6b/bf16/T:(2048|8192)|decode(_nograph|_bf16ops)?/plus-1.6b/bf16/ctx:1024/' \
    --benchmark_out="$logs/bench_model.json" --benchmark_out_format=json 2>&1 |
    tee "$logs/bench_model.log" | grep -v '^\*\*\*' || say "model: bench_model FAILED"
  python3 - "$logs/bench_model.json" >"$logs/table_model.txt" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print(f"model bench: no results ({e})")
    sys.exit(0)
b = {x["name"]: x for x in d["benchmarks"]}
lim = b.get("machine_limits", {})
print(f"Rodimus+-1.6B shape on Kokkos::Cuda, random bf16 weights ({d['context'].get('host_name', '')}); "
      f"measured here: device triad {lim.get('triad_gbs', 0):.0f} GB/s, cuBLAS bf16 GEMM "
      f"{lim.get('gemm_bf16_gflops', 0) / 1e3:.0f} TFLOP/s")
print(f"{'benchmark':<45} {'ms':>10} {'tokens/s':>12} {'roofline':>9}")
for name, x in b.items():
    if name == "machine_limits":
        continue
    ms = x["real_time"] if x.get("time_unit") == "ms" else x["real_time"] / 1e6
    print(f"{name:<45} {ms:10.2f} {x.get('tokens_per_s', 0):12.0f} {x.get('roofline_fraction', 0):9.3f}")
PY
  tables+=("$logs/table_model.txt")
  # decode-sized linear layers alone (one token; one launch per projection or per shared input)
  if [[ -x $dir/bench_linear ]]; then
    timeout 200 "$dir/bench_linear" --benchmark_filter='bf16/N:1/' \
      --benchmark_out="$logs/bench_linear.json" --benchmark_out_format=json >"$logs/bench_linear.log" 2>&1 ||
      say "model: bench_linear FAILED"
    python3 - "$logs/bench_linear.json" >"$logs/table_linear.txt" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print(f"linear bench: no results ({e})")
    sys.exit(0)
print("decode-sized linear layers, 1 token, bf16 weights (roofline: weight bytes / device triad)")
print(f"{'benchmark':<62} {'us/call':>9} {'roofline':>9}")
for x in d["benchmarks"]:
    print(f"{x['name'].split('/min_time')[0]:<62} {x['s_per_call'] * 1e6:9.2f} {x['roofline_fraction']:9.3f}")
PY
    tables+=("$logs/table_linear.txt")
  fi
}

stage_attn() {
  # the raw flash kernel (bench_flash_attention: prebuilt, or built here with nvcc) and its test
  local exe_fb=${bin:+$bin/bench_flash_attention} exe_ft=${bin:+$bin/test_flash_attention}
  if [[ -z $exe_fb || ! -x $exe_fb ]]; then
    exe_fb=$build/bench_flash_attention exe_ft=$build/test_flash_attention
    local flags=(-std=c++20 -O3 -arch="$arch" -Iinclude -Xcompiler=-Wall,-Wextra)
    "$nvcc" "${flags[@]}" tests/cuda/test_flash_attention.cu -o "$exe_ft" >"$logs/build_attn_test.log" 2>&1 &
    local pid=$!
    "$nvcc" "${flags[@]}" bench/cuda/bench_flash_attention.cu -o "$exe_fb" >"$logs/build_attn_bench.log" 2>&1 ||
      { say "attn: bench build failed"; tail -n 30 "$logs/build_attn_bench.log"; rc_all=2; }
    wait "$pid" || { say "attn: test build failed"; tail -n 30 "$logs/build_attn_test.log"; rc_all=2; }
  fi
  if [[ -x $exe_ft ]]; then
    "$exe_ft" 2>&1 | tee "$logs/test_attn.log" | tail -n 12 || { say "attn: test FAILED"; rc_all=1; }
  fi
  [[ -x $exe_fb ]] && { timeout 200 "$exe_fb" 2>&1 | tee "$logs/bench_flash.log"; }
  # the library's op (fp32 in and out, gather included) when a CUDA-Kokkos build is at hand
  local exe=${bin:+$bin/bench_window_attention}
  if [[ -n $exe && -x $exe ]]; then
    timeout 200 "$exe" --benchmark_out="$logs/bench_attn.json" --benchmark_out_format=json 2>&1 |
      tee "$logs/bench_attn.log" | grep -v '^\*\*\*' || say "attn: bench_window_attention FAILED"
  fi
  PYTHONUNBUFFERED=1 timeout "${PEER_TIMEOUT:-200}" python3 scripts/device_attn_peer.py 2>&1 |
    tee "$logs/attn_peer.log" || say "attn: SDPA peer FAILED"
  python3 - "$logs/bench_attn.json" "$logs/attn_peer.log" "$logs/bench_flash.log" >"$logs/table_attn.txt" <<'PY'
import json, sys
rows = {}
try:
    for x in json.load(open(sys.argv[1]))["benchmarks"]:
        t = int(x["name"].split("T:")[1].split("/")[0])
        rows[("op-f32 (window_attention)", t)] = x["real_time"] if x.get("time_unit") == "ms" else x["real_time"] / 1e6
except (OSError, ValueError, KeyError, IndexError):
    pass
for f in sys.argv[2:]:
    try:
        for line in open(f):
            if line.startswith("CSV,sdpa,") or line.startswith("CSV,rodimus,"):
                _, who, name, t, ms = line.strip().split(",")
                rows[(("sdpa " if who == "sdpa" else "") + name, int(t))] = float(ms)
    except OSError:
        pass
print("windowed attention, 16 heads of 128, window 2048 back (rodimus: one shared key head;")
print("SDPA: bf16, the key head expanded; flash-causal has no window)")
print(f"{'T':>6} {'impl':<28} {'ms':>9} {'SDPA-flash / impl':>18}")
for t in sorted({t for _, t in rows}):
    base = rows.get(("sdpa flash-causal", t))
    for (name, tt), ms in sorted(rows.items(), key=lambda kv: kv[0][0]):
        if tt == t:
            print(f"{t:>6} {name:<28} {ms:9.3f} {(base / ms if base else 0):18.2f}")
PY
  tables+=("$logs/table_attn.txt")
}

has_stage scan && stage_scan
has_stage attn && stage_attn
has_stage model && stage_model

echo
for t in "${tables[@]}"; do cat "$t"; echo; done
say "total $((SECONDS - start)) s"
exit "$rc_all"
