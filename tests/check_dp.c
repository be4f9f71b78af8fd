/* DP mechanisms (crypto/dp, crypto/dp_record): clipping never exceeds C;
 * the randomised Hadamard rotation is orthonormal, invertible and flattens
 * a basis vector exactly; conditional rounding stays within the documented
 * norm bound and rounds each value to a neighbouring integer without bias;
 * encode/decode of several sites recovers the sum of the clipped updates
 * within the rounding bound, with noise of the calibrated variance; the
 * modulus check refuses settings that may wrap and the chosen scale
 * passes; the per-round record round-trips through JSON and refuses
 * malformed objects. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/auditlog.h"
#include "crypto/dp.h"
#include "crypto/dp_record.h"
#include "tests/fixtures.h"

static void setup(void) { ck_assert_int_ge(sodium_init(), 0); }

static sl_dp_params base_params(uint32_t dim)
{
    sl_dp_params p;
    memset(&p, 0, sizeof p);
    p.dim = dim;
    p.clip = 1.0;
    p.scale = 4096;
    p.sigma = 0;
    p.threshold = 4;
    p.beta = SL_DP_DEFAULT_BETA;
    p.mode = SL_DP_DISTRIBUTED;
    p.bits = 32;
    for (int i = 0; i < 32; i++)
        p.rotation_seed[i] = (uint8_t)(i * 7 + 1);
    return p;
}

START_TEST(test_clip_never_exceeds)
{
    sl_test_rng r = {21};
    sl_err err = {0};
    static const float scales[] = {1e-6f, 0.01f, 1.0f, 3.0f, 1e4f, 1e18f};
    for (int it = 0; it < 300; it++) {
        size_t n = 1 + sl_test_rand(&r) % 3000;
        float *x = malloc(n * sizeof *x), *orig = malloc(n * sizeof *x);
        sl_test_fill(&r, x, n, scales[it % 6]);
        memcpy(orig, x, n * sizeof *x);
        double c = 0.05 + (double)(sl_test_rand(&r) % 1000) / 100.0, pre;
        ck_assert_int_eq(sl_dp_clip(x, n, c, &pre, &err), 0);
        double after = sl_dp_l2norm(x, n);
        ck_assert_msg(after <= c, "norm %.17g above clip %.17g", after, c);
        ck_assert_double_eq_tol(pre, sl_dp_l2norm(orig, n), 1e-9 * pre);
        if (pre <= c)
            ck_assert_mem_eq(x, orig, n * sizeof *x); /* within C: untouched */
        else
            ck_assert_double_gt(after, c * (1 - 1e-5)); /* clipped to (just under) C */
        /* Direction kept: x = f * orig for one f. */
        double f = pre > c ? c / pre : 1;
        size_t off = 0; /* Check's asserts cost a syscall each: count, then assert */
        for (size_t i = 0; i < n; i++)
            off += fabs(x[i] - f * orig[i]) > 1e-5 * fabs(f * orig[i]) + 1e-30;
        ck_assert_uint_eq(off, 0);
        free(x);
        free(orig);
    }
}
END_TEST

START_TEST(test_rotation)
{
    sl_test_rng r = {5};
    sl_err err = {0};
    uint8_t seed[32] = {9};
    for (size_t n = 1; n <= (1u << 14); n <<= 1) {
        double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        double nx = 0;
        for (size_t i = 0; i < n; i++) {
            x[i] = sl_test_randf(&r);
            nx += x[i] * x[i];
        }
        memcpy(y, x, n * sizeof *x);
        ck_assert_int_eq(sl_dp_rotate(y, n, n, seed, &err), 0);
        double ny = 0;
        for (size_t i = 0; i < n; i++)
            ny += y[i] * y[i];
        ck_assert_double_eq_tol(ny, nx, 1e-10 * nx); /* orthonormal */
        ck_assert_int_eq(sl_dp_unrotate(y, n, n, seed, &err), 0);
        size_t off = 0;
        for (size_t i = 0; i < n; i++)
            off += fabs(y[i] - x[i]) > 1e-12;
        ck_assert_uint_eq(off, 0);
        /* A basis vector becomes +-1/sqrt(n) everywhere: fully flattened. */
        memset(y, 0, n * sizeof *y);
        y[n / 3] = 1;
        ck_assert_int_eq(sl_dp_rotate(y, n, n, seed, &err), 0);
        for (size_t i = 0; i < n; i++)
            off += fabs(fabs(y[i]) - 1 / sqrt((double)n)) > 1e-12;
        ck_assert_uint_eq(off, 0);
        free(x);
        free(y);
    }
    /* A different seed gives different signs. */
    double a[64], b[64];
    for (int i = 0; i < 64; i++)
        a[i] = b[i] = sl_test_randf(&r);
    uint8_t seed2[32] = {10};
    ck_assert_int_eq(sl_dp_rotate(a, 64, 64, seed, &err), 0);
    ck_assert_int_eq(sl_dp_rotate(b, 64, 64, seed2, &err), 0);
    ck_assert(memcmp(a, b, sizeof a) != 0);
}
END_TEST

/* The layout rule (sl_dp_layout) on the shapes that matter, and the
 * rotation in blocks: orthonormal, inverted exactly, and a basis vector is
 * flattened to +-1/sqrt(B) across its own block and stays 0 elsewhere. */
START_TEST(test_rotation_blocks)
{
    static const struct {
        uint32_t dim, padded, block;
    } cases[] = {
        {1, 1, 1},              {3, 4, 4},
        {1000, 1024, 1024},     {1025, 2048, 2048},      /* small: one block */
        {1500, 2048, 2048},     {4096, 4096, 4096},      /* a power of two: one block */
        {61440, 61440, 4096},   /* 15 x 4096: the demo's adapter */
        {147456, 147456, 16384},/* 9 x 16384: GPT-2 small, r8 on 4 blocks' c_attn + c_proj */
        {294912, 294912, 32768},/* 9 x 32768: r8 on 12 blocks' c_attn */
        {150000, 163840, 32768},/* padded to the next multiple of P2 / 16, largest block */
        {(1u << 26), (1u << 26), (1u << 26)},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint32_t block = 7, padded = sl_dp_layout(cases[k].dim, &block);
        ck_assert_msg(padded == cases[k].padded && block == cases[k].block,
                      "dim %u: padded %u block %u, want %u %u", cases[k].dim, padded, block,
                      cases[k].padded, cases[k].block);
        ck_assert_uint_eq(padded % block, 0);
    }
    uint32_t block = 7;
    ck_assert_uint_eq(sl_dp_layout(0, &block), 0);
    ck_assert_uint_eq(block, 0);
    ck_assert_uint_eq(sl_dp_layout((1u << 26) + 1, &block), 0);

    sl_test_rng r = {51};
    sl_err err = {0};
    uint8_t seed[32] = {4};
    size_t n = 9 * 2048, b = 2048;
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), nx = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = sl_test_randf(&r);
        nx += x[i] * x[i];
    }
    memcpy(y, x, n * sizeof *x);
    ck_assert_int_eq(sl_dp_rotate(y, n, b, seed, &err), 0);
    double ny = 0;
    for (size_t i = 0; i < n; i++)
        ny += y[i] * y[i];
    ck_assert_double_eq_tol(ny, nx, 1e-10 * nx);
    ck_assert_int_eq(sl_dp_unrotate(y, n, b, seed, &err), 0);
    size_t off = 0;
    for (size_t i = 0; i < n; i++)
        off += fabs(y[i] - x[i]) > 1e-12;
    ck_assert_uint_eq(off, 0);
    memset(y, 0, n * sizeof *y);
    size_t hot = 5 * b + 77; /* in block 5 */
    y[hot] = 1;
    ck_assert_int_eq(sl_dp_rotate(y, n, b, seed, &err), 0);
    for (size_t i = 0; i < n; i++)
        off += i / b == hot / b ? fabs(fabs(y[i]) - 1 / sqrt((double)b)) > 1e-12 : y[i] != 0;
    ck_assert_uint_eq(off, 0);
    /* Bad layouts are refused and leave x alone. */
    memcpy(y, x, n * sizeof *x);
    ck_assert_int_eq(sl_dp_rotate(y, n, 3000, seed, &err), SL_EINVAL);
    ck_assert_int_eq(sl_dp_rotate(y, n, 4096, seed, &err), SL_EINVAL); /* does not divide */
    ck_assert_int_eq(sl_dp_unrotate(y, n, 0, seed, &err), SL_EINVAL);
    ck_assert_int_eq(memcmp(y, x, n * sizeof *x), 0);
    free(x);
    free(y);
}
END_TEST

START_TEST(test_conditional_rounding)
{
    sl_test_rng r = {8};
    sl_err err = {0};
    sl_dp_rng rng;
    sl_dp_rng_init_u64(&rng, 8);
    /* Worst case for the bound: vectors of norm exactly C s, every value
     * half-way-ish between integers. */
    static const uint32_t dims[] = {1, 16, 1000, 1 << 14};
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        sl_dp_params p = base_params(dims[k]);
        p.scale = 64;
        sl_dp_plan pl;
        ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
        size_t n = pl.dim_padded;
        double *x = malloc(n * sizeof *x), nx = 0;
        int64_t *z = malloc(n * sizeof *z);
        for (size_t i = 0; i < n; i++) {
            x[i] = sl_test_randf(&r);
            nx += x[i] * x[i];
        }
        for (size_t i = 0; i < n; i++)
            x[i] *= p.clip * p.scale / sqrt(nx);
        for (int rep = 0; rep < 20; rep++) {
            unsigned tries = 0;
            ck_assert_int_eq(sl_dp_round_conditional(z, x, n, pl.l2_bound2, &rng, &tries, &err), 0);
            ck_assert_uint_ge(tries, 1);
            unsigned __int128 s = 0;
            size_t off = 0;
            for (size_t i = 0; i < n; i++) {
                off += !(z[i] == (int64_t)floor(x[i]) || z[i] == (int64_t)ceil(x[i]));
                s += (unsigned __int128)(z[i] * z[i]);
            }
            ck_assert_uint_eq(off, 0);
            ck_assert(s <= pl.l2_bound2);
            ck_assert_double_le(sqrt((double)s), pl.l2_bound);
        }
        free(x);
        free(z);
    }
    /* Unbiased: the mean of many roundings of 0.3 is 0.3. */
    double x1[1] = {0.3};
    int64_t z1[1];
    long sum = 0;
    unsigned tries;
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        bad |= sl_dp_round_conditional(z1, x1, 1, 100, &rng, &tries, &err);
        sum += z1[0];
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_double_lt(fabs(sum / 20000.0 - 0.3), 5 * sqrt(0.21 / 20000));
    /* An impossible bound aborts with a clear message. */
    double big[4] = {10, 10, 10, 10};
    int64_t zb[4];
    ck_assert_int_eq(sl_dp_round_conditional(zb, big, 4, 3, &rng, &tries, &err), SL_EABORT);
    ck_assert_ptr_nonnull(strstr(err.msg, "norm bound"));
    sl_dp_rng_fini(&rng);
}
END_TEST

/* n sites encode; the modular sum decodes to the sum of clipped updates. */
static void run_sites(sl_dp_params p, int nsites, double *err_l2, double *noise_var,
                      const sl_dp_plan **plan_out)
{
    static sl_dp_plan pl;
    sl_err err = {0};
    int prc = sl_dp_plan_init(&pl, &p, &err);
    ck_assert_msg(prc == 0, "plan: %s", err.msg);
    *plan_out = &pl;
    size_t d = p.dim, n = pl.dim_padded, wb = p.bits / 8;
    uint8_t *sum = calloc(n, wb), *w = malloc(n * wb);
    double *truth = calloc(d, sizeof *truth);
    float *x = malloc(d * sizeof *x), *out = malloc(d * sizeof *out);
    sl_test_rng r = {(uint64_t)nsites * 31 + p.bits};
    sl_dp_rng rng;
    sl_dp_rng_init_u64(&rng, 77);
    for (int s = 0; s < nsites; s++) {
        sl_test_fill(&r, x, d, s % 2 ? 0.01f : 1.0f); /* some clipped, some not */
        sl_dp_local_report rep;
        ck_assert_int_eq(sl_dp_encode(&pl, x, w, &rng, &rep, &err), 0);
        ck_assert_double_eq_tol(rep.pre_clip_norm, sl_dp_l2norm(x, d), 1e-9);
        double pre;
        ck_assert_int_eq(sl_dp_clip(x, d, p.clip, &pre, &err), 0);
        for (size_t i = 0; i < d; i++)
            truth[i] += x[i];
        for (size_t i = 0; i < n; i++) {
            if (p.bits == 32)
                ((uint32_t *)sum)[i] += ((uint32_t *)w)[i];
            else
                ((uint64_t *)sum)[i] += ((uint64_t *)w)[i];
        }
    }
    if (pl.central_noise)
        ck_assert_int_eq(sl_dp_add_central_noise(&pl, sum, &rng, &err), 0);
    ck_assert_int_eq(sl_dp_decode(&pl, sum, out, &err), 0);
    double e2 = 0;
    for (size_t i = 0; i < d; i++)
        e2 += (out[i] - truth[i]) * (out[i] - truth[i]);
    *err_l2 = sqrt(e2);
    *noise_var = e2 / d * p.scale * p.scale; /* grid units, per coordinate */
    free(sum);
    free(w);
    free(truth);
    free(x);
    free(out);
    sl_dp_rng_fini(&rng);
}

START_TEST(test_encode_decode_sum)
{
    /* Without noise the decoded sum differs from the truth only by the
     * rounding: at most nsites * sqrt(D') / s in L2 (each site's rounding
     * error is below 1 per coordinate and the rotation is orthonormal). */
    for (unsigned bits = 32; bits <= 64; bits += 32) {
        sl_dp_params p = base_params(3000);
        p.bits = bits;
        const sl_dp_plan *pl;
        double e, v;
        run_sites(p, 5, &e, &v, &pl);
        ck_assert_double_le(e, 5 * sqrt((double)pl->dim_padded) / p.scale);
        ck_assert_double_gt(e, 0); /* rounding did happen: the check is not vacuous */
    }
}
END_TEST

START_TEST(test_noise_variance)
{
    /* Distributed: 6 sites each add (sigma C s)^2 / t with t = 3, so the sum
     * carries 2 (sigma C s)^2 per coordinate; central: (sigma C s)^2 once.
     * Rounding adds at most 6 * 1/4 per coordinate; D' = 4096 coordinates
     * give a relative standard error sqrt(2/4096) ~ 2.2%; allow 12%. */
    sl_dp_params p = base_params(4096);
    p.sigma = 1.0;
    p.threshold = 3;
    p.scale = 256;
    const sl_dp_plan *pl;
    double e, v;
    run_sites(p, 6, &e, &v, &pl);
    double want = 2 * (p.sigma * p.clip * p.scale) * (p.sigma * p.clip * p.scale);
    ck_assert_double_lt(fabs(v / want - 1), 0.12);
    p.mode = SL_DP_CENTRAL;
    run_sites(p, 6, &e, &v, &pl);
    want = (p.sigma * p.clip * p.scale) * (p.sigma * p.clip * p.scale);
    ck_assert_double_lt(fabs(v / want - 1), 0.12);
}
END_TEST

START_TEST(test_modulus_check)
{
    sl_err err = {0};
    sl_dp_params p = base_params(16);
    p.sigma = 0.01;
    p.threshold = 10;
    p.scale = ldexp(1.0, 26);
    sl_dp_plan pl;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    /* 20 sites of norm 2^26 grid units in 16 coordinates cannot share a
     * 32-bit modulus: the sum may reach 20 * 2^26 / 4 = 2^28.3 per
     * coordinate after the rotation, P[wrap] ~ 4e-8. */
    ck_assert_int_eq(sl_dp_check_modulus(&pl, 20, SL_DP_MAX_OVERFLOW_PROB, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "modulus 2^32 too small"));
    ck_assert_ptr_nonnull(strstr(err.msg, "64-bit"));
    p.bits = 64;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    ck_assert_int_eq(sl_dp_check_modulus(&pl, 20, SL_DP_MAX_OVERFLOW_PROB, &err), 0);
    /* More sites than half the modulus can never fit. */
    p.bits = 32;
    p.scale = 1;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    ck_assert_double_eq(sl_dp_overflow_bound(&pl, 0x80000000u), 1);
    /* The chosen scale passes and twice it does not. */
    double s;
    ck_assert_int_eq(sl_dp_choose_scale(&p, 20, SL_DP_MAX_OVERFLOW_PROB, &s, &err), 0);
    p.scale = s;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    ck_assert_int_eq(sl_dp_check_modulus(&pl, 20, SL_DP_MAX_OVERFLOW_PROB, &err), 0);
    p.scale = 2 * s;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    ck_assert_int_ne(sl_dp_check_modulus(&pl, 20, SL_DP_MAX_OVERFLOW_PROB, &err), 0);
    /* The bound grows with the number of sites. */
    p.scale = s;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    ck_assert_double_lt(sl_dp_overflow_bound(&pl, 10), sl_dp_overflow_bound(&pl, 40));
}
END_TEST

START_TEST(test_chosen_scale_does_not_wrap)
{
    /* 30 sites at the chosen scale: the decoded sum is right (a wrap would
     * put an error of 2^32 / s on some coordinate). */
    sl_dp_params p = base_params(2048);
    p.sigma = 0.5;
    p.threshold = 20;
    sl_err err = {0};
    ck_assert_int_eq(sl_dp_choose_scale(&p, 30, SL_DP_MAX_OVERFLOW_PROB, &p.scale, &err), 0);
    ck_assert_double_gt(p.scale, 1000);
    const sl_dp_plan *pl;
    double e, v;
    run_sites(p, 30, &e, &v, &pl);
    double noise_sd = sqrt(30.0 / 20) * p.sigma * p.clip; /* model units, per coordinate */
    ck_assert_double_lt(e, 1.2 * noise_sd * sqrt(2048.0) + 30 * sqrt(2048.0) / p.scale);
}
END_TEST

START_TEST(test_record_round_trip)
{
    sl_err err = {0};
    sl_dp_params p = base_params(1000);
    p.sigma = 1.2;
    p.threshold = 8;
    sl_dp_plan pl;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    sl_dp_round_record r, back;
    sl_dp_record_fill(&r, &pl, 17, 0.01, 12, 10, 9);
    ck_assert_uint_eq(r.rotation_dim, 1024);
    ck_assert_double_gt(r.noise_multiplier_effective, 0);
    /* At this variance tau is negligible, so z_eff = sqrt(m v) / Delta2
     * with m = 10 noise shares in the sum, below the nominal
     * sigma sqrt(m / t) (Delta2 > C s). */
    double v = (double)r.site_var_num / r.site_var_den;
    ck_assert_double_lt(r.tau, 1e-100);
    ck_assert_double_eq_tol(r.noise_multiplier_effective, sqrt(10 * v) / r.l2_sensitivity, 1e-12);
    ck_assert_double_le(r.noise_multiplier_effective, p.sigma * sqrt(10.0 / 8));
    /* The accountant reads the same round the same way; it counts only
     * the 9 sites that answered unmasking. */
    sl_acct_mech m;
    ck_assert_int_eq(sl_auditlog_mech_from_dp(&r, &m, &err), 0);
    ck_assert_uint_eq(m.survivors, 9);
    ck_assert_uint_eq(m.received, 10);
    double z;
    ck_assert_int_eq(sl_acct_mech_noise_multiplier(&m, &z, &err), 0);
    ck_assert_double_le(z, r.noise_multiplier_effective * (1 + 1e-9));
    ck_assert_double_ge(z, r.noise_multiplier_effective * sqrt(9.0 / 10) * (1 - 1e-9));
    ck_assert_double_eq_tol(sl_acct_ddg_tau(sqrt(v), 10), r.tau, 1e-300);
    ck_assert_double_eq(m.q, 0.01);
    ck_assert_uint_eq(m.dim, 1024);
    json_t *j;
    ck_assert_int_eq(sl_dp_record_to_json(&r, &j, &err), 0);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    json_error_t je;
    j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(sl_dp_record_from_json(j, &back, &err), 0);
    ck_assert_mem_eq(&back, &r, sizeof r);
    json_decref(j);
    free(text);
    /* Small per-site variance: tau matters and lowers the multiplier. */
    p.scale = 1;
    p.sigma = 0.3;
    p.threshold = 2;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    sl_dp_record_fill(&r, &pl, 1, -1, 4, 4, 4);
    v = (double)r.site_var_num / r.site_var_den;
    double tau = 0;
    for (int k = 1; k < 4; k++)
        tau += 10 * exp(-2 * M_PI * M_PI * v * k / (k + 1.0));
    ck_assert_double_eq_tol(r.tau, tau, 1e-12 * tau);
    ck_assert_double_eq_tol(sl_acct_ddg_tau(sqrt(v), 4), tau, 1e-12 * tau); /* the auditor agrees */
    ck_assert_double_lt(r.noise_multiplier_effective, sqrt(4 * v) / r.l2_sensitivity);
    /* Central mode: one Gaussian, no tau. */
    p.mode = SL_DP_CENTRAL;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    sl_dp_record_fill(&r, &pl, 1, -1, 4, 4, 4);
    ck_assert_double_eq(r.tau, 0);
    ck_assert_uint_eq(r.site_var_num, 0);
    ck_assert_double_eq_tol(r.noise_multiplier_effective,
                            sqrt((double)r.central_var_num / r.central_var_den) / r.l2_sensitivity,
                            1e-12);
    ck_assert_int_eq(sl_dp_record_to_json(&r, &j, &err), 0);
    ck_assert(json_is_null(json_object_get(j, "sampling_rate")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "mode")), "central");
    json_decref(j);
}
END_TEST

START_TEST(test_plan_limits)
{
    sl_err err = {0};
    sl_dp_plan pl;
    sl_dp_params p = base_params(SL_DP_MAX_DIM);
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    p.dim = SL_DP_MAX_DIM + 1;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "dim"));
    p = base_params(10);
    p.dim = 0;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), SL_ELIMIT);
    /* Per-site noise above the sampler's range. */
    p = base_params(10);
    p.sigma = 1;
    p.threshold = 1;
    p.scale = ldexp(1.0, 30);
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "per-site noise"));
    p = base_params(10);
    p.clip = 0;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "clip"));
    p = base_params(10);
    p.beta = 1;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), SL_EINVAL);
    p = base_params(10);
    p.bits = 16;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), SL_EINVAL);
    p = base_params(10);
    p.sigma = -1;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), SL_EINVAL);
    p = base_params(10);
    p.threshold = 0;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), SL_EINVAL);
    p = base_params(10);
    p.mode = 7;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), SL_EINVAL);
    /* Central noise on a distributed plan is refused, not added twice. */
    p = base_params(10);
    p.sigma = 1;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    uint32_t sum[16] = {0};
    sl_dp_rng rng;
    sl_dp_rng_init_u64(&rng, 1);
    ck_assert_int_eq(sl_dp_add_central_noise(&pl, sum, &rng, &err), SL_ESTATE);
    sl_dp_rng_fini(&rng);
}
END_TEST

START_TEST(test_malformed_inputs)
{
    sl_err err = {0};
    float x[4] = {1, NAN, 2, 3}, before[4];
    memcpy(before, x, sizeof x);
    double pre = -1;
    ck_assert_int_eq(sl_dp_clip(x, 4, 1.0, &pre, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "value 1"));
    ck_assert_mem_eq(x, before, sizeof x);
    ck_assert_double_eq(pre, -1);
    sl_dp_params p = base_params(4);
    sl_dp_plan pl;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    uint32_t w[4] = {5, 5, 5, 5};
    sl_dp_rng rng;
    sl_dp_rng_init_u64(&rng, 1);
    x[1] = INFINITY;
    ck_assert_int_eq(sl_dp_encode(&pl, x, w, &rng, NULL, &err), SL_EINVAL);
    ck_assert_uint_eq(w[0], 5);
    sl_dp_rng_fini(&rng);
    double odd[3] = {0};
    ck_assert_int_eq(sl_dp_rotate(odd, 3, 3, p.rotation_seed, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "power of two"));

    /* Records: each defect refused with the field named. */
    sl_dp_round_record r, back;
    sl_dp_record_fill(&r, &pl, 3, 0.5, 5, 4, 4);
    memset(&back, 0x5A, sizeof back);
    sl_dp_round_record keep = back;
    json_t *j;
    ck_assert_int_eq(sl_dp_record_to_json(&r, &j, &err), 0);
    static const char *edits[][3] = {
        {"clip_norm", "s", "x"}, {"extra", "i", "1"}, {"version", "i", "2"},
        {"modulus_bits", "i", "16"}, {"masked_inputs", "i", "9"}, {"mode", "s", "local"},
        {"sampling_rate", "f", "1.5"}, {"round", "i", "-1"}, {"tau", "f", "-1"}};
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        json_t *c = json_deep_copy(j);
        json_t *v = edits[i][1][0] == 's' ? json_string(edits[i][2])
                    : edits[i][1][0] == 'i' ? json_integer(atoll(edits[i][2]))
                                            : json_real(atof(edits[i][2]));
        json_object_set_new(c, edits[i][0], v);
        ck_assert_int_eq(sl_dp_record_from_json(c, &back, &err), SL_EFORMAT);
        ck_assert_msg(strstr(err.msg, edits[i][0]) || strstr(err.msg, "version") ||
                          strstr(err.msg, "counts"),
                      "edit %s: message '%s'", edits[i][0], err.msg);
        ck_assert_mem_eq(&back, &keep, sizeof back);
        json_decref(c);
    }
    json_t *c = json_deep_copy(j);
    json_object_del(c, "threshold");
    ck_assert_int_eq(sl_dp_record_from_json(c, &back, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "threshold"));
    json_decref(c);
    json_decref(j);
    /* Duplicate keys are refused by the strict decoder callers must use. */
    json_error_t je;
    ck_assert_ptr_null(json_loads("{\"tau\": 1, \"tau\": 2}", JSON_REJECT_DUPLICATES, &je));
}
END_TEST

Suite *dp_suite(void)
{
    Suite *s = suite_create("dp");
    TCase *core = tcase_create("core");
    tcase_add_unchecked_fixture(core, setup, NULL);
    tcase_set_timeout(core, 60);
    tcase_add_test(core, test_clip_never_exceeds);
    tcase_add_test(core, test_rotation);
    tcase_add_test(core, test_rotation_blocks);
    tcase_add_test(core, test_conditional_rounding);
    tcase_add_test(core, test_encode_decode_sum);
    tcase_add_test(core, test_noise_variance);
    tcase_add_test(core, test_modulus_check);
    tcase_add_test(core, test_chosen_scale_does_not_wrap);
    tcase_add_test(core, test_record_round_trip);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_unchecked_fixture(lim, setup, NULL);
    tcase_set_timeout(lim, 30);
    tcase_add_test(lim, test_plan_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_unchecked_fixture(bad, setup, NULL);
    tcase_add_test(bad, test_malformed_inputs);
    suite_add_tcase(s, bad);
    return s;
}
