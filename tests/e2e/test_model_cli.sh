# init-model writes a Hugging Face model directory that inspect (both
# binaries) describes; broken directories are refused with the file named.
. "$(dirname "$0")/lib.sh"
expect_status 0 "$S/sealora-server" init-model --out "$T/m" --layers 3 --heads 2 --embd 16 \
  --context 32 --vocab 50 --seed 7 --dtype BF16
[ -s "$T/m/config.json" ] && [ -s "$T/m/model.safetensors" ] || fail "model files missing"
grep -q '"model_type": "gpt2"' "$T/m/config.json" || fail "config.json is not HF's"
for b in sealora-server sealora-client; do
  expect_status 0 "$S/$b" inspect --model "$T/m"
  expect_grep "3 layers, 2 heads, width 16, MLP 64, context 32, vocabulary 50" "$T/out"
  expect_grep "^dtype: +BF16" "$T/out"
  expect_grep "^BLAS: +core=" "$T/out"
done
expect_status 0 "$S/sealora-server" inspect --model "$T/m" --json
expect_grep '"n_layer": 3' "$T/out"
expect_grep '"threads": [0-9]+' "$T/out"
# usage errors
expect_status 2 "$S/sealora-server" inspect
expect_status 2 "$S/sealora-server" init-model --out "$T/x" --layers 0
expect_grep "layers '0' must be an integer" "$T/err"
expect_status 1 "$S/sealora-server" init-model --out "$T/x" --heads 5 --embd 16
# a truncated weights file names the file
head -c 100 "$T/m/model.safetensors" > "$T/m/t" && mv "$T/m/t" "$T/m/model.safetensors"
expect_status 1 "$S/sealora-server" inspect --model "$T/m"
expect_grep "model.safetensors" "$T/err"
rm "$T/m/config.json"
expect_status 1 "$S/sealora-client" inspect --model "$T/m"
expect_grep "config.json" "$T/err"
echo ok
