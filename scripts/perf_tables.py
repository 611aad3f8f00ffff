#!/usr/bin/env python3
"""Prints the Markdown tables of docs/performance.md from the JSON that scripts/bench.sh writes
(model[_tag]_t<N>.json, gla_scan_t<N>.json, baseline.json). Standard library only.

usage: scripts/perf_tables.py [bench-results] [--update docs/performance.md]

With --update, the tables replace what lies between the markers
<!-- bench-tables:begin --> and <!-- bench-tables:end --> in that file.
"""
import glob
import json
import os
import re
import sys

# ggml's gated_linear_attn at the Rodimus state shape on this machine class (issue 4):
# prefill tokens/s at T = 2048 and us per decode step (state in cache), by thread count.
GGML_PREFILL = {1: 39.7e3, 2: 58.9e3}
GGML_DECODE_US = {1: 42.5, 2: 24.6}


def load(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"perf_tables.py: skipping {path}: {e}", file=sys.stderr)
        return []
    return [b for b in data["benchmarks"] if b.get("run_type") != "aggregate"]


def threads_of(path):
    m = re.search(r"_t(\d+)\.json$", path)
    return int(m.group(1)) if m else 0


def field(name, key):
    m = re.search(key + r":(\d+)", name)
    return int(m.group(1)) if m else None


def fmt(x, digits=3):
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def model_tables(files):
    limits, prefill, decode, memory = [], [], [], {}
    for path in files:
        t = threads_of(path)
        for b in load(path):
            name = b["name"]
            parts = name.split("/")
            if parts[0] == "machine_limits":
                limits.append((t, b["triad_gbs"], b["sgemm_gflops"]))
            elif parts[0] == "prefill":
                prefill.append((parts[1], parts[2], field(name, "T"), t, b["tokens_per_s"],
                                b.get("gflops"), b["roofline_fraction"]))
            elif parts[0] in ("decode", "decode_prefilled"):
                decode.append((parts[1], parts[2], parts[0], field(name, "ctx"), field(name, "B"),
                               t, b["tokens_per_s"], b["real_time"], b.get("time_unit"),
                               b["roofline_fraction"]))
            elif parts[0] == "state_memory":
                memory[(parts[1], field(name, "ctx"))] = b["state_bytes"]
    out = []
    if limits:
        out += ["### Machine limits (measured in the same binary)", "",
                "| threads | STREAM triad GB/s | sgemm 2048^3 GFLOP/s |", "|---|---|---|"]
        out += [f"| {t} | {fmt(bw)} | {fmt(gf)} |" for t, bw, gf in sorted(limits)]
        out.append("")
    if prefill:
        out += ["### Prefill", "",
                "| model | weights | T | threads | tokens/s | GFLOP/s | roofline_fraction |",
                "|---|---|---|---|---|---|---|"]
        for r in sorted(prefill):
            out.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {fmt(r[4])} | {fmt(r[5])} | "
                       f"{r[6]:.2f} |")
        out.append("")
    if decode:
        out += ["### Decode", "",
                "`decode` starts from a synthetic state at the context (fast-forwarded positions, "
                "full KV window); `decode_prefilled` from a state that really prefilled the "
                "context.", "",
                "| model | weights | kind | context | B | threads | tokens/s | time/step | "
                "roofline_fraction |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(decode):
            out.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4] or 1} | {r[5]} | "
                       f"{fmt(r[6])} | {r[7]:.3g} {r[8]} | {r[9]:.2f} |")
        out.append("")
    if memory:
        models = sorted({m for m, _ in memory})
        ctxs = sorted({c for _, c in memory})
        out += ["### Decode state per sequence (MiB)", "",
                "| model | " + " | ".join(f"ctx {c}" for c in ctxs) + " |",
                "|---|" + "---|" * len(ctxs)]
        for m in models:
            out.append(f"| {m} | " + " | ".join(
                fmt(memory.get((m, c), 0) / 2**20) for c in ctxs) + " |")
        out.append("")
    return out


def scan_table(files):
    rows = []
    for path in files:
        t = threads_of(path)
        for b in load(path):
            name = b["name"]
            algo = re.search(r"<(.*)>", name).group(1)
            tokens = int(name.split("/")[1])
            if tokens == 1:
                us = b["real_time"] * (1e-3 if b["time_unit"] == "ns" else 1)
                peer = f"ggml {GGML_DECODE_US.get(t, 0)} us/step"
                ratio = GGML_DECODE_US.get(t, 0) / us if us else 0
                rows.append((algo, tokens, t, f"{us:.1f} us/step", peer, ratio,
                             b["roofline_fraction"]))
            else:
                tps = b["tokens_per_s"]
                peer = f"ggml {fmt(GGML_PREFILL.get(t, 0))} tok/s"
                ratio = tps / GGML_PREFILL[t] if t in GGML_PREFILL else 0
                rows.append((algo, tokens, t, f"{fmt(tps)} tok/s", peer, ratio,
                             b["roofline_fraction"]))
    if not rows:
        return []
    out = ["### GLA scan alone (n = 64, E = 4096)", "",
           "| algorithm | T | threads | ours | peer | speed-up vs peer | roofline_fraction |",
           "|---|---|---|---|---|---|---|"]
    for r in sorted(rows):
        out.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]:.2f}x | {r[6]:.2f} |")
    out.append("")
    return out


def baseline_table(path):
    if not os.path.exists(path):
        return []
    rows = {}
    for b in load(path):
        model = b["name"].split("/")[0].replace("BM_", "").replace("_decode", "")
        rows.setdefault(model, {})[int(b["context"])] = (1e3 / b["tokens_per_s"],
                                                         b["state_bytes"] / 2**20,
                                                         b["roofline_fraction"])
    ctxs = sorted({c for v in rows.values() for c in v})
    out = ["### Decode after a long context: Transformer vs Rodimus+ vs Rodimus", "",
           "ms per token (state MiB, roofline_fraction)", "",
           "| model | " + " | ".join(f"ctx {c}" for c in ctxs) + " |",
           "|---|" + "---|" * len(ctxs)]
    for m in ("transformer", "rodimus_plus", "rodimus_pure"):
        if m not in rows:
            continue
        cells = []
        for c in ctxs:
            v = rows[m].get(c)
            cells.append(f"{v[0]:.2f} ({fmt(v[1])} MiB, {v[2]:.2f})" if v else "-")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    out.append("")
    return out


BEGIN, END = "<!-- bench-tables:begin -->", "<!-- bench-tables:end -->"


def main():
    args = sys.argv[1:]
    update = None
    if "--update" in args:
        i = args.index("--update")
        update = args[i + 1]
        del args[i:i + 2]
    d = args[0] if args else "bench-results"
    out = model_tables(sorted(glob.glob(os.path.join(d, "model*_t*.json"))))
    out += scan_table(sorted(glob.glob(os.path.join(d, "gla_scan_t*.json"))))
    out += baseline_table(os.path.join(d, "baseline.json"))
    text = "\n".join(out)
    if update is None:
        print(text)
        return
    with open(update) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"perf_tables.py: {update} has no {BEGIN} ... {END} markers")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(update, "w") as f:
        f.write(head + BEGIN + "\n\n" + text + "\n" + END + tail)
    print(f"perf_tables.py: updated {update}")


if __name__ == "__main__":
    main()
