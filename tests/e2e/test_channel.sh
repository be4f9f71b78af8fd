# Provisioning, enrolment, renewal and revocation, and the authenticated
# channel between real processes on loopback: handshakes that succeed, and
# ones refused with a clear cause (other CA, revoked, expired, wrong key,
# group-readable key); echoes and a chunked download that resumes.
. "$(dirname "$0")/lib.sh"

pick_port() {
  local p
  for _ in $(seq 50); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  fail "no free port"
}
PORT=$(pick_port)
OUT=$T/deploy
ECHO_PID=
cleanup() { [ -n "$ECHO_PID" ] && kill "$ECHO_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# Usage errors and name validation come first and create nothing.
expect_status 2 "$S/sealora-server" provision --out "$OUT"
expect_status 2 "$S/sealora-server" provision --out "$OUT" --server 127.0.0.1:$PORT --sites a,Bad
expect_grep "invalid site name 'Bad'" "$T/err"
expect_status 2 "$S/sealora-server" provision --out "$OUT" --server 127.0.0.1:$PORT --sites a,a
expect_status 2 "$S/sealora-server" provision --out "$OUT" --server 127.0.0.1:99999 --sites a
[ ! -e "$OUT" ] || fail "a refused provision left $OUT behind"

expect_status 0 "$S/sealora-server" provision --out "$OUT" --server 127.0.0.1:$PORT --sites a,b,c
for f in ca/ca.crt ca/ca.key ca/crl.pem ca/index.json server/server.crt server/server.key \
         server/server.ini server/ca.crt server/crl.pem sites/a/site.crt sites/a/site.key \
         sites/a/ca.crt sites/a/client.ini; do
  [ -f "$OUT/$f" ] || fail "missing $OUT/$f"
done
for k in ca/ca.key server/server.key sites/a/site.key sites/b/site.key sites/c/site.key; do
  [ "$(stat -c %a "$OUT/$k")" = 600 ] || fail "$k has mode $(stat -c %a "$OUT/$k"), not 600"
done
expect_grep "^address = 127.0.0.1:$PORT$" "$OUT/sites/a/client.ini"
expect_grep "^name = a$" "$OUT/sites/a/client.ini"
# Never a silent new CA.
expect_status 1 "$S/sealora-server" provision --out "$OUT" --server 127.0.0.1:$PORT --sites d
expect_grep "already holds a CA" "$T/err"

head -c 3000000 /dev/urandom > "$T/emu.bin"
"$S/sealora-server" channel-echo --config "$OUT/server/server.ini" --offer "emulator=$T/emu.bin" \
  --seconds 500 2> "$T/echo.log" &
ECHO_PID=$!
for _ in $(seq 200); do
  grep -q "listening on" "$T/echo.log" && break
  kill -0 "$ECHO_PID" 2>/dev/null || { cat "$T/echo.log" >&2; fail "channel-echo exited"; }
  sleep 0.1
done
grep -q "listening on" "$T/echo.log" || fail "channel-echo did not start"

# Success, with echoes checked byte for byte.
expect_status 0 "$S/sealora-client" channel-ping --config "$OUT/sites/a/client.ini" --count 5 --bytes 70000
expect_grep "authenticated to 127.0.0.1:$PORT as site 'a'" "$T/out"
expect_grep "5 echoes of 70000 bytes" "$T/out"

# Chunked download, interrupted after 1 MiB, then resumed and verified.
expect_status 0 "$S/sealora-client" channel-ping --config "$OUT/sites/a/client.ini" --count 0 \
  --fetch emulator --to "$T/got.bin" --stop-after 1048576
expect_grep "stopped at byte 1048576 of 3000000" "$T/out"
[ -f "$T/got.bin.part" ] && [ -f "$T/got.bin.part.info" ] || fail "no partial download left"
expect_status 0 "$S/sealora-client" channel-ping --config "$OUT/sites/a/client.ini" --count 0 \
  --fetch emulator --to "$T/got.bin"
expect_grep "resumed 'emulator' at byte 1048576" "$T/out"
cmp "$T/emu.bin" "$T/got.bin" || fail "downloaded file differs"
expect_status 1 "$S/sealora-client" channel-ping --config "$OUT/sites/a/client.ini" --count 0 \
  --fetch missing.bin --to "$T/x.bin"
expect_grep "no file 'missing.bin'" "$T/err"

# Revocation takes effect at the next handshake, without a restart.
expect_status 0 "$S/sealora-client" channel-ping --config "$OUT/sites/b/client.ini" --count 1
expect_status 0 "$S/sealora-server" revoke --out "$OUT" b
expect_status 1 "$S/sealora-client" channel-ping --config "$OUT/sites/b/client.ini" --count 1
expect_grep "certificate of 'b' is revoked" "$T/err"
expect_grep "refused \(denied\).*'b' is revoked" "$T/echo.log"
expect_status 0 "$S/sealora-client" channel-ping --config "$OUT/sites/c/client.ini" --count 1

# A kit from another CA (another deployment, or a rotated CA): both CAs named.
expect_status 0 "$S/sealora-server" provision --out "$T/other" --server 127.0.0.1:$PORT --sites x
expect_status 1 "$S/sealora-client" channel-ping --config "$T/other/sites/x/client.ini" --count 1
expect_grep "issued by 'sealora CA [0-9a-f]{16}' but this side trusts 'sealora CA [0-9a-f]{16}'.*rotated" "$T/err"

# An expired certificate.
expect_status 0 "$S/sealora-server" provision --out "$OUT" --add-site old --start 2020-01-01 --days 1
expect_status 1 "$S/sealora-client" channel-ping --config "$OUT/sites/old/client.ini" --count 1
expect_grep "certificate of 'old' expired on 2020-01-02" "$T/err"

# A wrong private key, and a key file others can read.
expect_status 0 "$S/sealora-client" enroll --name spare --out "$T/spare"
cp "$OUT/sites/c/site.key" "$T/c.key"
cp "$T/spare/site.key" "$OUT/sites/c/site.key"
expect_status 1 "$S/sealora-client" channel-ping --config "$OUT/sites/c/client.ini" --count 1
expect_grep "site.key does not belong to the certificate" "$T/err"
cp "$T/c.key" "$OUT/sites/c/site.key"
chmod 644 "$OUT/sites/c/site.key"
expect_status 1 "$S/sealora-client" channel-ping --config "$OUT/sites/c/client.ini" --count 1
expect_grep "accessible by group or others \(mode 0644\)" "$T/err"
chmod 600 "$OUT/sites/c/site.key"
expect_status 0 "$S/sealora-client" channel-ping --config "$OUT/sites/c/client.ini" --count 1

# A site that keeps its key at home: enroll, the operator signs, the site connects.
expect_status 0 "$S/sealora-client" enroll --name home --out "$T/home"
[ "$(stat -c %a "$T/home/site.key")" = 600 ] || fail "enrolled key is not 0600"
expect_status 1 "$S/sealora-client" enroll --name home --out "$T/home"
expect_grep "already exists" "$T/err"
expect_status 0 "$S/sealora-server" provision --out "$OUT" --sign "$T/home/site.csr"
[ ! -e "$OUT/sites/home/site.key" ] || fail "the operator's kit holds a key for an enrolled site"
cp "$OUT/sites/home/site.crt" "$OUT/sites/home/ca.crt" "$OUT/sites/home/client.ini" "$T/home/"
expect_status 0 "$S/sealora-client" channel-ping --config "$T/home/client.ini" --count 1
expect_grep "as site 'home'" "$T/out"
expect_status 1 "$S/sealora-server" provision --out "$OUT" --sign "$T/home/site.csr"
expect_grep "already exists" "$T/err"

# Renewal: a new certificate for the same key, same CA.
expect_status 0 "$S/sealora-server" renew --out "$OUT" a --days 30
expect_grep "renewed 'a'" "$T/out"
[ "$(grep -c '"name": "a"' "$OUT/ca/index.json")" = 2 ] || fail "index does not list the renewal"
expect_status 0 "$S/sealora-client" channel-ping --config "$OUT/sites/a/client.ini" --count 1
expect_status 1 "$S/sealora-server" renew --out "$OUT" b
expect_grep "only revoked certificates" "$T/err"

# Configuration errors name the file.
printf '[server]\nlisten = 127.0.0.1:1\ncolour = red\n' > "$T/bad.ini"
expect_status 1 "$S/sealora-server" channel-echo --config "$T/bad.ini"
expect_grep "bad.ini:3: unknown key 'colour'" "$T/err"

# The server survived every refusal and shuts down cleanly.
kill -TERM "$ECHO_PID"
wait "$ECHO_PID" || fail "channel-echo exited with status $?"
ECHO_PID=
expect_grep "refused" "$T/echo.log"
echo ok
