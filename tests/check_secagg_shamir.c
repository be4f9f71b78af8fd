/* Shamir sharing (crypto/secagg_shamir): GF(2^8) multiplication against the
 * FIPS-197 examples and a log/antilog reference over all 65536 pairs; any t
 * of n shares give the secret back; t-1 shares are uniform whatever the
 * secret; bad shares and limits are refused. */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secagg_shamir.h"
#include "tests/fixtures.h"

static void setup(void) { ck_assert_int_ge(sodium_init(), 0); }

START_TEST(test_gf_known_answers)
{
    /* FIPS-197 section 4.2: {57}.{83} = {c1}; section 4.2.1: {57}.{13} = {fe}. */
    ck_assert_uint_eq(sl_secagg_shamir_gf_mul(0x57, 0x83), 0xc1);
    ck_assert_uint_eq(sl_secagg_shamir_gf_mul(0x57, 0x13), 0xfe);
    /* Reference by log/antilog tables on the generator {03}. */
    uint8_t expt[255], logt[256];
    uint8_t g = 1;
    for (int i = 0; i < 255; i++) {
        expt[i] = g;
        logt[g] = (uint8_t)i;
        g = (uint8_t)(g ^ (uint8_t)((g << 1) ^ ((g & 0x80) ? 0x1b : 0))); /* g *= 3 */
    }
    int off = 0; /* Check's asserts cost a syscall each: count, then assert */
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b++) {
            uint8_t want = (a && b) ? expt[(logt[a] + logt[b]) % 255] : 0;
            off += sl_secagg_shamir_gf_mul((uint8_t)a, (uint8_t)b) != want;
        }
    ck_assert_int_eq(off, 0);
}
END_TEST

START_TEST(test_any_t_shares_recover)
{
    sl_test_rng tr = {5};
    sl_dp_rng rng;
    sl_dp_rng_init_u64(&rng, 5);
    sl_err err = {0};
    for (int it = 0; it < 200; it++) {
        unsigned n = 1 + (unsigned)(sl_test_rand(&tr) % 40);
        if (it == 0)
            n = SL_SECAGG_SHAMIR_MAX_SHARES;
        unsigned t = 1 + (unsigned)(sl_test_rand(&tr) % n);
        size_t len = 1 + sl_test_rand(&tr) % SL_SECAGG_SHAMIR_MAX_SECRET;
        uint8_t secret[SL_SECAGG_SHAMIR_MAX_SECRET], got[SL_SECAGG_SHAMIR_MAX_SECRET];
        for (size_t i = 0; i < len; i++)
            secret[i] = (uint8_t)sl_test_rand(&tr);
        uint8_t *sh = malloc(n * (len + 1));
        ck_assert_int_eq(sl_secagg_shamir_split(sh, secret, len, t, n, &rng, &err), 0);
        /* A random subset of m >= t shares, in random order. */
        unsigned idx[SL_SECAGG_SHAMIR_MAX_SHARES];
        for (unsigned i = 0; i < n; i++)
            idx[i] = i;
        for (unsigned i = n - 1; i > 0; i--) {
            unsigned j = (unsigned)(sl_test_rand(&tr) % (i + 1)), tmp = idx[i];
            idx[i] = idx[j];
            idx[j] = tmp;
        }
        unsigned m = t + (unsigned)(sl_test_rand(&tr) % (n - t + 1));
        const uint8_t *pick[SL_SECAGG_SHAMIR_MAX_SHARES];
        for (unsigned i = 0; i < m; i++)
            pick[i] = sh + (size_t)idx[i] * (len + 1);
        ck_assert_int_eq(sl_secagg_shamir_combine(got, len, pick, m, &err), 0);
        ck_assert_mem_eq(got, secret, len);
        if (t >= 2) {
            /* Changing one share's value changes the result. */
            uint8_t bad[SL_SECAGG_SHAMIR_MAX_SECRET + 1];
            memcpy(bad, pick[0], len + 1);
            bad[1] ^= 0x01;
            pick[0] = bad;
            ck_assert_int_eq(sl_secagg_shamir_combine(got, len, pick, t, &err), 0);
            ck_assert(memcmp(got, secret, len) != 0);
        }
        free(sh);
    }
    sl_dp_rng_fini(&rng);
}
END_TEST

START_TEST(test_below_threshold_is_uniform)
{
    /* Secret 0x00, t = 3: interpolating 2 shares gives a value that is
     * uniform over the 256 bytes (the secret has no pull). Chi-square with
     * 255 degrees of freedom; 330.5 is the 0.999 quantile. */
    sl_dp_rng rng;
    sl_dp_rng_init_u64(&rng, 77);
    sl_err err = {0};
    unsigned hist[256] = {0};
    const int trials = 25600;
    int rc = 0;
    for (int it = 0; it < trials; it++) {
        uint8_t secret[1] = {0}, sh[5 * 2], got[1] = {0};
        rc |= sl_secagg_shamir_split(sh, secret, 1, 3, 5, &rng, &err);
        const uint8_t *pick[2] = {sh + 2, sh + 6};
        rc |= sl_secagg_shamir_combine(got, 1, pick, 2, &err);
        hist[got[0]]++;
    }
    ck_assert_int_eq(rc, 0);
    double chi = 0, e = trials / 256.0;
    for (int i = 0; i < 256; i++)
        chi += (hist[i] - e) * (hist[i] - e) / e;
    ck_assert_double_lt(chi, 330.5);
    ck_assert_uint_lt(hist[0], 3 * (unsigned)e); /* no spike at the secret */
    sl_dp_rng_fini(&rng);
}
END_TEST

START_TEST(test_limits)
{
    sl_dp_rng rng;
    sl_dp_rng_init_u64(&rng, 1);
    sl_err err = {0};
    uint8_t secret[SL_SECAGG_SHAMIR_MAX_SECRET + 1] = {0};
    static uint8_t sh[256 * (SL_SECAGG_SHAMIR_MAX_SECRET + 2)];
    ck_assert_int_eq(sl_secagg_shamir_split(sh, secret, 32, 255, 255, &rng, &err), 0);
    ck_assert_int_eq(sl_secagg_shamir_split(sh, secret, 32, 2, 256, &rng, &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "256"));
    ck_assert_int_eq(sl_secagg_shamir_split(sh, secret, SL_SECAGG_SHAMIR_MAX_SECRET + 1, 2, 3, &rng,
                                            &err), SL_ELIMIT);
    ck_assert_int_eq(sl_secagg_shamir_split(sh, secret, 0, 2, 3, &rng, &err), SL_ELIMIT);
    ck_assert_int_eq(sl_secagg_shamir_split(sh, secret, 32, 0, 3, &rng, &err), SL_EINVAL);
    ck_assert_int_eq(sl_secagg_shamir_split(sh, secret, 32, 4, 3, &rng, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "threshold 4"));
    sl_dp_rng_fini(&rng);
}
END_TEST

START_TEST(test_malformed_shares)
{
    sl_dp_rng rng;
    sl_dp_rng_init_u64(&rng, 2);
    sl_err err = {0};
    uint8_t secret[32] = {1, 2, 3}, sh[4 * 33], got[32];
    memset(got, 0xAA, sizeof got);
    ck_assert_int_eq(sl_secagg_shamir_split(sh, secret, 32, 2, 4, &rng, &err), 0);
    const uint8_t *dup[2] = {sh, sh};
    ck_assert_int_eq(sl_secagg_shamir_combine(got, 32, dup, 2, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "x = 1"));
    uint8_t zero[33];
    memcpy(zero, sh + 33, 33);
    zero[0] = 0;
    const uint8_t *z[2] = {sh, zero};
    ck_assert_int_eq(sl_secagg_shamir_combine(got, 32, z, 2, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "x = 0"));
    ck_assert_int_eq(sl_secagg_shamir_combine(got, 32, z, 0, &err), SL_ELIMIT);
    for (int i = 0; i < 32; i++)
        ck_assert_uint_eq(got[i], 0xAA); /* untouched on failure */
    sl_dp_rng_fini(&rng);
}
END_TEST

Suite *secagg_shamir_suite(void)
{
    Suite *s = suite_create("secagg_shamir");
    TCase *core = tcase_create("core");
    tcase_add_unchecked_fixture(core, setup, NULL);
    tcase_add_test(core, test_gf_known_answers);
    tcase_add_test(core, test_any_t_shares_recover);
    tcase_add_test(core, test_below_threshold_is_uniform);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_unchecked_fixture(lim, setup, NULL);
    tcase_add_test(lim, test_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_unchecked_fixture(bad, setup, NULL);
    tcase_add_test(bad, test_malformed_shares);
    suite_add_tcase(s, bad);
    return s;
}
