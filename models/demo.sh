#!/usr/bin/env bash
# models/demo.sh - what `make demo` runs (README.md): the whole job on the
# embedded base model (models/base) and the Linux kernel documentation as the
# private domain (models/recipe/corpus.sh), on loopback, on one machine:
#   1. the demo domain (installs linux-doc-6.1 as root; ~10 s, kept after),
#   2. a fresh deployment: CA, server and three site kits,
#   3. the signed emulator package of the base model,
#   4. the server and three site agents, each with its own private shard,
#      for a few rounds with secure aggregation and distributed DP,
#   5. the plugged-in model against the base model on held-out kernel docs,
#      then `offsite-eval`'s table (the same LoRA tuned centrally on one
#      site's data, emulator and full model), the privacy budget spent and
#      the auditor's verdict.
# Re-runnable: everything but the corpus is made again under OUT/run.
# Knobs (environment): DEMO_ROUNDS, DEMO_STEPS, DEMO_BATCH, DEMO_SEQ, DEMO_LR,
# DEMO_RANK, DEMO_NOISE, DEMO_EPSILON, DEMO_EVAL_FILES, DEMO_OFFSITE_STEPS, DEMO_PORT.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/build/demo}")
bin=${SEALORA_BIN:-$root/bin}
base=$(realpath -m "${DEMO_BASE:-$root/models/base}")
corpus=$(realpath -m "${DEMO_CORPUS:-$root/build/corpus}")
rounds=${DEMO_ROUNDS:-6}
steps=${DEMO_STEPS:-12}
batch=${DEMO_BATCH:-8}
seq=${DEMO_SEQ:-128}
lr=${DEMO_LR:-2e-3}
rank=${DEMO_RANK:-8}
noise=${DEMO_NOISE:-0.005}
epsilon=${DEMO_EPSILON:-1e6}
eval_files=${DEMO_EVAL_FILES:-12}
offsite_steps=${DEMO_OFFSITE_STEPS:-40}
t0=$(date +%s)
say() { printf '\n== %s (%ds)\n' "$*" $(( $(date +%s) - t0 )); }

for f in config.json model.safetensors; do
  [ -s "$base/$f" ] || { echo "demo: $base/$f is missing: the embedded base model is not in this checkout" >&2; exit 1; }
done
if [ ! -d "$corpus/domain/site-a" ]; then
  say "the demo domain: Linux kernel documentation (models/recipe/corpus.sh)"
  DOMAIN_ONLY=1 bash "$root/models/recipe/corpus.sh" "$corpus"
fi

run=$out/run
rm -rf "$run"
mkdir -p "$run"
# A held-out sample for the evaluation table (the whole held-out set takes minutes per model).
mkdir -p "$run/heldout"
mapfile -t held < <(find "$corpus/domain/heldout" -type f | sort)
for f in "${held[@]:0:$eval_files}"; do
  rel=${f#"$corpus"/domain/heldout/}
  cp "$f" "$run/heldout/${rel//\//_}"
done

pick_port() {
  local p
  for _ in $(seq 50); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "demo: no free port" >&2; exit 1
}
port=${DEMO_PORT:-$(pick_port)}

say "provisioning a CA, the server and three sites (a, b, c) on 127.0.0.1:$port"
"$bin/sealora-server" provision --out "$run/deploy" --server "127.0.0.1:$port" --sites a,b,c
say "building the signed emulator package of $base"
"$bin/sealora-server" emulate --model "$base" --out "$run/emulator" --key "$run/deploy/server/server.key"
cat >> "$run/deploy/server/server.ini" <<EOF

[run]
model = $base
emulator = $run/emulator
eval_data = $run/heldout
eval_tokens = 16384
sites = a,b,c
rounds = $rounds
local_steps = $steps
batch = $batch
seq = $seq
lr = $lr
lora_rank = $rank
lora_alpha = $(( 2 * rank ))
lora_targets = c_attn,attn.c_proj
clip = 1
noise_multiplier = $noise
dropout = 0.3
epsilon = $epsilon
delta = 1e-5
train_timeout = 900
phase_timeout = 60
linger = 5
EOF

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
say "starting the server and three site agents (logs in $run/*.log)"
# Four processes share the cores: one BLAS thread each keeps them from fighting.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$bin/sealora-server" run --config "$run/deploy/server/server.ini" --state "$run/state" \
  2> >(tee "$run/server.log" | grep --line-buffered -v ' channel: ' >&2) &
spid=$!; pids+=("$spid")
for _ in $(seq 600); do
  grep -q "listening on" "$run/server.log" 2>/dev/null && break
  kill -0 "$spid" 2>/dev/null || { echo "demo: the server did not start (see $run/server.log)" >&2; exit 1; }
  sleep 0.1
done
for s in a b c; do
  "$bin/sealora-client" run --kit "$run/deploy/sites/$s" --data "$corpus/domain/site-$s" --quiet \
    --give-up 600 2> "$run/site-$s.log" &
  pids+=("$!")
done
wait "$spid" || { echo "demo: the server failed (see $run/server.log)" >&2; exit 1; }
for p in "${pids[@]:1}"; do wait "$p" || { echo "demo: a site agent failed; see $run/site-*.log" >&2; exit 1; }; done
trap - EXIT

say "offsite table: perplexity on held-out kernel documentation ($eval_files files)"
ev() { "$bin/sealora-server" eval --model "$1" ${2:+--adapter "$2"} --text "$run/heldout" --json \
         --cache "$run/heldout-$3.tokcache" --context "$seq" 2> /dev/null \
       | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.3f %.2f %d" % (d["nll"], d["ppl"], d["tokens"]))'; }
read -r nb pb tb <<< "$(ev "$base" "" base)"
read -r ne pe _ <<< "$(ev "$run/emulator" "" emu)"
read -r nm pm _ <<< "$(ev "$run/state/merged" "" merged)"
printf '%-46s %10s %10s\n' "model" "NLL" "ppl"
printf '%-46s %10s %10s\n' "base model (full, what the owner keeps)" "$nb" "$pb"
printf '%-46s %10s %10s\n' "emulator alone (what the sites receive)" "$ne" "$pe"
printf '%-46s %10s %10s\n' "base + federated adapter (plugged in)" "$nm" "$pm"
python3 -c 'import sys; b,m=map(float,sys.argv[1:]); print("plugged-in model vs base: %+.1f%% perplexity" % (100*(2.718281828**(m-b)-1)))' "$nb" "$nm"
echo "($tb tokens; adapter in PEFT layout: $run/state/adapter; merged model: $run/state/merged)"

if "$bin/sealora-server" offsite-eval --help > /dev/null 2>&1; then
  say "offsite table (sealora-server offsite-eval: one site's data tuned centrally, for comparison)"
  "$bin/sealora-server" offsite-eval --model "$base" --emulator "$run/emulator" \
    --cert "$run/deploy/server/server.crt" --train "$corpus/domain/site-a" --heldout "$run/heldout" \
    --out "$run/offsite" --steps "$offsite_steps" --batch "$batch" --seq "$seq" --lora-r "$rank" \
    --lora-alpha $(( 2 * rank )) --targets c_attn,attn.c_proj --lr "$lr" --eval-tokens 0 --quiet
fi

say "privacy budget and audit verdict (sealora-audit, from the log and the sites' receipts)"
"$bin/sealora-audit" report "$run/state" --cert "$run/deploy/server/server.crt" \
  --receipts "$run/deploy/sites/a/state/receipts" --receipts "$run/deploy/sites/b/state/receipts" \
  --receipts "$run/deploy/sites/c/state/receipts"
say "demo done"
