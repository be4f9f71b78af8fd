/* Mask expansion (crypto/secagg_prg) and the random source (crypto/dp_rng):
 * OpenSSL's and libsodium's ChaCha20 agree byte for byte; the RFC 8439 test
 * vector; the fused multi-mask addition equals a naive word-by-word
 * reference for both moduli; masks with opposite signs cancel; seeded
 * streams are reproducible; bad arguments are refused. */
#include <check.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/dp_rng.h"
#include "crypto/secagg_prg.h"
#include "tests/fixtures.h"

static void setup(void) { ck_assert_int_ge(sodium_init(), 0); }

static void fill_seed(sl_test_rng *r, uint8_t *s)
{
    for (int i = 0; i < SL_SECAGG_SEED_BYTES; i++)
        s[i] = (uint8_t)sl_test_rand(r);
}

START_TEST(test_rfc8439_zero_key)
{
    /* RFC 8439 appendix A.1, test vector #1: key 0, nonce 0, counter 0. */
    static const char *want_hex =
        "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
        "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586";
    uint8_t want[64], got[64], seed[32] = {0};
    size_t bin_len;
    ck_assert_int_eq(sodium_hex2bin(want, sizeof want, want_hex, strlen(want_hex), NULL, &bin_len,
                                    NULL), 0);
    ck_assert_uint_eq(bin_len, 64);
    sl_secagg_prg *p;
    sl_err err = {0};
    ck_assert_int_eq(sl_secagg_prg_create(&p, &err), 0);
    ck_assert_int_eq(sl_secagg_prg_keystream(p, got, sizeof got, seed, &err), 0);
    ck_assert_mem_eq(got, want, 64);
    sl_secagg_prg_free(p);
}
END_TEST

START_TEST(test_openssl_matches_libsodium)
{
    sl_test_rng r = {7};
    sl_secagg_prg *p;
    sl_err err = {0};
    ck_assert_int_eq(sl_secagg_prg_create(&p, &err), 0);
    static const size_t lens[] = {1, 63, 64, 65, 4096, SL_SECAGG_PRG_BLOCK + 13, 100000};
    uint8_t *a = malloc(100000), *b = malloc(100000);
    const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t seed[32];
        fill_seed(&r, seed);
        ck_assert_int_eq(sl_secagg_prg_keystream(p, a, lens[i], seed, &err), 0);
        ck_assert_int_eq(crypto_stream_chacha20_ietf(b, lens[i], nonce, seed), 0);
        ck_assert_mem_eq(a, b, lens[i]);
        /* Same key, nonce and a later counter also agree (xor_ic). */
        memset(b, 0, lens[i]);
        ck_assert_int_eq(crypto_stream_chacha20_ietf_xor_ic(b, b, lens[i] > 64 ? lens[i] - 64 : 0,
                                                            nonce, 1, seed), 0);
        if (lens[i] > 64)
            ck_assert_mem_eq(a + 64, b, lens[i] - 64);
    }
    free(a);
    free(b);
    sl_secagg_prg_free(p);
}
END_TEST

/* Naive reference: expand each seed to its own buffer, then add word by word. */
static void reference(void *v, size_t n, unsigned bits, const uint8_t (*seeds)[32],
                      const int *signs, size_t k)
{
    const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
    size_t wb = bits / 8;
    uint8_t *ks = malloc(n * wb);
    for (size_t j = 0; j < k; j++) {
        ck_assert_int_eq(crypto_stream_chacha20_ietf(ks, n * wb, nonce, seeds[j]), 0);
        for (size_t i = 0; i < n; i++) {
            uint64_t w = 0;
            for (size_t b = 0; b < wb; b++)
                w |= (uint64_t)ks[i * wb + b] << (8 * b);
            if (bits == 32)
                ((uint32_t *)v)[i] += signs[j] > 0 ? (uint32_t)w : (uint32_t)-w;
            else
                ((uint64_t *)v)[i] += signs[j] > 0 ? w : (uint64_t)-w;
        }
    }
    free(ks);
}

START_TEST(test_fused_matches_reference)
{
    sl_test_rng r = {11};
    sl_secagg_prg *p;
    sl_err err = {0};
    ck_assert_int_eq(sl_secagg_prg_create(&p, &err), 0);
    static const size_t ns[] = {1, 7, 2048, 2049, 5000, 30011};
    for (unsigned bits = 32; bits <= 64; bits += 32) {
        for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
            size_t n = ns[t], k = 1 + sl_test_rand(&r) % 9;
            uint8_t seeds[9][32];
            int signs[9];
            for (size_t j = 0; j < k; j++) {
                fill_seed(&r, seeds[j]);
                signs[j] = sl_test_rand(&r) & 1 ? 1 : -1;
            }
            size_t bytes = n * bits / 8;
            uint8_t *a = malloc(bytes), *b = malloc(bytes);
            for (size_t i = 0; i < bytes; i++)
                a[i] = b[i] = (uint8_t)sl_test_rand(&r);
            ck_assert_int_eq(sl_secagg_prg_apply(p, a, n, bits, seeds, signs, k, &err), 0);
            reference(b, n, bits, seeds, signs, k);
            ck_assert_mem_eq(a, b, bytes);
            free(a);
            free(b);
        }
    }
    sl_secagg_prg_free(p);
}
END_TEST

START_TEST(test_opposite_masks_cancel)
{
    sl_test_rng r = {3};
    sl_secagg_prg *p;
    sl_err err = {0};
    ck_assert_int_eq(sl_secagg_prg_create(&p, &err), 0);
    size_t n = 10007;
    uint32_t *v = malloc(n * 4), *orig = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        v[i] = orig[i] = (uint32_t)sl_test_rand(&r);
    uint8_t seeds[2][32];
    fill_seed(&r, seeds[0]);
    memcpy(seeds[1], seeds[0], 32);
    int signs[2] = {1, -1};
    ck_assert_int_eq(sl_secagg_prg_apply(p, v, n, 32, seeds, signs, 2, &err), 0);
    ck_assert_mem_eq(v, orig, n * 4);
    /* One sign alone changes (almost) every word: the check can fail. */
    ck_assert_int_eq(sl_secagg_prg_apply(p, v, n, 32, seeds, signs, 1, &err), 0);
    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += v[i] == orig[i];
    ck_assert_uint_lt(same, 3);
    free(v);
    free(orig);
    sl_secagg_prg_free(p);
}
END_TEST

START_TEST(test_seeded_rng_reproducible)
{
    sl_dp_rng a, b, c;
    sl_dp_rng_init_u64(&a, 99);
    sl_dp_rng_init_u64(&b, 99);
    sl_dp_rng_init_u64(&c, 100);
    uint8_t x[2000], y[2000], z[2000];
    /* Different read sizes must give one and the same stream. */
    sl_dp_rng_bytes(&a, x, 2000);
    for (size_t off = 0; off < 2000; off += 7)
        sl_dp_rng_bytes(&b, y + off, off + 7 <= 2000 ? 7 : 2000 - off);
    sl_dp_rng_bytes(&c, z, 2000);
    ck_assert_mem_eq(x, y, 2000);
    ck_assert(memcmp(x, z, 2000) != 0);
    /* below() stays below and hits every value of a small range. */
    int hit[7] = {0};
    for (int i = 0; i < 700; i++) {
        uint64_t v = sl_dp_rng_below(&a, 7);
        ck_assert_uint_lt(v, 7);
        hit[v] = 1;
    }
    for (int i = 0; i < 7; i++)
        ck_assert(hit[i]);
    sl_dp_rng_fini(&a);
    sl_dp_rng_fini(&b);
    sl_dp_rng_fini(&c);
    sl_dp_rng sys;
    sl_dp_rng_init_system(&sys);
    uint64_t s1 = sl_dp_rng_u64(&sys), s2 = sl_dp_rng_u64(&sys);
    ck_assert(s1 != s2); /* fails with probability 2^-64 */
    /* Across the operating-system rekeys: two system generators differ,
     * each 1 MiB segment differs from the previous one, and the bytes are
     * balanced (a stuck or repeating key would fail). */
    sl_dp_rng sys2;
    sl_dp_rng_init_system(&sys2);
    size_t seg = (size_t)SL_DP_RNG_CHUNK * SL_DP_RNG_REKEY, total = 3 * seg;
    uint8_t *u = malloc(total), *w = malloc(total);
    sl_dp_rng_bytes(&sys, u, total);
    sl_dp_rng_bytes(&sys2, w, total);
    ck_assert(memcmp(u, w, total) != 0);
    ck_assert(memcmp(u, u + seg, seg) != 0 && memcmp(u + seg, u + 2 * seg, seg) != 0);
    uint64_t ones = 0;
    for (size_t i = 0; i < total; i++)
        ones += (uint64_t)__builtin_popcount(u[i]);
    double bits = 8.0 * (double)total, dev = fabs((double)ones - bits / 2) / sqrt(bits / 4);
    ck_assert_msg(dev < 6, "system stream bit balance off by %.1f sd", dev);
    free(u);
    free(w);
    sl_dp_rng_fini(&sys2);
    sl_dp_rng_fini(&sys);
}
END_TEST

/* below(n) is exactly uniform on both of its paths (32- and 64-bit draws)
 * and across chunk boundaries: for n = 3 * 2^k the residues mod 3 are
 * equally likely, while a multiply-shift without rejection would give
 * residue 0 half of the time. Chi-square with 2 degrees of freedom at
 * p = 1e-4 (18.42). */
START_TEST(test_rng_below_uniform)
{
    const uint64_t ns[] = {3, (uint64_t)3 << 30, ((uint64_t)1 << 32) - 1, (uint64_t)3 << 62};
    sl_dp_rng r;
    sl_dp_rng_init_u64(&r, 2026);
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        enum { DRAWS = 30000 };
        double cnt[3] = {0};
        uint64_t top = 0;
        for (int i = 0; i < DRAWS; i++) {
            uint64_t v = sl_dp_rng_below(&r, ns[k]);
            ck_assert_uint_lt(v, ns[k]);
            cnt[v % 3] += 1;
            top = v > top ? v : top;
            if (i % 97 == 0) { /* move the read position off the 4- and 8-byte grid */
                uint8_t skip[3];
                sl_dp_rng_bytes(&r, skip, 1 + (size_t)i % 3);
            }
        }
        double chi = 0, e = DRAWS / 3.0;
        for (int j = 0; j < 3; j++)
            chi += (cnt[j] - e) * (cnt[j] - e) / e;
        ck_assert_msg(chi < 18.42, "below(%llu): residues mod 3 give chi-square %.1f",
                      (unsigned long long)ns[k], chi);
        /* The top thousandth of the range is reached (DRAWS / 1000 expected). */
        ck_assert(top >= ns[k] - ns[k] / 1000 - 1);
    }
    sl_dp_rng_fini(&r);
}
END_TEST

START_TEST(test_limits)
{
    sl_secagg_prg *p;
    sl_err err = {0};
    ck_assert_int_eq(sl_secagg_prg_create(&p, &err), 0);
    uint32_t v[4] = {1, 2, 3, 4};
    uint8_t seeds[1][32] = {{0}};
    int sign = 1;
    /* Nothing to do is fine and changes nothing. */
    ck_assert_int_eq(sl_secagg_prg_apply(p, v, 0, 32, seeds, &sign, 1, &err), 0);
    ck_assert_int_eq(sl_secagg_prg_apply(p, v, 4, 32, seeds, &sign, 0, &err), 0);
    ck_assert_uint_eq(v[0], 1);
    ck_assert_int_eq(sl_secagg_prg_apply(p, v, 4, 32, seeds, &sign,
                                         SL_SECAGG_PRG_MAX_SEEDS + 1, &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "masks"));
    sl_secagg_prg_free(p);
}
END_TEST

START_TEST(test_bad_arguments)
{
    sl_secagg_prg *p;
    sl_err err = {0};
    ck_assert_int_eq(sl_secagg_prg_create(&p, &err), 0);
    uint32_t v[4] = {1, 2, 3, 4};
    uint8_t seeds[1][32] = {{0}};
    int sign = 1, zero = 0;
    ck_assert_int_eq(sl_secagg_prg_apply(p, v, 4, 16, seeds, &sign, 1, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "16"));
    ck_assert_int_eq(sl_secagg_prg_apply(p, v, 4, 32, seeds, &zero, 1, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "sign 0"));
    ck_assert_uint_eq(v[3], 4); /* untouched */
    sl_secagg_prg_free(p);
}
END_TEST

Suite *secagg_prg_suite(void)
{
    Suite *s = suite_create("secagg_prg");
    TCase *core = tcase_create("core");
    tcase_add_unchecked_fixture(core, setup, NULL);
    tcase_add_test(core, test_rfc8439_zero_key);
    tcase_add_test(core, test_openssl_matches_libsodium);
    tcase_add_test(core, test_fused_matches_reference);
    tcase_add_test(core, test_opposite_masks_cancel);
    tcase_add_test(core, test_seeded_rng_reproducible);
    tcase_add_test(core, test_rng_below_uniform);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_unchecked_fixture(lim, setup, NULL);
    tcase_add_test(lim, test_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_unchecked_fixture(bad, setup, NULL);
    tcase_add_test(bad, test_bad_arguments);
    suite_add_tcase(s, bad);
    return s;
}
