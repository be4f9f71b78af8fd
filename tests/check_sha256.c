/* shared/sha256: known answers (FIPS 180-2 examples) and agreement with
 * libsodium's implementation, one-shot and streamed in random pieces, on
 * seeded random buffers up to 1 MiB. */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "shared/sha256.h"
#include "tests/fixtures.h"

static void hex_eq(const uint8_t d[32], const char *want)
{
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, d, 32);
    ck_assert_str_eq(hex, want);
}

START_TEST(test_known_answers)
{
    uint8_t d[32];
    sl_err err = {0};
    ck_assert_int_eq(sl_sha256("abc", 3, d, &err), 0);
    hex_eq(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ck_assert_int_eq(sl_sha256("", 0, d, &err), 0);
    hex_eq(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    ck_assert_int_eq(sl_sha256(two, strlen(two), d, &err), 0);
    hex_eq(d, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

START_TEST(test_agrees_with_libsodium)
{
    ck_assert_int_ge(sodium_init(), 0);
    sl_test_rng r = {17};
    size_t cap = 1u << 20;
    uint8_t *buf = malloc(cap);
    for (size_t i = 0; i < cap; i++)
        buf[i] = (uint8_t)sl_test_rand(&r);
    for (int k = 0; k < 40; k++) {
        size_t n = k == 0 ? cap : (size_t)(sl_test_rand(&r) % (k < 20 ? 300 : cap));
        uint8_t a[32], b[32], c[32];
        sl_err err = {0};
        crypto_hash_sha256(a, buf, n);
        ck_assert_int_eq(sl_sha256(buf, n, b, &err), 0);
        ck_assert_mem_eq(a, b, 32);
        sl_sha256_ctx *ctx = NULL;
        ck_assert_int_eq(sl_sha256_begin(&ctx, &err), 0);
        for (size_t off = 0; off < n;) {
            size_t piece = 1 + (size_t)(sl_test_rand(&r) % 70000);
            if (piece > n - off)
                piece = n - off;
            ck_assert_int_eq(sl_sha256_update(ctx, buf + off, piece, &err), 0);
            off += piece;
        }
        ck_assert_int_eq(sl_sha256_end(ctx, c, &err), 0);
        ck_assert_mem_eq(a, c, 32);
    }
    sl_sha256_free(NULL);
    free(buf);
}
END_TEST

Suite *sha256_suite(void)
{
    Suite *s = suite_create("sha256");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_known_answers);
    tcase_add_test(core, test_agrees_with_libsodium);
    suite_add_tcase(s, core);
    return s;
}
