# train, eval and generate end to end on a tiny model: LoRA and full
# training write PEFT adapters / model directories; a run killed with
# SIGKILL and resumed ends with the same weights, byte for byte, as one that
# was never interrupted; the adapter lowers the NLL of its training text;
# generation is reproducible by seed; mismatched adapters are refused.
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
# About 60 KB of the project's docs, a document every 25 lines.
cat "$root"/README.md "$root"/docs/*.md > "$T/docs.txt"
head -c 60000 "$T/docs.txt" | awk 'NR % 25 == 0 { printf "<|endoftext|>" } { print }' > "$T/text.txt"
expect_status 0 "$S/sealora-server" train-tokenizer --vocab-size 400 --out "$T/m" "$T/text.txt"
expect_status 0 "$S/sealora-server" init-model --out "$T/m" --layers 2 --heads 2 --embd 32 \
  --context 32 --vocab 400 --seed 3
for c in train eval generate; do
  expect_status 0 "$S/sealora-client" $c --help
  expect_grep "usage: sealora-client $c" "$T/out"
done

# Full training killed (SIGKILL) after a checkpoint, then resumed, equals an
# uninterrupted run byte for byte.
args=(--full --model "$T/m" --text "$T/text.txt" --steps 120 --batch 4 --context 32
      --lr 3e-3 --checkpoint-every 10 --quiet)
expect_status 0 "$S/sealora-server" train "${args[@]}" --out "$T/straight"
"$S/sealora-server" train "${args[@]}" --out "$T/killed" & pid=$!
for _ in $(seq 1 600); do [ -e "$T/killed/checkpoint/progress.json" ] && break; sleep 0.05; done
kill -9 $pid 2> /dev/null || true
wait $pid 2> /dev/null || true
[ -e "$T/killed/checkpoint/progress.json" ] || fail "no checkpoint appeared"
expect_status 0 "$S/sealora-server" train "${args[@]}" --out "$T/killed" --resume
cmp "$T/straight/model.safetensors" "$T/killed/model.safetensors" || fail "resumed weights differ"
for f in tokenizer.json vocab.json merges.txt config.json; do
  [ -s "$T/killed/$f" ] || fail "full training wrote no $f"
done
[ "$(grep -c '"loss"' "$T/killed/train_log.jsonl")" -eq "$(grep -c '"loss"' "$T/straight/train_log.jsonl")" ] \
  || fail "resumed log has another number of loss lines"
# Resuming a finished run changes nothing.
expect_status 0 "$S/sealora-server" train "${args[@]}" --out "$T/killed" --resume
cmp "$T/straight/model.safetensors" "$T/killed/model.safetensors" || fail "second resume changed weights"
# Another schedule cannot resume this checkpoint.
expect_status 1 "$S/sealora-server" train --full --model "$T/m" --text "$T/text.txt" --steps 121 \
  --batch 4 --context 32 --lr 3e-3 --checkpoint-every 10 --out "$T/killed" --resume
expect_grep "schedule" "$T/err"

# LoRA: files, log, refusal to overwrite.
expect_status 0 "$S/sealora-client" train --model "$T/straight" --text "$T/text.txt" --out "$T/a" \
  --steps 10 --batch 4 --context 32 --lr 5e-3 --targets all --checkpoint-every 5 --val-fraction 0.3
for f in adapter_config.json adapter_model.safetensors train_log.jsonl loss.svg checkpoint/trainer_state.safetensors; do
  [ -s "$T/a/$f" ] || fail "train wrote no $f"
done
grep -q '"layers_to_transform"\|"target_modules"' "$T/a/adapter_config.json" || fail "not PEFT's config"
[ "$(grep -c '"loss"' "$T/a/train_log.jsonl")" -eq 10 ] || fail "expected 10 loss lines"
expect_grep "val_loss" "$T/a/train_log.jsonl"
expect_status 1 "$S/sealora-client" train --model "$T/straight" --text "$T/text.txt" --out "$T/a" --steps 10
expect_grep "already holds" "$T/err"

# An adapter trained on a repetitive text lowers the NLL of that text.
for _ in $(seq 1 150); do
  echo "The server aggregates masked updates from every site, then the auditor checks the log."
done > "$T/rep.txt"
expect_status 0 "$S/sealora-client" train --model "$T/straight" --text "$T/rep.txt" --out "$T/r" \
  --steps 60 --batch 4 --context 32 --lr 5e-3 --targets all --quiet
expect_status 0 "$S/sealora-client" eval --model "$T/straight" --text "$T/rep.txt" --json
base=$(sed -E 's/.*"nll": ([0-9.]+).*/\1/' "$T/out")
grep -qE '^\{"tokens": [0-9]+, "nll": [0-9.]+, "ppl": [0-9.]+\}$' "$T/out" || fail "eval --json shape"
expect_status 0 "$S/sealora-client" eval --model "$T/straight" --adapter "$T/r" --text "$T/rep.txt" --json
tuned=$(sed -E 's/.*"nll": ([0-9.]+).*/\1/' "$T/out")
awk -v b="$base" -v t="$tuned" 'BEGIN { exit !(t < b - 0.1) }' || fail "adapter NLL $tuned not below base $base"

# generate: the same seed gives the same text; greedy is deterministic.
expect_status 0 "$S/sealora-client" generate --model "$T/straight" --prompt "The server" --max-tokens 20 --seed 5
cp "$T/out" "$T/g1"
expect_status 0 "$S/sealora-server" generate --model "$T/straight" --prompt "The server" --max-tokens 20 --seed 5
cmp "$T/out" "$T/g1" || fail "generate is not reproducible by seed"
expect_grep "^The server" "$T/out"
expect_status 0 "$S/sealora-server" generate --model "$T/straight" --adapter "$T/a" --prompt "x" --temperature 0 --max-tokens 5

# eval --split: the held-out documents are a part of the whole.
expect_status 0 "$S/sealora-server" eval --model "$T/straight" --text "$T/text.txt" --split all --json
all=$(sed -E 's/.*"tokens": ([0-9]+).*/\1/' "$T/out")
expect_status 0 "$S/sealora-server" eval --model "$T/straight" --text "$T/text.txt" --split val \
  --val-fraction 0.3 --json
val=$(sed -E 's/.*"tokens": ([0-9]+).*/\1/' "$T/out")
[ "$val" -gt 0 ] && [ "$val" -lt "$all" ] || fail "val split $val tokens of $all"
expect_status 2 "$S/sealora-server" eval --model "$T/straight" --text "$T/text.txt" --split test

# Refusals: an adapter from other base weights, bad options, missing text.
expect_status 0 "$S/sealora-server" init-model --out "$T/m2" --layers 2 --heads 2 --embd 32 \
  --context 32 --vocab 400 --seed 4
cp "$T/m"/tokenizer.json "$T/m"/vocab.json "$T/m"/merges.txt "$T/m2"/
expect_status 1 "$S/sealora-server" eval --model "$T/m2" --adapter "$T/a" --text "$T/text.txt"
expect_grep "SHA-256" "$T/err"
expect_status 2 "$S/sealora-server" train --model "$T/m" --text "$T/text.txt" --out "$T/b" --targets c_proj
expect_grep "unknown LoRA target 'c_proj'" "$T/err"
expect_status 2 "$S/sealora-server" train --model "$T/m" --text "$T/text.txt" --out "$T/b" --full --layers 1
expect_status 1 "$S/sealora-server" train --model "$T/m" --text "$T/text.txt" --out "$T/b" --context 64
expect_grep "context 64" "$T/err"
expect_status 1 "$S/sealora-server" train --model "$T/m" --text "$T/nope.txt" --out "$T/b"
expect_grep "nope.txt" "$T/err"
expect_status 2 "$S/sealora-server" generate --model "$T/m" --prompt x --top-p 0
echo ok
