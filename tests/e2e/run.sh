#!/usr/bin/env bash
# Runs every tests/e2e/test_*.sh against the binaries in $SEALORA_BIN and
# prints a closing "N passed, N failed" line. Each test gets its own
# temporary folder in $E2E_TMP and a time limit (E2E_TIMEOUT, seconds).
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${SEALORA_BIN:?SEALORA_BIN must point at the built binaries}"
export SEALORA_BIN
timeout_s=${E2E_TIMEOUT:-600}
pass=0 fail=0 failed=()
for t in "$here"/test_*.sh; do
  [ -e "$t" ] || continue
  name=$(basename "$t" .sh)
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/sealora-e2e-XXXXXX")
  start=$(date +%s)
  if E2E_TMP="$tmp" timeout --kill-after=10 "$timeout_s" bash "$t" > "$tmp.log" 2>&1; then
    pass=$((pass + 1)); echo "PASS $name ($(( $(date +%s) - start ))s)"
    rm -rf "$tmp" "$tmp.log"
  else
    fail=$((fail + 1)); failed+=("$name"); echo "FAIL $name ($(( $(date +%s) - start ))s); log:"
    sed 's/^/    /' "$tmp.log" | tail -60
    rm -rf "$tmp"
  fi
done
echo "e2e: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
