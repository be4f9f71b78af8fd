/* bench/round: the cost of one federated round split into local training,
 * secure aggregation with DP and the server update, and the overhead of
 * security and privacy against the same round with plain aggregation
 * (docs/performance.md "Federated round").
 *
 *   bench/round              N in {3, 10, 50}, GPT-2-small-sized adapter
 *   bench/round N [STEPS]    one cohort size
 *
 * The adapter is GPT-2 small's LoRA on the emulator's four adapter blocks
 * (rank 8 on attn.c_attn and attn.c_proj, width 768: 147456 floats). Local
 * training is one site's STEPS steps (default 4, B 4 x T 128) on a
 * 6-block width-768 emulator with random weights and random tokens; sites
 * train in parallel, so one site's time is the round's. Secure aggregation
 * is crypto/secagg_sim: every site's DP encoding (clip, rotation, rounding,
 * noise) and masking and the server's unmasking and decoding, all in this
 * process one after another, so it is an upper bound on the wall time N
 * machines need (each site's own share is printed too). Plain aggregation
 * sums N float vectors and averages them. The channel's transfer costs are
 * bench/channel's. Prints figures, asserts nothing. */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/dp.h"
#include "crypto/secagg_sim.h"
#include "shared/gpt2.h"
#include "shared/lora.h"
#include "shared/train.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct enc_ctx {
    const sl_dp_plan *plan;
    const float *delta; /* N x dim */
    double seconds;     /* DP encoding time, all sites */
} enc_ctx;

static int encode(void *ctx, uint32_t i, void *out, sl_err *err)
{
    enc_ctx *c = ctx;
    sl_dp_rng r;
    sl_dp_rng_init_u64(&r, 1000 + i); /* the same words every call */
    double t = now();
    int rc = sl_dp_encode(c->plan, c->delta + (size_t)i * c->plan->p.dim, out, &r, NULL, err);
    c->seconds += now() - t;
    sl_dp_rng_fini(&r);
    return rc;
}

static int train_time(int steps, double *secs, uint32_t *dim, sl_err *err)
{
    sl_gpt2_config cfg;
    memset(&cfg, 0, sizeof cfg);
    sl_hfconfig_default(&cfg);
    cfg.n_layer = 6;
    cfg.n_embd = 768;
    cfg.n_head = 12;
    cfg.n_positions = 128;
    cfg.vocab_size = 8192;
    cfg.bos_token_id = cfg.eos_token_id = 8191;
    sl_gpt2 *m = NULL;
    sl_lora *l = NULL;
    sl_trainer *tr = NULL;
    int32_t *in = NULL, *tg = NULL;
    int layers[] = {0, 1, 4, 5};
    int rc = sl_gpt2_create(&m, &cfg, err);
    if (rc)
        return rc;
    sl_gpt2_init_random(m, 7);
    if ((rc = sl_lora_create(&l, m, 8, 16, SL_LORA_C_ATTN | SL_LORA_C_PROJ, layers, 4, 1, err)))
        goto out;
    *dim = (uint32_t)l->nparams;
    sl_train_cfg tc;
    sl_train_cfg_init(&tc);
    tc.B = 4;
    tc.T = 128;
    tc.steps = steps + 1;
    tc.warmup = 0;
    if ((rc = sl_trainer_create(&tr, m, l, NULL, &tc, err)))
        goto out;
    in = malloc(4 * 128 * sizeof *in);
    tg = malloc(4 * 128 * sizeof *tg);
    if (!in || !tg) {
        rc = SL_ENOMEM;
        goto out;
    }
    for (int i = 0; i < 4 * 128; i++) {
        in[i] = (int32_t)((i * 2654435761u) % 8192u);
        tg[i] = (int32_t)((i * 40503u + 7) % 8192u);
    }
    sl_train_stats st;
    if ((rc = sl_trainer_step_batch(tr, in, tg, &st, err))) /* warm-up */
        goto out;
    double t = now();
    for (int s = 0; s < steps; s++)
        if ((rc = sl_trainer_step_batch(tr, in, tg, &st, err)))
            goto out;
    *secs = now() - t;
out:
    free(in);
    free(tg);
    sl_trainer_free(tr);
    sl_lora_free(l);
    sl_gpt2_free(m);
    return rc;
}

static int one(uint32_t n, uint32_t dim, double t_train, int steps)
{
    sl_err err = {0};
    sl_dp_params p;
    memset(&p, 0, sizeof p);
    p.dim = dim;
    p.clip = 1;
    p.sigma = 1;
    p.beta = SL_DP_DEFAULT_BETA;
    p.mode = SL_DP_DISTRIBUTED;
    p.bits = 32;
    randombytes_buf(p.rotation_seed, 32);
    uint32_t words = 1;
    while (words < dim)
        words <<= 1;
    sl_secagg_sim_opts o;
    memset(&o, 0, sizeof o);
    sl_dp_plan plan;
    if (sl_secagg_config_default(&o.cfg, n, words, 0.3, 32, &err))
        goto fail;
    p.threshold = o.cfg.threshold;
    if (sl_dp_choose_scale(&p, n, SL_DP_MAX_OVERFLOW_PROB, &p.scale, &err) ||
        sl_dp_plan_init(&plan, &p, &err))
        goto fail;
    float *delta = malloc((size_t)n * dim * sizeof *delta);
    float *plain = calloc(dim, sizeof *plain), *out = malloc(dim * sizeof *out);
    float *global = calloc(dim, sizeof *global);
    uint32_t *sum = malloc((size_t)words * 4);
    if (!delta || !plain || !out || !global || !sum) {
        fprintf(stderr, "round: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)n * dim; i++)
        delta[i] = (float)(((i * 2654435761u) % 2001u) / 1000.0 - 1.0) * 0.01f;
    enc_ctx ec = {&plan, delta, 0};
    o.input = encode;
    o.input_ctx = &ec;
    o.round = 1;
    o.seed = 5;
    o.first_id = 1;
    sl_secagg_sim_result r;
    double t = now();
    if (sl_secagg_sim_run(&o, sum, &r, &err))
        goto fail;
    double t_dec = now();
    if (sl_dp_decode(&plan, sum, out, &err))
        goto fail;
    t_dec = now() - t_dec;
    double t_secure = now() - t;
    /* Plain aggregation: sum and average the float vectors. */
    t = now();
    for (uint32_t s = 0; s < n; s++)
        for (uint32_t j = 0; j < dim; j++)
            plain[j] += delta[(size_t)s * dim + j];
    double t_plain = now() - t;
    /* Server update (FedAvg) on the decoded sum. */
    t = now();
    for (uint32_t j = 0; j < dim; j++)
        global[j] += out[j] / (float)n;
    double t_update = now() - t;
    double per_site = ec.seconds / n + r.client_mask_seconds;
    double round_plain = t_train + t_plain + t_update;
    double round_secure = t_train + t_secure + t_update;
    printf("%4u sites: train %.3f s (%d steps) | secagg+DP %.3f s all parties in one process "
           "(per site %.4f s: DP encode %.4f + masking %.4f; server unmask %.4f + decode %.4f) | "
           "plain sum %.5f s | update %.5f s | overhead %.1f%% (one process), %.1f%% (sites in "
           "parallel: per-site + server)%s\n",
           n, t_train, steps, t_secure, per_site, ec.seconds / n, r.client_mask_seconds,
           r.server_finish_seconds, t_dec, t_plain, t_update,
           100 * (round_secure - round_plain) / round_plain,
           100 * (per_site + r.server_finish_seconds + t_dec - t_plain) / round_plain,
           r.exact ? "" : " (SUM NOT EXACT)");
    free(delta);
    free(plain);
    free(out);
    free(global);
    free(sum);
    return 0;
fail:
    fprintf(stderr, "round: %s\n", err.msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    int steps = argc > 2 ? atoi(argv[2]) : 4;
    sl_err err = {0};
    double t_train = 0;
    uint32_t dim = 0;
    if (steps < 1 || train_time(steps, &t_train, &dim, &err)) {
        fprintf(stderr, "round: %s\n", err.msg[0] ? err.msg : "bad STEPS");
        return 1;
    }
    printf("adapter: %u floats (GPT-2 small width, rank 8 on c_attn + c_proj of 4 blocks); "
           "local training B 4 x T 128 on a 6-block emulator\n", dim);
    if (argc > 1)
        return one((uint32_t)atoi(argv[1]), dim, t_train, steps);
    static const uint32_t ns[] = {3, 10, 50};
    for (size_t i = 0; i < 3; i++)
        if (one(ns[i], dim, t_train, steps))
            return 1;
    return 0;
}
