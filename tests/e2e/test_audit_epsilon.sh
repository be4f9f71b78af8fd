# `sealora-audit epsilon` reproduces published accountant values and refuses
# bad input with a usage error naming the flag.
. "$(dirname "$0")/lib.sh"
A="$S/sealora-audit"
# Opacus accountants_test.py: sigma 1.5, q 0.04, 2250 steps, delta 1e-5 -> 7.32911117143.
expect_status 0 "$A" epsilon --q 0.04 --sigma 1.5 --steps 2250 --delta 1e-5 --orders opacus --json
expect_grep '"epsilon":7\.329111171' "$T/out"
expect_grep '"order":3\.9' "$T/out"
expect_grep '"epsilon_classic":' "$T/out"
# The default fine grid is at least as tight as Opacus's.
expect_status 0 "$A" epsilon --q 0.04 --sigma 1.5 --steps 2250
expect_grep '^epsilon 7\.3291[01] at delta 1e-05' "$T/out"
# Opacus rdp.py docstring: two heterogeneous rounds, orders 2..32 -> (0.336, 23).
printf '# q sigma steps\n1e-5 1.0 10\n1e-4 3.0 4\n' > "$T/sched.txt"
expect_status 0 "$A" epsilon --schedule "$T/sched.txt" --orders "$(seq -s, 2 32)" --json
expect_grep '"epsilon":0\.336' "$T/out"
expect_grep '"order":23' "$T/out"
expect_grep '"rounds":2' "$T/out"
# Errors: usage errors exit 2 and name what is wrong.
expect_status 2 "$A" epsilon --q 0.04 --sigma 1.5
expect_grep 'give --q, --sigma and --steps' "$T/err"
expect_status 2 "$A" epsilon --q 1.5 --sigma 1 --steps 3
expect_grep 'q = 1.5' "$T/err"
expect_status 2 "$A" epsilon --q 0.1 --sigma 1 --steps 3 --delta 2
expect_grep 'delta' "$T/err"
printf '0.1 1\n0.2 oops\n' > "$T/bad.txt"
expect_status 1 "$A" epsilon --schedule "$T/bad.txt"
expect_grep 'bad.txt:2: field 2' "$T/err"
expect_status 1 "$A" epsilon --schedule "$T/missing.txt"
expect_grep 'missing.txt' "$T/err"
expect_status 0 "$A" epsilon --help
expect_grep 'usage: sealora-audit epsilon' "$T/out"
echo ok
