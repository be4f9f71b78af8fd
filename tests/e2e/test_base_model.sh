# The shipped base model (models/base): loads in both binaries with the
# shape its model card gives, stays within 40 MB of F16, predicts English
# far better than a uniform guess (ln 8192 = 9.01 nats) on text it never
# saw, and generates reproducibly.
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
m=$root/models/base
for f in config.json model.safetensors tokenizer.json vocab.json merges.txt README.md; do
  [ -s "$m/$f" ] || fail "models/base/$f is missing"
done
[ "$(stat -c %s "$m/model.safetensors")" -le $((40 * 1024 * 1024)) ] || fail "weights exceed 40 MB"
expect_status 0 "$S/sealora-client" inspect --model "$m"
expect_grep "8 layers, 5 heads, width 320, MLP 1280, context 256, vocabulary 8192" "$T/out"
expect_grep "^dtype: +F16" "$T/out"
# Plain English written for this test, so never seen in pretraining (the
# shipped model gives 4.90 nats/token).
cat > "$T/para.txt" <<'TEXT'
The people of the town went down to the river in the morning, and they carried water back to their
houses. The man said unto his son, Go and see whether the field is ready, for the time of the harvest
is near. A word is a sound or a group of letters that has a meaning. To open a file, give its name
on the command line; the program reads the file and prints each line to the standard output.
TEXT
expect_status 0 "$S/sealora-server" eval --model "$m" --text "$T/para.txt" --json
nll=$(sed -E 's/.*"nll": ([0-9.]+).*/\1/' "$T/out")
awk -v n="$nll" 'BEGIN { exit !(n < 6.0) }' || fail "NLL $nll on plain English is not below 6.0"
expect_status 0 "$S/sealora-server" generate --model "$m" --prompt "The" --max-tokens 16 --seed 2
cp "$T/out" "$T/g1"
expect_status 0 "$S/sealora-client" generate --model "$m" --prompt "The" --max-tokens 16 --seed 2
cmp "$T/out" "$T/g1" || fail "generate differs between runs with one seed"
echo ok
