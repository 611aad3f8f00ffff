#!/usr/bin/env python3
"""Times flash-linear-attention's chunk_gla (the peer of the CUDA chunk scan) on a GPU.

Shapes as bench/cuda/bench_gla_chunk_scan.cu: one head, n = 64 (K), E = 4096 (V),
T in {2048, 8192, 32768}, B in {1, 8}; q, k, v, g in bf16 (g = log decay, uniform in [-8, 0]),
an fp32 initial state and the final state returned, as rodimus's scan does. Median of
triton.testing.do_bench. Prints a table and one `CSV,fla,...` line per shape.

fla is not installed: fetch its source into a folder git ignores (default .deps/fla, holding
the package folder fla/) and point FLA_ROOT at it. Only fla.ops.gla is imported: fla/__init__
(layers, models, transformers) and fla/ops/__init__ (every op) are skipped.
"""
import importlib
import os
import re
import sys
import types


def import_chunk_gla(root):
    root = os.path.abspath(root)
    if not os.path.isdir(os.path.join(root, "fla", "ops", "gla")):
        raise SystemExit(f"device_scan_peer: no fla source under {root} (FLA_ROOT)")
    sys.path.insert(0, root)
    init = open(os.path.join(root, "fla", "__init__.py")).read()
    found = re.search(r"__version__\s*=\s*[\"']([^\"']+)", init)
    for name, path in (("fla", ["fla"]), ("fla.ops", ["fla", "ops"])):
        mod = types.ModuleType(name)
        mod.__path__ = [os.path.join(root, *path)]
        mod.__version__ = found.group(1) if found else "0"  # fla.utils reads fla.__version__
        sys.modules[name] = mod
    return importlib.import_module("fla.ops.gla.chunk").chunk_gla


def main():
    import torch
    import triton

    chunk_gla = import_chunk_gla(os.environ.get("FLA_ROOT", ".deps/fla"))
    dev = torch.device("cuda")
    n, e = 64, 4096
    print(f"device_scan_peer: fla chunk_gla on {torch.cuda.get_device_name(0)}, torch "
          f"{torch.__version__}, triton {triton.__version__}", flush=True)
    print(f"{'B':>3} {'T':>6} {'n':>3} {'E':>5} {'out':>5} {'ms':>9} {'Mtok/s':>10}", flush=True)
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    # the targets are at T >= 8k: those shapes first, in case the time limit cuts the
    # run short (each new shape compiles and autotunes fla's Triton kernels first)
    for t in (8192, 32768, 2048):
        for b in (1, 8):
            q = (torch.rand(b, t, 1, n, device=dev) * 2 - 1).bfloat16()
            k = ((torch.rand(b, t, 1, n, device=dev) * 2 - 1) * 0.125).bfloat16()
            v = (torch.rand(b, t, 1, e, device=dev) * 2 - 1).bfloat16()
            g = (-8 * torch.rand(b, t, 1, n, device=dev)).bfloat16()
            h0 = torch.rand(b, 1, n, e, device=dev, dtype=torch.float32) * 2 - 1

            def run():
                return chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True)

            o, _ = run()  # compiles and autotunes outside the timing
            assert o.shape == v.shape and torch.isfinite(o.float()).all(), "fla output"
            ms = triton.testing.do_bench(run, warmup=50, rep=300, return_mode="median")
            print(f"{b:3d} {t:6d} {n:3d} {e:5d} {'bf16':>5} {ms:9.3f} {b * t / ms / 1e3:10.1f}",
                  flush=True)
            print(f"CSV,fla,{b},{t},{n},{e},bf16,{ms:.5f}", flush=True)
            del q, k, v, g, h0, o
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
