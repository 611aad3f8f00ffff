#!/usr/bin/env bash
# The recipe of models/tiny-coder: a byte-level BPE of 8192 tokens and a Rodimus+ of 6.2 M
# parameters (models/tiny-coder/config.json: D = 256, 4 layers, tied embeddings) trained on the
# Python standard library that Debian installs, 5 % of its files held out; then the held-out
# bits per byte beside gzip -9 and xz -9 on the same files, and the loss plot.
#
#   scripts/train_tiny_coder.sh            # MINUTES=25 DATA=/usr/lib/python3.11 OUT=build/tiny-coder
#   MINUTES=40 scripts/train_tiny_coder.sh
#   RESUME=1 scripts/train_tiny_coder.sh   # continue the checkpoint in $OUT/run
#
# Writes $OUT/tokenizer.json, the checkpoint $OUT/run (config.json, model.safetensors in bf16,
# optimizer.safetensors, trainer_state.json, tokenizer.json, train_log.jsonl), $OUT/eval.txt,
# $OUT/baseline.txt and docs/img/loss.svg; with INSTALL=1 it copies model.safetensors and
# tokenizer.json into models/tiny-coder/. The rodimus binary is $RODIMUS, else
# build/examples/rodimus (a Release build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rodimus=${RODIMUS:-$root/build/examples/rodimus}
data=${DATA:-/usr/lib/python3.11}
out=${OUT:-$root/build/tiny-coder}
minutes=${MINUTES:-25}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_PROC_BIND=${OMP_PROC_BIND:-false}
# OpenMP threads that spin while the BLAS works halve the speed of a training step
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# The files: .py sources outside the test folders (train-tokenizer's documented filter; Debian's
# copy has test/ only). The same filter goes to every command, so all see the same split.
filter=(--ext .py --exclude-dir test --exclude-dir tests --exclude-dir idle_test
        --exclude-dir site-packages)

mkdir -p "$out"
if [[ ${RESUME:-0} != 1 ]]; then
  # the tokenizer learns from the training files only
  "$rodimus" train-tokenizer --input "$data" --vocab 8192 --out "$out/tokenizer.json" \
      "${filter[@]}" --special '<|endoftext|>' --skip-heldout | tee "$out/tokenizer.txt"
  rm -rf "$out/run"
  resume=()
else
  resume=(--resume)
fi

# 16 x 256 tokens a step; the schedule's length is fitted to the time budget after the first
# steps (and recorded in the checkpoint, so --resume keeps it).
"$rodimus" train --data "$data" --tokenizer "$out/tokenizer.json" \
    --config "$root/models/tiny-coder/config.json" --out "$out/run" "${filter[@]}" \
    --minutes "$minutes" --batch 16 --seq 256 --lr 2e-3 --min-lr 2e-4 --warmup 100 \
    --weight-decay 0.1 --clip 1.0 --seed 1 --eval-every 100 --eval-windows 32 \
    --checkpoint-every 200 "${resume[@]}" | tee "$out/train.txt"

"$rodimus" eval --model "$out/run" --data "$data" | tee "$out/eval.txt"
"$root/scripts/gzip_baseline.sh" "$data" "${filter[@]}" | tee "$out/baseline.txt"
gzip_bpb=$(awk '/^gzip_bits_per_byte:/ { print $2 }' "$out/baseline.txt")
xz_bpb=$(awk '/^xz_bits_per_byte:/ { print $2 }' "$out/baseline.txt")
python3 "$root/scripts/plot_loss.py" "$out/run/train_log.jsonl" --out "$root/docs/img/loss.svg" \
    --title "tiny-coder: Rodimus+ 6.2 M parameters on the Python 3.11 standard library" \
    --gzip-bpb "$gzip_bpb" ${xz_bpb:+--xz-bpb "$xz_bpb"}

model_bpb=$(awk '/^val_bits_per_byte:/ { print $2 }' "$out/eval.txt")
echo "held-out bits per byte: model $model_bpb, gzip -9 $gzip_bpb, xz -9 ${xz_bpb:-n/a}"
if [[ ${INSTALL:-0} == 1 ]]; then
  cp "$out/run/model.safetensors" "$out/run/tokenizer.json" "$out/run/trainer_state.json" \
    "$out/run/train_log.jsonl" "$root/models/tiny-coder/"
  echo "copied model.safetensors, tokenizer.json, trainer_state.json and train_log.jsonl into models/tiny-coder/"
fi
