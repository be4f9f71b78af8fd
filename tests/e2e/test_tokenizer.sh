# The tokenizer commands end to end: train-tokenizer writes a tokenizer that
# tokenize loads; ids round-trip through --decode byte for byte (hard text,
# invalid UTF-8, NUL bytes); ids equal the reference GPT-2 encoder's
# (tests/tools/gpt2_ref.py, Python's `regex` module); errors name the file.
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
for b in sealora-server sealora-client; do
  expect_status 0 "$S/$b" tokenize --help
  expect_grep "usage: $b tokenize" "$T/out"
done
# A corpus we have: the project's own docs and sources.
cat "$root"/README.md "$root"/docs/*.md "$root"/shared/*.[ch] "$root"/tests/*.c > "$T/corpus.txt"
expect_status 0 "$S/sealora-server" train-tokenizer --vocab-size 600 --out "$T/tok" "$T/corpus.txt"
expect_grep "600 tokens" "$T/err"
for f in vocab.json merges.txt tokenizer.json tokenizer_config.json; do
  [ -s "$T/tok/$f" ] || fail "train-tokenizer wrote no $f"
done
# Hard text: every whitespace kind, contractions, digits, accents, CJK, ZWJ
# emoji, combining marks, <|endoftext|>.
printf 'Hello\xc2\x85world \xc2\xa0x\xe2\x80\xa8y\xe3\x80\x80z\xef\xbb\xbfw \xe1\xa0\x8e!\n' > "$T/hard.txt"
printf "I'm sure it's 2024, they'll've 3.14 caf\xc3\xa9 e\xcc\x81 \xe6\x97\xa5\xe6\x9c\xac " >> "$T/hard.txt"
printf '\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 \t\t\n\n  <|endoftext|>end\n' >> "$T/hard.txt"
cat "$T/hard.txt" "$T/corpus.txt" > "$T/text.txt"
expect_status 0 "$S/sealora-server" tokenize --tokenizer "$T/tok" < "$T/text.txt"
cp "$T/out" "$T/ids"
[ "$(wc -l < "$T/ids")" -eq 1 ] || fail "ids are not on one line"
grep -qE '^[0-9]+( [0-9]+)*$' "$T/ids" || fail "ids are not single-space separated"
grep -qw 599 "$T/ids" || fail "<|endoftext|> (599) not recognised"
expect_status 0 "$S/sealora-client" tokenize --tokenizer "$T/tok" --decode < "$T/ids"
cmp "$T/out" "$T/text.txt" || fail "decode(encode(x)) != x"
# --json gives the same ids; --decode reads JSON too.
expect_status 0 "$S/sealora-server" tokenize --tokenizer "$T/tok" --json < "$T/text.txt"
[ "$(tr -d '[],\n' < "$T/out")" = "$(tr -d '\n' < "$T/ids")" ] || fail "--json ids differ"
cp "$T/out" "$T/ids.json"
expect_status 0 "$S/sealora-server" tokenize --tokenizer "$T/tok" --decode < "$T/ids.json"
cmp "$T/out" "$T/text.txt" || fail "--decode of a JSON array differs"
# --no-special: the marker is plain text.
echo -n '<|endoftext|>' > "$T/eot.txt"
expect_status 0 "$S/sealora-server" tokenize --tokenizer "$T/tok" < "$T/eot.txt"
[ "$(cat "$T/out")" = 599 ] || fail "special token: $(cat "$T/out")"
expect_status 0 "$S/sealora-server" tokenize --tokenizer "$T/tok" --no-special < "$T/eot.txt"
grep -qw 599 "$T/out" && fail "--no-special still gave 599"
# Invalid UTF-8 and NUL bytes round-trip.
head -c 20000 /dev/urandom > "$T/bin.dat"
expect_status 0 "$S/sealora-server" tokenize --tokenizer "$T/tok" < "$T/bin.dat"
cp "$T/out" "$T/bin.ids"
expect_status 0 "$S/sealora-server" tokenize --tokenizer "$T/tok" --decode < "$T/bin.ids"
cmp "$T/out" "$T/bin.dat" || fail "random bytes do not round-trip"
# Empty input: an empty line.
expect_status 0 "$S/sealora-server" tokenize --tokenizer "$T/tok" < /dev/null
[ "$(cat "$T/out")" = "" ] || fail "empty input gave ids"
# The reference encoder agrees on every id.
py=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" > /dev/null && "$p" -c 'import regex' 2> /dev/null; then py=$p; break; fi
done
[ -n "$py" ] || fail "python3 with the regex module is needed (make deps installs python3-regex)"
"$py" "$root/tests/tools/gpt2_ref.py" "$T/tok" < "$T/text.txt" > "$T/ref.ids"
cmp "$T/ref.ids" "$T/ids" || fail "ids differ from the reference encoder"
# Errors: usage, missing folder, bad ids, broken files name the file.
expect_status 2 "$S/sealora-server" tokenize
expect_status 2 "$S/sealora-server" tokenize --tokenizer "$T/tok" --bogus
expect_status 1 "$S/sealora-server" tokenize --tokenizer "$T/nowhere" < /dev/null
expect_grep "nowhere" "$T/err"
echo "1 2 999999" > "$T/bad.ids"
expect_status 1 "$S/sealora-server" tokenize --tokenizer "$T/tok" --decode < "$T/bad.ids"
expect_grep "999999 at position 2" "$T/err"
echo "1 x" > "$T/bad.ids"
expect_status 1 "$S/sealora-server" tokenize --tokenizer "$T/tok" --decode < "$T/bad.ids"
expect_grep "id 1" "$T/err"
mkdir -p "$T/broken" && cp "$T/tok/vocab.json" "$T/broken/" && printf 'a b\nzz qq\n' > "$T/broken/merges.txt"
expect_status 1 "$S/sealora-server" tokenize --tokenizer "$T/broken" < /dev/null
expect_grep "broken/merges.txt" "$T/err"
expect_status 2 "$S/sealora-server" train-tokenizer --vocab-size 10 --out "$T/x" "$T/corpus.txt"
expect_status 1 "$S/sealora-server" train-tokenizer --vocab-size 300 --out "$T/x" "$T/missing.txt"
expect_grep "missing.txt" "$T/err"
echo ok
