#!/usr/bin/env bash
# models/recipe/base-model.sh - rebuilds sealora's embedded base model
# (models/base/) from scratch: corpus, tokenizer, initialisation, full
# pretraining with our own engine, F16 export. `make base-model` runs it.
# Every stage is resumable: a finished stage's output is kept, and an
# interrupted pretraining continues from its last checkpoint (train --resume).
# Environment: WORK (build/base-model), OUT (models/base), STEPS (1600),
# THREADS (1). The shipped model was trained with one thread: results are
# bit-identical for a given thread count, and a single thread keeps its
# speed when the machine is shared (OpenMP teams stall when a core is
# taken); about 70 minutes on an idle core.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=bin/sealora-server
work=${WORK:-build/base-model}
out=${OUT:-models/base}
steps=${STEPS:-1600}
export OMP_NUM_THREADS=${THREADS:-1}
corpus=build/corpus
mkdir -p "$work"

echo "base-model: 1/4 corpus ($corpus)" >&2
models/recipe/corpus.sh "$corpus"

echo "base-model: 2/4 tokenizer and initial weights ($work/init)" >&2
if [ ! -s "$work/init/tokenizer.json" ]; then
  "$bin" train-tokenizer --vocab-size 8192 --out "$work/init" "$corpus/general.txt"
fi
if [ ! -s "$work/init/model.safetensors" ]; then
  "$bin" init-model --out "$work/init" --layers 8 --heads 5 --embd 320 --context 256 \
    --vocab 8192 --seed 1
fi

echo "base-model: 3/4 pretraining, $steps steps of 16 x 256 tokens ($work/trained)" >&2
"$bin" train --full --model "$work/init" --text "$corpus/general.txt" --out "$work/trained" \
  --steps "$steps" --batch 16 --context 256 --lr 1.5e-3 --lr-min 1.5e-4 --warmup 60 \
  --weight-decay 0.1 --clip 1 --seed 1 --checkpoint-every 100 --eval-every 200 \
  --eval-batches 16 --log-every 10 --dtype F16 --resume

echo "base-model: 4/4 export to $out" >&2
mkdir -p "$out"
for f in config.json model.safetensors tokenizer.json vocab.json merges.txt; do
  cp "$work/trained/$f" "$out/$f.tmp" && mv "$out/$f.tmp" "$out/$f"
done
cp "$work/init/tokenizer_config.json" "$out/tokenizer_config.json"
cp "$work/trained/train_log.jsonl" "$out/train_log.jsonl"
cp "$work/trained/loss.svg" "$out/loss.svg"
echo "base-model: done; see $out/README.md for how to refresh the model card's figures" >&2
