# The federated runtime with real processes on loopback: a server and three
# site agents on a tiny model, secure aggregation and DP on. Checks that
# every released round's unmasked sum equals the sum of the contributors'
# quantised updates bit for bit (the agents and server dump them with
# --dump), that the global adapter changes and the evaluation loss drops,
# that the audit log and the sites' receipts verify; a site SIGKILLed after
# sending its masked input (the round completes, exactly); the server
# SIGKILLed mid-round and restarted (it resumes from the last completed
# round and charges the abandoned round's budget); budget exhaustion (the
# server stops before overspending and says why); a tampered emulator
# package, a revoked site and a server from another CA refused.
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
export OMP_NUM_THREADS=1 # four processes share the machine's cores

pick_port() {
  local p
  for _ in $(seq 50); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  fail "no free port"
}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
# wait_for PATTERN FILE SECONDS
wait_for() {
  for _ in $(seq $(( $3 * 10 ))); do grep -qE "$1" "$2" 2>/dev/null && return 0; sleep 0.1; done
  cat "$2" >&2; fail "no /$1/ in $2 after $3 s"
}
# exact_sums DIR ROUND...: each round's unmasked sum equals the modular sum of the dumped updates.
exact_sums() {
  local d=$1; shift
  python3 - "$d" "$@" <<'EOF' || fail "an unmasked sum differs from the sum of the updates"
import array, glob, sys
d = sys.argv[1]
for r in sys.argv[2:]:
    s = array.array('I', open(f'{d}/round-{r}.sum', 'rb').read())
    acc = [0] * len(s)
    xs = sorted(glob.glob(f'{d}/round-{r}-*.x'))
    assert xs, f'no updates dumped for round {r}'
    for f in xs:
        x = array.array('I', open(f, 'rb').read())
        assert len(x) == len(s)
        acc = [(p + q) & 0xffffffff for p, q in zip(acc, x)]
    if list(s) != acc:
        sys.exit(f'round {r}: sum differs from {len(xs)} updates')
    print(f'round {r}: sum of {len(xs)} masked inputs exact')
EOF
}

# A tiny model whose tokenizer is trained on the project's text; the sites'
# private text is the project's C sources, split three ways; the server
# evaluates on other C sources.
cat "$root"/README.md "$root"/docs/*.md "$root"/shared/*.[ch] > "$T/corpus.txt"
expect_status 0 "$S/sealora-server" train-tokenizer --vocab-size 400 --out "$T/tok" "$T/corpus.txt"
expect_status 0 "$S/sealora-server" init-model --out "$T/model" --layers 6 --heads 2 --embd 32 \
  --context 64 --vocab 400 --seed 3
cp "$T/tok/tokenizer.json" "$T/model/"
mkdir -p "$T/data/a" "$T/data/b" "$T/data/c" "$T/heldout"
cp "$root"/shared/[a-f]*.c "$T/data/a/"; cp "$root"/shared/[g-p]*.c "$T/data/b/"
cp "$root"/shared/[q-z]*.c "$T/data/c/"; cp "$root"/crypto/dp.c "$root"/crypto/secagg_client.c "$T/heldout/"

PORT=$(pick_port)
D=$T/deploy
expect_status 0 "$S/sealora-server" provision --out "$D" --server 127.0.0.1:$PORT --sites a,b,c
cp "$D/server/server.ini" "$T/base.ini"
# The sites tune a signed emulator (5 of the 6 blocks, adapter blocks 0, 1, 4, 5).
expect_status 0 "$S/sealora-server" emulate --model "$T/model" --out "$T/pkg" --key "$D/server/server.key"
run_ini() { # run_ini FILE ROUNDS EPSILON NOISE_MULTIPLIER
  { cat "$T/base.ini"; cat <<EOF
[run]
model = $T/model
emulator = ${EMULATOR:-$T/pkg}
eval_data = $T/heldout
sites = a,b,c
rounds = $2
local_steps = 8
batch = 4
seq = 32
lr = 0.01
lora_targets = all
clip = 1
noise_multiplier = $4
dropout = 0.3
optimizer = ${OPTIMIZER:-fedavg}
epsilon = $3
wait_sites = 30
train_timeout = 30
phase_timeout = 8
linger = 3
EOF
  } > "$1"
}
run_ini "$D/server/server.ini" 5 1000000 0.005

# Usage and configuration errors.
expect_status 2 "$S/sealora-server" run --config "$D/server/server.ini"
expect_status 2 "$S/sealora-client" run --kit "$D/sites/a"
run_ini "$D/server/bad.ini" 5 100 1; echo "roundz = 3" >> "$D/server/bad.ini"
expect_status 1 "$S/sealora-server" run --config "$D/server/bad.ini" --state "$T/x"
expect_grep "unknown key 'roundz' in section \[run\]" "$T/err"

start_server() { # start_server LOG [extra args]
  local log=$1; shift
  "$S/sealora-server" run --config "$D/server/server.ini" --dump "$T/dumps" "$@" 2> "$log" &
  SPID=$!; PIDS+=("$SPID")
  wait_for "listening on" "$log" 60
}
start_client() { # start_client NAME [extra args]
  local n=$1; shift
  "$S/sealora-client" run --kit "$D/sites/$n" --data "$T/data/$n" --timeout 15 --max-backoff 2 \
    --give-up 120 --quiet --dump "$T/dumps" "$@" 2>> "$T/client-$n.log" &
  eval "CPID_$n=$!"; PIDS+=("$!")
}

# ---- rounds 1-2; site c is killed after sending its masked input in round 2
start_server "$T/server1.log" --state "$T/state"
start_client a; start_client b; start_client c --stall-after-masked 2
wait_for "round 2: stalling on purpose" "$T/client-c.log" 120
kill -9 "$CPID_c"
echo "killed site c after its masked input of round 2"
wait_for "round 2 released" "$T/server1.log" 60
expect_grep "round 2 released: 3 sites in, 0 dropped, 2 answered unmasking" "$T/server1.log"
exact_sums "$T/dumps" 1 2
# ---- the server is killed in round 3 once the masked inputs are in; site c
# (back, and stalling after its masked input) holds the round open until then
start_client c --stall-after-masked 3
wait_for "round 3: phase unmask" "$T/server1.log" 120
wait_for "round 3: stalling on purpose" "$T/client-c.log" 60
# The restarted site kept its verified download instead of fetching it again.
expect_grep "model.safetensors already in the cache \(digest verified\)" "$T/client-c.log"
kill -9 "$SPID"
echo "killed the server in round 3"
grep -q "round 3 released" "$T/server1.log" && fail "round 3 finished before the server was killed"
kill -9 "$CPID_c"
start_client c
# A receipt the server had not delivered when it died (site a's of round 2,
# moved back into the server's outbox, site a restarted without it) is
# delivered by the restarted server.
kill -9 "$CPID_a"
mkdir -p "$T/state/outbox/a"
mv "$D/sites/a/state/receipts/receipt-000002.json" "$T/state/outbox/a/"
start_client a
# An outbox entry that cannot be read is reported and skipped, not fatal.
mkdir -p "$T/state/outbox/b/receipt-000003.json"
[ "$("$S/sealora-server" status --state "$T/state" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_completed"])')" = 2 ] \
  || fail "status does not show round 2 as the last completed"
expect_status 0 "$S/sealora-server" status --state "$T/state"
expect_grep "server: not running" "$T/out"
cp "$T/state/checkpoint.bin" "$T/ckpt-round2.bin"
start_server "$T/server2.log" --state "$T/state"
expect_grep "round 3 was in flight at a crash: abandoned, its budget charged" "$T/server2.log"
expect_grep "resumed from .*: last completed round 2, next round 4" "$T/server2.log"
expect_grep "site a: 1 receipt not yet acknowledged \(rounds 2..2\)" "$T/server2.log"
wait_for "receipt of round 3 for site b not delivered" "$T/server2.log" 60
for _ in $(seq 300); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.5; done
kill -0 "$SPID" 2>/dev/null && fail "the server did not finish"
wait "$SPID" || fail "the server exited with an error"
expect_grep "round 5 released" "$T/server2.log"
expect_grep "all 5 rounds done" "$T/server2.log"
exact_sums "$T/dumps" 4 5
for n in a b c; do wait "$(eval echo \$CPID_$n)" || fail "site $n exited with an error"; done
expect_grep "the server ended the job" "$T/client-a.log"
expect_grep "emulator package verified: 5 of the full model's 6 blocks" "$T/client-a.log"
[ -s "$T/state/merged/model.safetensors" ] || fail "no merged model"

# Budget: the epsilon after round 5 counts the abandoned round 3 (four
# rounds charged, three released after it).
e2=$(sed -n 's/.*round 2 released.*epsilon \([0-9.e+]*\) of.*/\1/p' "$T/server1.log")
e4=$(sed -n 's/.*round 4 released.*epsilon \([0-9.e+]*\) of.*/\1/p' "$T/server2.log")
charged=$(sed -n 's/.*budget charged (epsilon now \([0-9.e+]*\)).*/\1/p' "$T/server2.log")
python3 -c "import sys; e2,c,e4=map(float,sys.argv[1:]); assert e2 < c < e4, (e2,c,e4)" "$e2" "$charged" "$e4" \
  || fail "the abandoned round was not charged: $e2 / $charged / $e4"
# The global adapter changed and the evaluation loss dropped: the final
# adapter is better than the initial one, and by more than 0.01 nats at its
# best round after the restart. (One round's loss moves by a few hundredths
# with which sites made it and the rounding of the secure sum, so a single
# round is not held to the margin.)
l0=$(sed -n 's/.*evaluation text: loss \([0-9.]*\).*/\1/p' "$T/server1.log")
l4=$(sed -n 's/.*round 4 released.*eval loss \([0-9.]*\).*/\1/p' "$T/server2.log")
l5=$(sed -n 's/.*round 5 released.*eval loss \([0-9.]*\).*/\1/p' "$T/server2.log")
python3 -c "import sys; a,b,c=map(float,sys.argv[1:]); assert c < a and min(b, c) < a - 0.01, (a,b,c)" \
  "$l0" "$l4" "$l5" || fail "evaluation loss did not drop: $l0 -> $l4, $l5"
[ -s "$T/state/adapter/adapter_model.safetensors" ] || fail "no exported adapter"
# The log and every receipt verify.
expect_status 0 "$S/sealora-audit" verify "$T/state" --cert "$D/server/server.crt" \
  --receipts "$D/sites/a/state/receipts" --receipts "$D/sites/b/state/receipts" \
  --receipts "$D/sites/c/state/receipts"
expect_grep "result +OK" "$T/out"
# The auditor charges the abandoned round 3 from the log alone (its planned
# worst case), as the server did.
expect_grep "rounds +[0-9]+ closed, 4 released, 1 abandoned" "$T/out"
[ -f "$D/sites/a/state/receipts/receipt-000005.json" ] || fail "site a has no receipt for round 5"
[ -f "$D/sites/a/state/receipts/receipt-000002.json" ] || fail "the outbox receipt was not delivered"
[ -z "$(find "$T/state/outbox" -type f)" ] || fail "receipts left unacknowledged in the outbox"

# ---- budget exhaustion: room for one round only (FedAdam, JSON operator lines)
OPTIMIZER=fedadam run_ini "$D/server/server.ini" 5 1500 0.02
rm -rf "$T/dumps"
start_server "$T/server3.log" --state "$T/state-budget" --json
for n in a b c; do start_client $n --state "$T/cstate-$n"; done
for _ in $(seq 300); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.5; done
wait "$SPID" || fail "the server exited with an error"
expect_grep "round 1 released" "$T/server3.log"
expect_grep "privacy budget: round 2 would bring epsilon to [0-9.e+]+, above the budget of 1500" "$T/server3.log"
expect_grep '^\{.*"event":"budget".*\}$' "$T/server3.log"
expect_grep '"event":"released".*"sites_in":3' "$T/server3.log"
expect_status 0 "$S/sealora-audit" verify "$T/state-budget" --cert "$D/server/server.crt"
expect_grep "budget +1500: held" "$T/out"
for n in a b c; do wait "$(eval echo \$CPID_$n)" || fail "site $n exited with an error"; done

# ---- a tampered emulator package is refused by the sites
cp -r "$T/pkg" "$T/pkg-bad"
size=$(stat -c %s "$T/pkg-bad/model.safetensors")
printf '\x01' | dd of="$T/pkg-bad/model.safetensors" bs=1 seek=$(( size - 7 )) conv=notrunc 2>/dev/null
EMULATOR=$T/pkg-bad run_ini "$D/server/server.ini" 5 1500 0.02
start_server "$T/server5.log" --state "$T/state-tampered"
expect_status 1 "$S/sealora-client" run --kit "$D/sites/a" --data "$T/data/a" --timeout 10 \
  --quiet --state "$T/cstate-tampered"
expect_grep "emulator package refused.*model.safetensors" "$T/err"
kill "$SPID"; wait "$SPID" || true
run_ini "$D/server/server.ini" 5 1500 0.02

# ---- a revoked site is refused with a clear message
expect_status 0 "$S/sealora-server" revoke --out "$D" c
cp "$D/ca/crl.pem" "$D/server/crl.pem"
start_server "$T/server4.log" --state "$T/state-revoked"
# A site of another deployment (another CA) refuses this server's certificate.
expect_status 0 "$S/sealora-server" provision --out "$T/other" --server 127.0.0.1:$PORT --sites a
expect_status 1 "$S/sealora-client" run --kit "$T/other/sites/a" --data "$T/data/a" --timeout 10 \
  --quiet --state "$T/cstate-other"
expect_grep "certificate of 'server' was issued by" "$T/err"
expect_status 1 "$S/sealora-client" run --kit "$D/sites/c" --data "$T/data/c" --timeout 10 \
  --quiet --state "$T/cstate-revoked"
expect_grep "revoked" "$T/err"
kill "$SPID"; wait "$SPID" || true
echo ok
