# sealora-server simulate-secagg: a whole secure-aggregation round in one
# process is exact with dropouts at every phase, prints its figures as text
# and JSON, and refuses bad or inconsistent options with status 2.
. "$(dirname "$0")/lib.sh"
expect_status 0 "$S/sealora-server" simulate-secagg --help
expect_grep "usage: sealora-server simulate-secagg" "$T/out"
expect_status 0 "$S/sealora-server" simulate-secagg --sites 12 --dim 500 --dropout 0.25
expect_grep "^sum exact: yes" "$T/out"
expect_grep "share keys" "$T/out"
expect_grep "bytes per site" "$T/out"
expect_status 0 "$S/sealora-server" simulate-secagg --sites 40 --dim 300 --dropout 0.1 --no-dp \
  --bits 64 --drop-phase input --json
expect_grep '"exact": true' "$T/out"
expect_grep '"survivors": 36' "$T/out"
expect_grep '"masked_input": ' "$T/out"
expect_grep '"bytes_per_site": ' "$T/out"
expect_grep '"dp": null' "$T/out"
expect_status 0 "$S/sealora-server" simulate-secagg --sites 8 --dim 100 --central --json
expect_grep '"mode": "central"' "$T/out"
expect_grep '"noise_multiplier_effective": ' "$T/out"
# Usage errors name the option.
expect_status 2 "$S/sealora-server" simulate-secagg --dim 10
expect_grep "sites" "$T/err"
expect_status 2 "$S/sealora-server" simulate-secagg --sites 10 --dim 10 --bits 16
expect_grep "32 or 64" "$T/err"
expect_status 2 "$S/sealora-server" simulate-secagg --sites 10 --dim x
expect_grep "'x'" "$T/err"
expect_status 2 "$S/sealora-server" simulate-secagg --sites 10 --dim 10 --frobnicate
expect_grep "unknown option" "$T/err"
# Inconsistent settings are refused before any round runs.
expect_status 2 "$S/sealora-server" simulate-secagg --sites 10 --dim 10 --dropout 0.6
expect_grep "secagg config" "$T/err"
expect_status 2 "$S/sealora-server" simulate-secagg --sites 50 --dim 10 --degree 7
expect_grep "even" "$T/err"
echo ok
