#include "shared/blas.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define REEXEC_MARK "SEALORA_BLAS_REEXEC"

/* Kernel sets that do not use AVX-512, which OpenBLAS may be told to use. */
static int is_weaker_than_avx512(const char *core)
{
    static const char *const weak[] = {"Haswell", "Zen", "Sandybridge", "Nehalem",
                                       "Prescott", "Core2", "Penryn", "Dunnington",
                                       "Atom", "Barcelona", "Bulldozer", "Piledriver",
                                       "Steamroller", "Excavator", "Opteron"};
    for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++)
        if (strcasecmp(core, weak[i]) == 0)
            return 1;
    return 0;
}

static int cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

void sl_blas_boot(int argc, char **argv)
{
    (void)argc;
    if (getenv(REEXEC_MARK)) {
        unsetenv(REEXEC_MARK); /* children start their own decision afresh */
        return;
    }
    const char *want = getenv("SEALORA_BLAS_CORETYPE");
    const char *have = getenv("OPENBLAS_CORETYPE");
    if (want && strcmp(want, "keep") == 0)
        return;
    if (want && *want) {
        if (have && strcmp(have, want) == 0)
            return;
        setenv("OPENBLAS_CORETYPE", want, 1);
    } else {
        if (!have || !is_weaker_than_avx512(have) || !cpu_has_avx512())
            return;
        unsetenv("OPENBLAS_CORETYPE");
    }
    setenv(REEXEC_MARK, "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with what we have, and say so once. */
    unsetenv(REEXEC_MARK);
    fprintf(stderr, "sealora: note: could not re-execute to change OpenBLAS kernels; "
                    "using OPENBLAS_CORETYPE=%s\n", have ? have : "(auto)");
}

const char *sl_blas_corename(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

int sl_blas_threads(void) { return openblas_get_num_threads(); }

void sl_blas_describe(char *out, unsigned long cap)
{
    const char *cfg = openblas_get_config();
    snprintf(out, cap, "core=%s threads=%d (%s)", sl_blas_corename(), sl_blas_threads(),
             cfg ? cfg : "OpenBLAS");
}
