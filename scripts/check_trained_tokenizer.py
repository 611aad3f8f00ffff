#!/usr/bin/env python3
"""Checks that a tokenizer.json (e.g. one written by `rodimus train-tokenizer`) loads in the
`tokenizers` library (npm, the referee; scripts/make_tokenizer_fixtures.sh installs it into
.cache/npm) and that it and `rodimus tokenize` give the same ids for each file given.

usage: scripts/check_trained_tokenizer.py [--cli build/examples/rodimus]
           [--node-modules .cache/npm/node_modules] TOKENIZER_JSON FILE...

Files that are not UTF-8, hold a NUL byte or exceed 120 KiB (the text goes through the
command line, whose arguments are limited to 128 KiB) are skipped and counted. Prints one
line per mismatch and a summary; the exit status is 1 when any file differs.
"""
import argparse
import json
import os
import subprocess
import sys

MAX_BYTES = 120 * 1024

REFEREE_JS = r"""
const path = require('path'), fs = require('fs');
const [modules, tokenizerFile] = process.argv.slice(1);
const { Tokenizer } = require(path.join(path.resolve(modules), 'tokenizers'));
const files = JSON.parse(fs.readFileSync(0, 'utf8'));
(async () => {
  const tok = Tokenizer.fromFile(tokenizerFile);
  const out = { vocab_size: tok.getVocabSize(true), ids: [] };
  for (const f of files) {
    const enc = await tok.encode(fs.readFileSync(f, 'utf8'), null, { addSpecialTokens: false });
    out.ids.push(Array.from(enc.getIds()));
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", default="build/examples/rodimus")
    ap.add_argument("--node-modules", default=".cache/npm/node_modules")
    ap.add_argument("tokenizer")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()

    files, skipped = [], 0
    for f in a.files:
        with open(f, "rb") as fh:
            data = fh.read()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            skipped += 1
            continue
        if b"\0" in data or len(data) > MAX_BYTES:
            skipped += 1
            continue
        files.append((f, len(data)))

    p = subprocess.run(["node", "-e", REFEREE_JS, a.node_modules, a.tokenizer],
                       input=json.dumps([f for f, _ in files]), capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"check_trained_tokenizer: the referee failed:\n{p.stderr}")
    referee = json.loads(p.stdout)

    env = dict(os.environ, OMP_PROC_BIND="false", OMP_NUM_THREADS="1")
    mismatches, tokens, total_bytes = 0, 0, 0
    for (f, size), expected in zip(files, referee["ids"]):
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        r = subprocess.run([a.cli, "tokenize", "--tokenizer", a.tokenizer, "--text=" + text],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.exit(f"check_trained_tokenizer: rodimus tokenize failed on {f}:\n{r.stderr}")
        ids = [int(x) for x in r.stdout.strip().split(",")] if r.stdout.strip() else []
        if ids != expected:
            mismatches += 1
            first = next((i for i, (x, y) in enumerate(zip(ids, expected)) if x != y),
                         min(len(ids), len(expected)))
            print(f"MISMATCH {f}: first difference at token {first}")
        tokens += len(expected)
        total_bytes += size
    print(f"tokenizer: {a.tokenizer} (referee vocab size {referee['vocab_size']})")
    print(f"files: {len(files)} compared, {skipped} skipped")
    print(f"bytes: {total_bytes}, referee tokens: {tokens}, bytes per token: "
          f"{total_bytes / max(tokens, 1):.4f}")
    print(f"mismatches: {mismatches}")
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
