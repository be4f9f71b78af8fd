# Helpers for end-to-end tests: source it. Each helper fails the test (exit 1)
# with a message that says what was expected.
set -euo pipefail
S=$SEALORA_BIN
T=$E2E_TMP
fail() { echo "FAILED: $*" >&2; exit 1; }
# expect_status N cmd...: runs cmd, fails unless it exits with N.
expect_status() {
  local want=$1; shift
  set +e; "$@" > "$T/out" 2> "$T/err"; local got=$?; set -e
  [ "$got" -eq "$want" ] || { cat "$T/out" "$T/err" >&2; fail "'$*' exited $got, expected $want"; }
}
# expect_grep PATTERN FILE
expect_grep() { grep -qE "$1" "$2" || { cat "$2" >&2; fail "no /$1/ in $2"; }; }
