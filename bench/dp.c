/* bench/dp: the cost of a site's DP encoding (docs/performance.md "DP
 * encoding") next to the rate of the random stream it draws from, measured
 * in the same run.
 *
 *   bench/dp            cohorts of 3, 10 and 50 sites
 *   bench/dp N [DIM]    one cohort of N sites, DIM coordinates
 *
 * For each cohort the plan is the one the runtime builds (distributed
 * discrete Gaussian noise, noise multiplier 1, clip 1, 32-bit words, the
 * default secure-aggregation threshold; DIM defaults to a GPT-2-small LoRA
 * r8 adapter on c_attn, 294,912 values padded to 2^19). Prints the
 * per-site noise variance in grid units, the sampler's time per sample and
 * the random bytes it consumes per sample, the stream's own rate
 * (sl_dp_rng, ChaCha20 in user space) and the sampler's rate as a share of
 * the stream-bound limit (stream bytes/s divided by bytes per sample), and
 * the median wall time of sl_dp_encode (clip, rotation, conditional
 * rounding, noise) over 5 calls. Asserts nothing about time. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/dp.h"
#include "crypto/secagg_config.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Bytes the generator has handed out so far. */
static double consumed(const sl_dp_rng *r)
{
    return (double)r->chunk * SL_DP_RNG_CHUNK - (double)(SL_DP_RNG_CHUNK - r->pos);
}

static double stream_rate(void)
{
    enum { BUF = 1 << 16, TOTAL = 64 << 20 };
    static uint8_t out[BUF];
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        sl_dp_rng r;
        sl_dp_rng_init_system(&r);
        double t = now();
        for (size_t done = 0; done < TOTAL; done += BUF)
            sl_dp_rng_bytes(&r, out, BUF);
        t = now() - t;
        sl_dp_rng_fini(&r);
        if (TOTAL / t > best)
            best = TOTAL / t;
    }
    return best;
}

static int one(uint32_t n, uint32_t dim, double stream)
{
    sl_err err = {0};
    sl_secagg_config sa;
    sl_dp_params p;
    sl_dp_plan pl;
    memset(&p, 0, sizeof p);
    uint32_t block, padded = sl_dp_layout(dim, &block);
    if (sl_secagg_config_default(&sa, n, padded, 0.3, 32, &err))
        goto fail;
    p.dim = dim;
    p.clip = 1;
    p.sigma = 1;
    p.threshold = sa.threshold;
    p.beta = SL_DP_DEFAULT_BETA;
    p.mode = SL_DP_DISTRIBUTED;
    p.bits = 32;
    randombytes_buf(p.rotation_seed, sizeof p.rotation_seed);
    if (sl_dp_choose_scale(&p, n, SL_DP_MAX_OVERFLOW_PROB, &p.scale, &err) ||
        sl_dp_plan_init(&pl, &p, &err))
        goto fail;

    sl_dp_rng rng;
    sl_dp_rng_init_system(&rng);
    enum { SAMPLES = 1 << 20 };
    int64_t acc = 0;
    double b0 = consumed(&rng), t = now();
    for (int i = 0; i < SAMPLES; i++)
        acc += sl_dp_dgauss_sample(&pl.site_dg, &rng);
    t = now() - t;
    double per = t / SAMPLES, bytes = (consumed(&rng) - b0) / SAMPLES;
    double limit = stream / bytes; /* samples/s if drawing the bytes were all */

    float *delta = malloc((size_t)dim * sizeof *delta);
    void *words = malloc((size_t)pl.dim_padded * 4);
    if (!delta || !words) {
        free(delta);
        free(words);
        sl_dp_rng_fini(&rng);
        fprintf(stderr, "bench/dp: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < dim; i++)
        delta[i] = (float)((int)(i % 13) - 6) * 1e-3f;
    double enc[5];
    for (int k = 0; k < 5; k++) {
        double e0 = now();
        if (sl_dp_encode(&pl, delta, words, &rng, NULL, &err)) {
            free(delta);
            free(words);
            sl_dp_rng_fini(&rng);
            goto fail;
        }
        enc[k] = now() - e0;
    }
    qsort(enc, 5, sizeof enc[0], cmp_d);
    printf("%5u sites  dim %u (padded %u)  noise variance %.4g (floor(sigma) %.0f grid units)\n", n,
           dim, pl.dim_padded, sl_dp_dgauss_variance(&pl.site_dg),
           (double)pl.site_dg.t - 1);
    printf("       sampler %.3f us/sample, %.1f random bytes/sample; stream-bound limit %.3f "
           "us/sample; sampler at %.0f%% of it\n",
           per * 1e6, bytes, 1e6 / limit, 100.0 * (1.0 / per) / limit);
    printf("       sl_dp_encode %.3f s median of 5 (min %.3f, max %.3f); noise alone %.3f s\n",
           enc[2], enc[0], enc[4], per * pl.dim_padded);
    if (acc == INT64_MIN)
        printf("(unreachable: keeps the samples)\n");
    free(delta);
    free(words);
    sl_dp_rng_fini(&rng);
    return 0;
fail:
    fprintf(stderr, "bench/dp: %s\n", err.msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: bench/dp [SITES [DIM]]\n"
               "A site's DP encoding (exact discrete Gaussian noise) against the random\n"
               "stream's rate, measured in the same run. Default: 3, 10 and 50 sites,\n"
               "DIM 294912 (GPT-2 small, LoRA r8 on c_attn).\n");
        return 0;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "bench/dp: libsodium failed to initialise\n");
        return 1;
    }
    uint32_t dim = 294912;
    if (argc > 2) {
        long d = strtol(argv[2], NULL, 10);
        if (d < 1 || d > (1L << 26)) {
            fprintf(stderr, "bench/dp: DIM %s outside [1, 2^26]\n", argv[2]);
            return 2;
        }
        dim = (uint32_t)d;
    }
    double stream = stream_rate();
    printf("random stream (sl_dp_rng, system mode): %.0f MB/s\n", stream / 1e6);
    if (argc > 1) {
        long n = strtol(argv[1], NULL, 10);
        if (n < 2 || n > 10000) {
            fprintf(stderr, "bench/dp: SITES %s outside [2, 10000]\n", argv[1]);
            return 2;
        }
        return one((uint32_t)n, dim, stream);
    }
    const uint32_t cohorts[] = {3, 10, 50};
    for (int i = 0; i < 3; i++)
        if (one(cohorts[i], dim, stream))
            return 1;
    return 0;
}
