# emulate builds a signed emulator package from a model directory;
# verify-emulator accepts it with the server's certificate or public key and
# refuses a modified file, a wrong signer, an unlisted file and another base
# model, naming the reason. The package's model loads as a model directory.
. "$(dirname "$0")/lib.sh"
expect_status 0 "$S/sealora-server" init-model --out "$T/full" --layers 6 --heads 2 --embd 16 \
  --context 32 --vocab 64 --seed 3
expect_status 0 "$S/sealora-server" init-model --out "$T/other" --layers 6 --heads 2 --embd 16 \
  --context 32 --vocab 64 --seed 4
printf 'tok' > "$T/full/tokenizer.json"
expect_status 0 "$S/sealora-server" provision --out "$T/prov" --server 127.0.0.1:7 --sites a
expect_status 0 "$S/sealora-server" provision --out "$T/prov2" --server 127.0.0.1:7 --sites a
K="$T/prov/server/server.key"; C="$T/prov/server/server.crt"
expect_status 0 "$S/sealora-server" emulate --model "$T/full" --out "$T/pkg" --key "$K" --drop 0.5
expect_grep "5 of 6 blocks kept" "$T/err"
for f in config.json model.safetensors tokenizer.json manifest.json manifest.sig; do
  [ -s "$T/pkg/$f" ] || fail "package lacks $f"
done
expect_status 0 "$S/sealora-server" inspect --model "$T/pkg"
expect_grep "5 layers" "$T/out"
expect_status 0 "$S/sealora-server" verify-emulator "$T/pkg" --cert "$C" --model "$T/full"
expect_grep "0a 1a 2 4a 5a" "$T/out"
expect_grep "matches the given model" "$T/out"
pk=$(openssl pkey -in "$K" -pubout -outform DER | tail -c 32 | od -An -tx1 | tr -d ' \n')
expect_status 0 "$S/sealora-server" verify-emulator "$T/pkg" --pubkey "$pk" --json
expect_grep '"layer_map"' "$T/out"
# --keep and an occupied --out
expect_status 0 "$S/sealora-server" emulate --model "$T/full" --out "$T/pkg2" --key "$K" --keep 3 --top 1 --quiet
expect_status 0 "$S/sealora-server" verify-emulator "$T/pkg2" --cert "$C"
expect_grep "0a 1a 3 5a" "$T/out"
expect_status 1 "$S/sealora-server" emulate --model "$T/full" --out "$T/pkg" --key "$K"
expect_grep "not empty" "$T/err"
expect_status 2 "$S/sealora-server" emulate --model "$T/full" --out "$T/x" --key "$K" --keep 2 --drop 0.5
expect_status 1 "$S/sealora-server" emulate --model "$T/full" --out "$T/x" --key "$K" --keep 1
expect_grep "not a middle block" "$T/err"
# refusals
expect_status 1 "$S/sealora-server" verify-emulator "$T/pkg" --cert "$T/prov2/server/server.crt"
expect_grep "manifest.sig: signature does not verify" "$T/err"
expect_status 1 "$S/sealora-server" verify-emulator "$T/pkg" --cert "$C" --model "$T/other"
expect_grep "base_model_sha256 .* is not the expected" "$T/err"
cp -r "$T/pkg" "$T/t1"; printf 'x' >> "$T/t1/config.json"
expect_status 1 "$S/sealora-server" verify-emulator "$T/t1" --cert "$C"
expect_grep "config.json" "$T/err"
cp -r "$T/pkg" "$T/t2"; printf 'x' > "$T/t2/notes.txt"
expect_status 1 "$S/sealora-server" verify-emulator "$T/t2" --cert "$C"
expect_grep "notes.txt' is not listed" "$T/err"
cp -r "$T/pkg" "$T/t3"; sed -i 's/"ratio": 0.5/"ratio": 0.25/' "$T/t3/manifest.json"
expect_status 1 "$S/sealora-server" verify-emulator "$T/t3" --cert "$C"
expect_grep "signature does not verify" "$T/err"
expect_status 2 "$S/sealora-server" verify-emulator "$T/pkg" --pubkey 1234
expect_status 2 "$S/sealora-server" verify-emulator "$T/pkg"
echo ok
