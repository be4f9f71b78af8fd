/* Exact discrete Gaussian sampler (crypto/dp_dgauss): chi-square
 * goodness of fit against the exact probabilities exp(-k^2 / 2v) / Z for
 * variances from 2^-10 to 10^8 with fixed seeds; a wrong variance is
 * detected (the test has power); Bernoulli(exp(-gamma)) frequencies;
 * moments at the largest variance; parameter limits. */
#include <check.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/dp_dgauss.h"
#include "tests/fixtures.h"

static void setup(void) { ck_assert_int_ge(sodium_init(), 0); }

/* Chi-square statistic of samples against N_Z(0, v_model), bins built
 * greedily over consecutive integers until each expects >= 40 samples;
 * samples beyond the table fall into the edge bins. *df gets bins - 1. */
static double chi_square(const int64_t *xs, int n, double v_model, int *df)
{
    int64_t half = (int64_t)ceil(14 * sqrt(v_model)) + 3;
    size_t len = (size_t)(2 * half + 1);
    double *p = malloc(len * sizeof *p), z = 0;
    for (size_t i = 0; i < len; i++) {
        double k = (double)((int64_t)i - half);
        p[i] = exp(-k * k / (2 * v_model));
        z += p[i];
    }
    /* bin_of[i]: bin of integer i - half. */
    int *bin_of = malloc(len * sizeof *bin_of), nb = 0;
    double *exp_cnt = calloc(len, sizeof *exp_cnt), acc = 0;
    for (size_t i = 0; i < len; i++) {
        bin_of[i] = nb;
        acc += p[i] / z * n;
        if (acc >= 40) {
            exp_cnt[nb++] = acc;
            acc = 0;
        }
    }
    if (acc > 0) { /* the short last bin joins the previous one */
        if (nb == 0)
            exp_cnt[nb++] = acc;
        else
            exp_cnt[nb - 1] += acc;
        for (size_t i = len; i-- > 0 && bin_of[i] == nb;)
            bin_of[i] = nb - 1;
    }
    double *obs = calloc((size_t)nb, sizeof *obs);
    for (int s = 0; s < n; s++) {
        int64_t k = xs[s] < -half ? -half : xs[s] > half ? half : xs[s];
        obs[bin_of[k + half]] += 1;
    }
    double chi = 0;
    for (int b = 0; b < nb; b++)
        chi += (obs[b] - exp_cnt[b]) * (obs[b] - exp_cnt[b]) / exp_cnt[b];
    *df = nb - 1;
    free(p);
    free(bin_of);
    free(exp_cnt);
    free(obs);
    return chi;
}

/* Upper 1e-4 quantile of chi-square with df degrees of freedom
 * (Wilson-Hilferty; z = 3.719). */
static double chi_crit(int df)
{
    double a = 2.0 / (9.0 * df), z = 3.719;
    double c = 1 - a + z * sqrt(a);
    return df * c * c * c;
}

static int64_t *draw(double var, int n, uint64_t seed)
{
    sl_dp_dgauss g;
    sl_err err = {0};
    ck_assert_int_eq(sl_dp_dgauss_from_variance(&g, var, &err), 0);
    ck_assert(sl_dp_dgauss_variance(&g) >= var);
    ck_assert(sl_dp_dgauss_variance(&g) <= var * (1 + 1e-8));
    sl_dp_rng rng;
    sl_dp_rng_init_u64(&rng, seed);
    int64_t *xs = malloc((size_t)n * sizeof *xs);
    for (int i = 0; i < n; i++)
        xs[i] = sl_dp_dgauss_sample(&g, &rng);
    sl_dp_rng_fini(&rng);
    return xs;
}

START_TEST(test_goodness_of_fit)
{
    static const double vars[] = {0.1, 0.5, 1.0, 10.0, 1000.0, 1e8};
    const int n = 20000;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        int64_t *xs = draw(vars[i], n, 1000 + i);
        int df;
        double chi = chi_square(xs, n, vars[i], &df);
        ck_assert_int_ge(df, 1);
        ck_assert_msg(chi < chi_crit(df), "variance %g: chi-square %.1f with %d df (limit %.1f)",
                      vars[i], chi, df, chi_crit(df));
        free(xs);
    }
}
END_TEST

START_TEST(test_test_has_power)
{
    /* Samples of variance 10 judged against variance 12 must fail, and
     * against 10 pass: the goodness-of-fit test can tell them apart. */
    const int n = 20000;
    int64_t *xs = draw(10.0, n, 42);
    int df;
    ck_assert_double_lt(chi_square(xs, n, 10.0, &df), chi_crit(df));
    ck_assert_double_gt(chi_square(xs, n, 12.0, &df), chi_crit(df));
    free(xs);
}
END_TEST

START_TEST(test_tiny_variance)
{
    /* sigma^2 = 2^-10: P[X != 0] = 2 e^-512 / Z, never seen. */
    int64_t *xs = draw(ldexp(1.0, -10), 5000, 7);
    for (int i = 0; i < 5000; i++)
        ck_assert_int_eq(xs[i], 0);
    free(xs);
}
END_TEST

START_TEST(test_largest_variance_moments)
{
    /* sigma^2 = 2^40: mean within 5 standard errors, variance within 5
     * standard errors of the variance estimate (sqrt(2/n) relative). */
    const int n = 20000;
    double v = ldexp(1.0, 40);
    int64_t *xs = draw(v, n, 9);
    double m = 0, s2 = 0;
    for (int i = 0; i < n; i++)
        m += (double)xs[i];
    m /= n;
    for (int i = 0; i < n; i++)
        s2 += ((double)xs[i] - m) * ((double)xs[i] - m);
    s2 /= n - 1;
    ck_assert_double_lt(fabs(m), 5 * sqrt(v / n));
    ck_assert_double_lt(fabs(s2 / v - 1), 5 * sqrt(2.0 / n));
    free(xs);
}
END_TEST

START_TEST(test_bernoulli_exp)
{
    static const double gam[][2] = {{1, 2}, {5, 2}, {0, 1}, {3, 1}};
    sl_dp_rng rng;
    sl_dp_rng_init_u64(&rng, 3);
    const int n = 40000;
    for (size_t i = 0; i < sizeof gam / sizeof gam[0]; i++) {
        int ones = 0;
        for (int k = 0; k < n; k++)
            ones += sl_dp_dgauss_bern_exp((unsigned __int128)gam[i][0],
                                          (unsigned __int128)gam[i][1], &rng);
        double p = exp(-gam[i][0] / gam[i][1]);
        double sd = sqrt(n * p * (1 - p)) + 1e-9;
        ck_assert_double_lt(fabs(ones - n * p), 5 * sd + 0.5);
    }
    sl_dp_rng_fini(&rng);
}
END_TEST

START_TEST(test_limits)
{
    sl_dp_dgauss g;
    sl_err err = {0};
    ck_assert_int_eq(sl_dp_dgauss_init(&g, (uint64_t)1 << 48, 1, &err), 0);
    ck_assert_uint_eq(g.t, ((uint64_t)1 << 24) + 1);
    ck_assert_int_eq(sl_dp_dgauss_init(&g, ((uint64_t)1 << 48) + 1, 1, &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "above the limit"));
    ck_assert_int_eq(sl_dp_dgauss_init(&g, 1, (uint64_t)1 << 21, &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "below the limit"));
    /* Within the variance range but with a huge denominator. */
    ck_assert_int_eq(sl_dp_dgauss_init(&g, (uint64_t)1 << 62, (uint64_t)1 << 50, &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "100-bit"));
    ck_assert_int_eq(sl_dp_dgauss_from_variance(&g, ldexp(1.0, 49), &err), SL_ELIMIT);
    ck_assert_int_eq(sl_dp_dgauss_from_variance(&g, ldexp(1.0, 48), &err), 0);
    ck_assert_int_eq(sl_dp_dgauss_from_variance(&g, ldexp(1.0, -20), &err), 0);
    /* t = floor(sigma) + 1 exactly, at perfect squares and just below. */
    ck_assert_int_eq(sl_dp_dgauss_init(&g, 16, 1, &err), 0);
    ck_assert_uint_eq(g.t, 5);
    ck_assert_int_eq(sl_dp_dgauss_init(&g, 63, 4, &err), 0); /* 15.75 */
    ck_assert_uint_eq(g.t, 4);
}
END_TEST

START_TEST(test_bad_parameters)
{
    sl_dp_dgauss g = {7, 7, 7}, before = g;
    sl_err err = {0};
    ck_assert_int_eq(sl_dp_dgauss_init(&g, 0, 1, &err), SL_EINVAL);
    ck_assert_int_eq(sl_dp_dgauss_init(&g, 1, 0, &err), SL_EINVAL);
    ck_assert_int_eq(sl_dp_dgauss_from_variance(&g, NAN, &err), SL_EINVAL);
    ck_assert_int_eq(sl_dp_dgauss_from_variance(&g, -1, &err), SL_EINVAL);
    ck_assert_int_eq(sl_dp_dgauss_from_variance(&g, INFINITY, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "not positive"));
    ck_assert_mem_eq(&g, &before, sizeof g);
}
END_TEST

Suite *dp_dgauss_suite(void)
{
    Suite *s = suite_create("dp_dgauss");
    TCase *core = tcase_create("core");
    tcase_add_unchecked_fixture(core, setup, NULL);
    tcase_set_timeout(core, 60);
    tcase_add_test(core, test_goodness_of_fit);
    tcase_add_test(core, test_test_has_power);
    tcase_add_test(core, test_tiny_variance);
    tcase_add_test(core, test_largest_variance_moments);
    tcase_add_test(core, test_bernoulli_exp);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_unchecked_fixture(lim, setup, NULL);
    tcase_add_test(lim, test_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_unchecked_fixture(bad, setup, NULL);
    tcase_add_test(bad, test_bad_parameters);
    suite_add_tcase(s, bad);
    return s;
}
