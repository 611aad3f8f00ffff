#!/usr/bin/env bash
# gzip -9 and xz -9 bits per byte on the held-out files of a corpus (the files `rodimus train`
# holds out and `rodimus eval` scores: `rodimus eval --list-heldout`), for comparison with a
# model's validation bits per byte. The held-out files are concatenated in sorted path order and
# compressed as one stream.
#
#   scripts/gzip_baseline.sh DATA_DIR [--ext EXT]... [--exclude-dir NAME]...
#
# Prints `key: value` lines: files, bytes, gzip_bytes, gzip_bits_per_byte, xz_bytes,
# xz_bits_per_byte. The rodimus binary is $RODIMUS, else build/examples/rodimus.
set -euo pipefail
if [[ $# -lt 1 ]]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
rodimus=${RODIMUS:-$root/build/examples/rodimus}
data=$1
shift
list=$(mktemp)
trap 'rm -f "$list"' EXIT
"$rodimus" eval --data "$data" --list-heldout "$@" > "$list"
files=$(wc -l < "$list")
if [[ $files -eq 0 ]]; then
  echo "gzip_baseline.sh: no held-out files under $data" >&2
  exit 1
fi
concat() { tr '\n' '\0' < "$list" | xargs -0 cat; }
bytes=$(concat | wc -c)
gz=$(concat | gzip -9 -c | wc -c)
echo "files: $files"
echo "bytes: $bytes"
echo "gzip_bytes: $gz"
awk -v c="$gz" -v b="$bytes" 'BEGIN { printf "gzip_bits_per_byte: %.4f\n", 8 * c / b }'
if command -v xz > /dev/null; then
  x=$(concat | xz -9 -c | wc -c)
  echo "xz_bytes: $x"
  awk -v c="$x" -v b="$bytes" 'BEGIN { printf "xz_bits_per_byte: %.4f\n", 8 * c / b }'
fi
