# Offsite tuning end to end on a tiny model: emulate, train --emulator (LoRA
# on the adapter blocks only; the adapter names the full model's blocks and
# digest), plugin (merged model loads; the adapter is kept beside it; another
# base, missing blocks and other shapes are refused by name).
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
cat "$root"/README.md "$root"/docs/*.md "$root"/shared/*.h > "$T/corpus.txt"
expect_status 0 "$S/sealora-server" train-tokenizer --vocab-size 300 --out "$T/tok" "$T/corpus.txt"
mk() { # name layers embd seed
  expect_status 0 "$S/sealora-server" init-model --out "$T/$1" --layers "$2" --heads 2 --embd "$3" \
    --context 64 --vocab 300 --seed "$4"
  cp "$T"/tok/* "$T/$1/"
}
mk full 6 32 3; mk other 6 32 4; mk small 4 32 3; mk narrow 6 16 3
expect_status 0 "$S/sealora-server" provision --out "$T/prov" --server 127.0.0.1:7 --sites a
K="$T/prov/server/server.key"
expect_status 0 "$S/sealora-server" emulate --model "$T/full" --out "$T/pkg" --key "$K" --quiet
expect_status 0 "$S/sealora-client" train --emulator "$T/pkg" --text "$T/corpus.txt" --out "$T/lora" \
  --steps 6 --batch 2 --context 32 --targets all --quiet
python3 - "$T/lora/adapter_config.json" "$T/full/model.safetensors" <<'PY'
import json, sys, hashlib
c = json.load(open(sys.argv[1]))
assert c["layers_to_transform"] == [0, 1, 4, 5], c["layers_to_transform"]
want = hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
assert c["sealora_base_sha256"] == want, (c["sealora_base_sha256"], want)
PY
# --emulator excludes --model, --full and --layers
expect_status 2 "$S/sealora-client" train --emulator "$T/pkg" --model "$T/full" --text x --out y
expect_status 2 "$S/sealora-client" train --emulator "$T/pkg" --full --text x --out y
expect_status 2 "$S/sealora-client" train --emulator "$T/pkg" --layers 0 --text x --out y
# the adapter continues on the emulator and on the full model alike
expect_status 0 "$S/sealora-client" train --emulator "$T/pkg" --adapter "$T/lora" --text "$T/corpus.txt" \
  --out "$T/lora2" --steps 2 --batch 2 --context 32 --quiet
expect_status 0 "$S/sealora-server" plugin --model "$T/full" --adapter "$T/lora" --out "$T/merged"
expect_grep "into blocks 0 1 4 5" "$T/err"
expect_status 0 "$S/sealora-server" inspect --model "$T/merged"
expect_grep "6 layers" "$T/out"
[ -s "$T/merged/adapter/adapter_model.safetensors" ] || fail "no adapter beside the merged model"
[ -s "$T/merged/tokenizer.json" ] || fail "no tokenizer in the merged model"
cmp -s "$T/merged/adapter/adapter_model.safetensors" "$T/lora/adapter_model.safetensors" \
  || fail "the adapter kept beside the model differs from the one merged"
expect_status 1 "$S/sealora-server" plugin --model "$T/full" --adapter "$T/lora" --out "$T/merged"
expect_grep "already holds a model" "$T/err"
expect_status 1 "$S/sealora-server" plugin --model "$T/other" --adapter "$T/lora" --out "$T/m2"
expect_grep "trained for a base model with SHA-256" "$T/err"
expect_status 1 "$S/sealora-server" plugin --model "$T/small" --adapter "$T/lora" --out "$T/m3"
expect_grep "names block 4 but the model has 4 blocks" "$T/err"
expect_status 1 "$S/sealora-server" plugin --model "$T/narrow" --adapter "$T/lora" --out "$T/m4"
expect_grep "has shape \[8, 32\], the model needs \[8, 16\]" "$T/err"
expect_status 2 "$S/sealora-server" plugin --model "$T/full"
# distillation: progress, the recipe in the signed manifest, usage errors
expect_status 0 "$S/sealora-server" emulate --model "$T/full" --out "$T/pkgd" --key "$K" \
  --distill "$T/corpus.txt" --steps 20 --batch 2 --seq 32 --kl 0.1
expect_grep "distill: held-out hidden-state MSE" "$T/err"
[ ! -e "$T/pkgd.work" ] || fail "the distillation work folder was left behind"
expect_status 0 "$S/sealora-server" verify-emulator "$T/pkgd" --cert "$T/prov/server/server.crt"
expect_grep "distilled: 20 steps" "$T/out"
grep -q '"kl_weight": 0.1' "$T/pkgd/manifest.json" || fail "no distillation recipe in the manifest"
expect_status 2 "$S/sealora-server" emulate --model "$T/full" --out "$T/x" --key "$K" --steps 5
expect_grep "need --distill" "$T/err"
expect_status 1 "$S/sealora-server" emulate --model "$T/small" --out "$T/x" --key "$K" \
  --distill "$T/corpus.txt" --steps 2
expect_grep "no middle block" "$T/err"
# the offsite table: with nothing dropped the emulator is the full model, so
# rows 1 and 2 agree exactly, and so do 3, 4 and 5 (same LoRA init, batches
# and arithmetic); with a drop the files are written and well formed
head -c 30000 "$T/corpus.txt" > "$T/held.txt"
expect_status 0 "$S/sealora-server" offsite-eval --model "$T/full" --train "$T/corpus.txt" \
  --heldout "$T/held.txt" --out "$T/ev0" --drop 0 --steps 4 --batch 2 --seq 32 --eval-tokens 2000 \
  --json --quiet
python3 - "$T/out" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
p = [r["perplexity"] for r in t["rows"]]
assert len(p) == 5 and all(x > 1 for x in p), p
assert p[0] == p[1], p
assert p[2] == p[3] == p[4], p
assert p[2] < p[0], p   # 4 steps on the domain already help
assert t["emulator_training"]["parameters"] == t["full_training"]["parameters"]
PY
expect_status 0 "$S/sealora-server" offsite-eval --model "$T/full" --train "$T/corpus.txt" \
  --heldout "$T/held.txt" --out "$T/ev" --steps 3 --batch 2 --seq 32 --eval-tokens 2000 \
  --emulator "$T/pkg" --cert "$T/prov/server/server.crt"
expect_grep "full model \+ that LoRA plugged in" "$T/out"
expect_grep "emulator/full" "$T/out"
python3 - "$T/ev" <<'PY'
import json, sys, xml.dom.minidom
d = sys.argv[1]
t = json.load(open(d + "/offsite.json"))
assert t["emulator"]["layer_map"] == [0, 1, 2, 4, 5], t["emulator"]
assert t["lora"]["full_blocks"] == [0, 1, 4, 5]
assert t["emulator_training"]["parameters"] < t["full_training"]["parameters"]
svg = xml.dom.minidom.parse(d + "/offsite.svg")
assert len(svg.getElementsByTagName("rect")) >= 6
a = json.load(open(d + "/lora-emulator/adapter_config.json"))
assert a["layers_to_transform"] == [0, 1, 4, 5]
PY
expect_status 1 "$S/sealora-server" offsite-eval --model "$T/other" --train "$T/corpus.txt" \
  --heldout "$T/held.txt" --out "$T/ev2" --emulator "$T/pkg"
expect_grep "built from a model with SHA-256" "$T/err"
expect_status 2 "$S/sealora-server" offsite-eval --model "$T/full" --train x --heldout y \
  --out "$T/ev3" --emulator "$T/pkg" --drop 0.5
echo ok
