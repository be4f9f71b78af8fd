/* shared/blas.h - choosing and reporting OpenBLAS's kernel set.
 *
 * OpenBLAS (Debian 0.3.21, DYNAMIC_ARCH) picks its kernels when the library
 * is loaded, from OPENBLAS_CORETYPE if set, else from CPUID. Some machines
 * export OPENBLAS_CORETYPE=Haswell, which on an AVX-512 CPU costs about 40%
 * of sgemm throughput (108 vs 190 GFLOP/s per core on Zen 5). Because the
 * choice is made before main(), every sealora binary calls sl_blas_boot()
 * first: when the variable names a weaker kernel set than the CPU supports,
 * it removes it and re-executes itself once, so OpenBLAS autodetects.
 *
 * Opt-out / override: SEALORA_BLAS_CORETYPE=keep leaves the environment
 * alone; SEALORA_BLAS_CORETYPE=<name> forces OPENBLAS_CORETYPE=<name>.
 * Not thread-safe (call it before any thread starts). */
#ifndef SL_BLAS_H
#define SL_BLAS_H

/* Returns only if no re-exec was needed or the re-exec failed (then the
 * process carries on with the kernels it has, and says so on stderr). */
void sl_blas_boot(int argc, char **argv);
/* Kernel set OpenBLAS is using ("SkylakeX", "Haswell", ...). */
const char *sl_blas_corename(void);
int sl_blas_threads(void);
/* One line: "OpenBLAS 0.3.21 core=SkylakeX threads=2 (...)". */
void sl_blas_describe(char *out, unsigned long cap);

#endif
