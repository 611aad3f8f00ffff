#!/usr/bin/env python3
"""Plots a `rodimus train` log (train_log.jsonl in the --out directory) as an SVG, with the
Python standard library only.

  scripts/plot_loss.py LOG [--out docs/img/loss.svg] [--title TEXT] [--smooth N]
                       [--gzip-bpb X] [--xz-bpb X]

Left panel: the training loss of every step (light) and its running mean over N steps (dark),
and the held-out loss of each evaluation (dots), in nats per token. Right panel: held-out bits
per byte (periodic evaluations, estimated from a subset of windows: hollow dots; the final
evaluation over every held-out window: a filled dot), with horizontal lines at the gzip -9 and
xz -9 figures of the same files (scripts/gzip_baseline.sh). A resumed run's log holds the steps
of every run; the last entry of a step wins. A CSV log with a header line (step,loss[,...])
works too.
"""
import argparse
import csv
import json
import math
import os
import sys


def read_log(path):
    steps, evals, final = {}, {}, None
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        f.seek(0)
        if first.lstrip().startswith("{"):
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    e = json.loads(line)
                except json.JSONDecodeError as err:
                    sys.exit(f"plot_loss.py: {path}:{n}: not JSON: {err}")
                kind = e.get("event")
                if kind == "step":
                    steps[e["step"]] = e["loss"]
                elif kind == "eval":
                    evals[e["step"]] = (e["val_loss"], e.get("val_bpb"))
                elif kind == "final":
                    final = (e["step"], e["val_loss"], e.get("val_bpb"))
        else:
            for row in csv.DictReader(f):
                steps[int(row["step"])] = float(row["loss"])
                if row.get("val_loss"):
                    evals[int(row["step"])] = (float(row["val_loss"]),
                                               float(row["val_bpb"]) if row.get("val_bpb") else None)
    if not steps:
        sys.exit(f"plot_loss.py: {path}: no training steps in the log")
    return sorted(steps.items()), sorted(evals.items()), final


def nice_ticks(lo, hi, count=5):
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    t = math.ceil(lo / step) * step
    ticks = []
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def fmt(v):
    if abs(v) >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


class Panel:
    def __init__(self, x0, y0, w, h, xr, yr, title, xlabel, ylabel):
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        self.xr, self.yr = xr, yr
        self.parts = []
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel

    def px(self, x):
        return self.x0 + (x - self.xr[0]) / (self.xr[1] - self.xr[0]) * self.w

    def py(self, y):
        return self.y0 + self.h - (y - self.yr[0]) / (self.yr[1] - self.yr[0]) * self.h

    def axes(self):
        p = self.parts
        p.append(f'<rect x="{self.x0}" y="{self.y0}" width="{self.w}" height="{self.h}" '
                 f'fill="none" stroke="#444"/>')
        for t in nice_ticks(*self.xr):
            x = self.px(t)
            p.append(f'<line x1="{x:.1f}" y1="{self.y0 + self.h}" x2="{x:.1f}" '
                     f'y2="{self.y0 + self.h + 4}" stroke="#444"/>')
            p.append(f'<text x="{x:.1f}" y="{self.y0 + self.h + 16}" text-anchor="middle">'
                     f'{fmt(t)}</text>')
        for t in nice_ticks(*self.yr):
            y = self.py(t)
            p.append(f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x0 + self.w}" y2="{y:.1f}" '
                     f'stroke="#ddd"/>')
            p.append(f'<text x="{self.x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
        p.append(f'<text x="{self.x0 + self.w / 2}" y="{self.y0 - 8}" text-anchor="middle" '
                 f'font-weight="bold">{self.title}</text>')
        p.append(f'<text x="{self.x0 + self.w / 2}" y="{self.y0 + self.h + 34}" '
                 f'text-anchor="middle">{self.xlabel}</text>')
        cy = self.y0 + self.h / 2
        p.append(f'<text x="{self.x0 - 42}" y="{cy}" text-anchor="middle" '
                 f'transform="rotate(-90 {self.x0 - 42} {cy})">{self.ylabel}</text>')

    def line(self, pts, color, width=1.5, opacity=1.0, dash=None):
        pts = [(x, y) for x, y in pts if self.yr[0] <= y <= self.yr[1]]
        if len(pts) < 2:
            return
        d = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in pts)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" '
                          f'stroke-width="{width}" stroke-opacity="{opacity}"{extra}/>')

    def dot(self, x, y, color, filled=True, r=3.5):
        fill = color if filled else "white"
        self.parts.append(f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="{r}" '
                          f'fill="{fill}" stroke="{color}" stroke-width="1.5"/>')

    def label(self, x, y, text, color, anchor="end"):
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" '
                          f'fill="{color}">{text}</text>')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log")
    ap.add_argument("--out", default="docs/img/loss.svg")
    ap.add_argument("--title", default="")
    ap.add_argument("--smooth", type=int, default=50, help="running-mean window in steps")
    ap.add_argument("--gzip-bpb", type=float)
    ap.add_argument("--xz-bpb", type=float)
    a = ap.parse_args()
    steps, evals, final = read_log(a.log)

    xs = [s for s, _ in steps]
    losses = [l for _, l in steps]
    n = max(1, a.smooth)
    smooth, acc = [], 0.0
    for i, l in enumerate(losses):
        acc += l
        if i >= n:
            acc -= losses[i - n]
        smooth.append(acc / min(i + 1, n))
    xmax = max(xs[-1], final[0] if final else 0)
    finite = [l for l in losses if math.isfinite(l)]
    lo = min(finite + [v for _, (v, _) in evals] + ([final[1]] if final else []))
    hi = max(finite)
    pad = 0.05 * (hi - lo + 1e-9)

    width, height = 980, 400
    left = Panel(70, 40, 400, 300, (0, xmax), (max(0.0, lo - pad), hi + pad),
                 "training and held-out loss", "step", "nats per token")
    left.axes()
    left.line(list(zip(xs, losses)), "#1f77b4", width=1, opacity=0.3)
    left.line(list(zip(xs, smooth)), "#1f77b4", width=2)
    for s, (v, _) in evals:
        left.dot(s, v, "#d62728", filled=False)
    if final:
        left.dot(final[0], final[1], "#d62728")
    lx = left.x0 + left.w - 8
    left.label(lx, left.y0 + 16, f"train (mean of {n} steps)", "#1f77b4")
    left.label(lx, left.y0 + 32, "held-out", "#d62728")

    bpb = [(s, b) for s, (_, b) in evals if b is not None]
    if final and final[2] is not None:
        bpb.append((final[0], final[2]))
    refs = [(v, name, c) for v, name, c in ((a.gzip_bpb, "gzip -9", "#2ca02c"),
                                           (a.xz_bpb, "xz -9", "#9467bd")) if v]
    parts = left.parts
    if bpb or refs:
        vals = [b for _, b in bpb] + [v for v, _, _ in refs]
        lo2, hi2 = min(vals), max(vals)
        pad2 = 0.08 * (hi2 - lo2 + 1e-3)
        right = Panel(560, 40, 380, 300, (0, xmax), (max(0.0, lo2 - pad2), hi2 + pad2),
                      "held-out bits per byte", "step", "bits per byte")
        right.axes()
        right.line(bpb, "#d62728", width=1.5)
        for s, b in bpb:
            right.dot(s, b, "#d62728", filled=bool(final) and s == final[0] and b == final[2])
        for v, name, c in refs:
            right.line([(0, v), (xmax, v)], c, width=1.5, dash="6,4")
            right.label(right.x0 + right.w - 6, right.py(v) - 5, f"{name}: {v:.3f}", c)
        if final and final[2] is not None:
            right.label(right.x0 + right.w - 6, right.y0 + 16, f"final: {final[2]:.3f}",
                        "#d62728")
        parts = parts + right.parts
    else:
        width = 520

    title = a.title or os.path.basename(os.path.dirname(os.path.abspath(a.log)))
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">{title}</text>',
           *parts, "</svg>"]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(svg) + "\n")
    print(f"wrote {a.out}: {len(steps)} steps, {len(evals)} evaluations"
          + (f", final {final[1]:.4f} nats/token, {final[2]:.4f} bits/byte" if final else ""))


if __name__ == "__main__":
    main()
