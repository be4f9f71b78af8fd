#include "tests/fixtures.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dirs[64][256];
static int g_ndirs;

static void cleanup(void)
{
    for (int i = 0; i < g_ndirs; i++) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dirs[i]);
        if (system(cmd) != 0)
            fprintf(stderr, "warning: could not remove %s\n", g_dirs[i]);
    }
    g_ndirs = 0;
}

const char *sl_test_tmpdir(void)
{
    static char path[256];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/sealora-test-XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(path));
    if (g_ndirs == 0)
        atexit(cleanup);
    if (g_ndirs < 64)
        snprintf(g_dirs[g_ndirs++], sizeof g_dirs[0], "%s", path);
    return path;
}

uint64_t sl_test_rand(sl_test_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float sl_test_randf(sl_test_rng *r)
{
    return (float)((double)(sl_test_rand(r) >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

void sl_test_fill(sl_test_rng *r, float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * sl_test_randf(r);
}

const char *sl_test_write(const char *dir, const char *name, const void *buf, size_t n)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
    fclose(f);
    return path;
}
