#!/usr/bin/env python3
"""Draws docs/img/decode_vs_context.svg from bench_baseline's JSON output: decode time per token
and decode-state memory against context length, for the Transformer baseline, Rodimus+ and
Rodimus. Standard library only (writes SVG by hand).

usage: scripts/plot_performance.py BASELINE.json [OUT.svg]
"""
import json
import math
import sys

MODELS = [  # (benchmark prefix, label, colour)
    ("BM_transformer_decode", "Transformer (growing KV cache)", "#d62728"),
    ("BM_rodimus_plus_decode", "Rodimus+ (window 1024)", "#1f77b4"),
    ("BM_rodimus_pure_decode", "Rodimus", "#2ca02c"),
]


def load(path):
    with open(path) as f:
        data = json.load(f)
    series = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        prefix = b["name"].split("/")[0]
        ctx = int(b["context"])
        ms = 1e3 / b["tokens_per_s"]
        mib = b["state_bytes"] / 2**20
        series.setdefault(prefix, []).append((ctx, ms, mib))
    for v in series.values():
        v.sort()
    return data.get("context", {}), series


def panel(x0, y0, w, h, title, ylabel, series, col):
    out = []
    xs = [p[0] for s in series.values() for p in s]
    ys = [p[col] for s in series.values() for p in s]
    if not xs:
        return out
    lx0, lx1 = math.log2(min(xs)), math.log2(max(xs))
    if lx1 == lx0:
        lx1 += 1
    ymax = max(ys) * 1.1
    sx = lambda x: x0 + (math.log2(x) - lx0) / (lx1 - lx0) * w
    sy = lambda y: y0 + h - y / ymax * h
    out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>')
    out.append(f'<text x="{x0 + w / 2}" y="{y0 - 10}" text-anchor="middle" font-size="14">{title}</text>')
    out.append(f'<text x="{x0 - 45}" y="{y0 + h / 2}" text-anchor="middle" font-size="12" '
               f'transform="rotate(-90 {x0 - 45} {y0 + h / 2})">{ylabel}</text>')
    out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 35}" text-anchor="middle" font-size="12">'
               'context length (tokens, log scale)</text>')
    for x in sorted(set(xs)):
        out.append(f'<line x1="{sx(x):.1f}" y1="{y0 + h}" x2="{sx(x):.1f}" y2="{y0 + h + 5}" stroke="#444"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{y0 + h + 18}" text-anchor="middle" font-size="11">{x}</text>')
    for i in range(6):
        y = ymax * i / 5
        out.append(f'<line x1="{x0 - 5}" y1="{sy(y):.1f}" x2="{x0}" y2="{sy(y):.1f}" stroke="#444"/>')
        out.append(f'<text x="{x0 - 8}" y="{sy(y) + 4:.1f}" text-anchor="end" font-size="11">{y:.3g}</text>')
    for prefix, label, colour in MODELS:
        pts = series.get(prefix, [])
        if not pts:
            continue
        path = " ".join(f"{sx(p[0]):.1f},{sy(p[col]):.1f}" for p in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for p in pts:
            out.append(f'<circle cx="{sx(p[0]):.1f}" cy="{sy(p[col]):.1f}" r="3" fill="{colour}"/>')
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ctx, series = load(sys.argv[1])
    out_path = sys.argv[2] if len(sys.argv) > 2 else "docs/img/decode_vs_context.svg"
    W, H = 900, 420
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           'font-family="sans-serif">', f'<rect width="{W}" height="{H}" fill="white"/>']
    svg += panel(80, 50, 320, 260, "decode time per token", "ms / token", series, 1)
    svg += panel(540, 50, 320, 260, "decode state per sequence", "MiB", series, 2)
    for i, (prefix, label, colour) in enumerate(MODELS):
        y = 375 + 0 * i
        x = 80 + 280 * i
        svg.append(f'<rect x="{x}" y="{y - 9}" width="14" height="4" fill="{colour}"/>')
        svg.append(f'<text x="{x + 20}" y="{y - 3}" font-size="12">{label}</text>')
    host = ctx.get("host_name", "")
    svg.append(f'<text x="{W - 10}" y="{H - 8}" text-anchor="end" font-size="10" fill="#666">'
               f'bench_baseline, {ctx.get("num_cpus", "?")} CPUs {host}, {ctx.get("date", "")}</text>')
    svg.append("</svg>")
    with open(out_path, "w") as f:
        f.write("\n".join(svg) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
