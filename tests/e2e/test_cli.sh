# Every binary explains itself, refuses unknown commands with status 2, and
# runs OpenBLAS with the CPU's best kernels unless told to keep a setting.
. "$(dirname "$0")/lib.sh"
for b in sealora-server sealora-client sealora-audit; do
  expect_status 0 "$S/$b" --help
  expect_grep "usage: $b COMMAND" "$T/out"
  expect_status 2 "$S/$b" no-such-command
  expect_grep "unknown command 'no-such-command'" "$T/err"
  expect_status 2 "$S/$b"
  expect_status 0 "$S/$b" --version
  expect_grep "^BLAS: core=" "$T/out"
done
# SEALORA_BLAS_CORETYPE forces a kernel set; keep leaves the variable alone.
expect_status 0 env SEALORA_BLAS_CORETYPE=Haswell "$S/sealora-server" blas
expect_grep "core=Haswell" "$T/out"
expect_status 0 env OPENBLAS_CORETYPE=Sandybridge SEALORA_BLAS_CORETYPE=keep "$S/sealora-server" blas
expect_grep "core=Sandybridge" "$T/out"
# With the default, a weaker OPENBLAS_CORETYPE is replaced on AVX-512 CPUs.
if grep -q avx512bw /proc/cpuinfo && grep -q avx512dq /proc/cpuinfo && grep -q avx512vl /proc/cpuinfo; then
  expect_status 0 env OPENBLAS_CORETYPE=Haswell "$S/sealora-server" blas
  if grep -q "core=Haswell" "$T/out"; then fail "Haswell kept on an AVX-512 CPU: $(cat "$T/out")"; fi
fi
echo ok
