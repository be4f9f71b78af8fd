/* Reader/writer codec core: round trips on seeded random records, every
 * truncation of a valid encoding refused, trailing bytes refused, length
 * prefixes past their limit refused. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "shared/reader.h"
#include "shared/writer.h"
#include "tests/fixtures.h"

typedef struct rec {
    uint8_t a;
    uint16_t b;
    uint32_t c;
    uint64_t d;
    uint8_t blob[40];
    size_t nblob;
} rec;

static void enc(sl_writer *w, const rec *x)
{
    sl_writer_u8(w, x->a);
    sl_writer_u16le(w, x->b);
    sl_writer_u32le(w, x->c);
    sl_writer_u64le(w, x->d);
    sl_writer_blob32(w, x->blob, x->nblob);
}

static int dec(const uint8_t *buf, size_t n, rec *x, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    rec t;
    memset(&t, 0, sizeof t);
    t.a = sl_reader_u8(&r);
    t.b = sl_reader_u16le(&r);
    t.c = sl_reader_u32le(&r);
    t.d = sl_reader_u64le(&r);
    const uint8_t *p = sl_reader_blob32(&r, sizeof t.blob, &t.nblob);
    int rc = sl_reader_finish(&r, err, "rec");
    if (rc)
        return rc; /* output untouched on failure */
    memcpy(t.blob, p, t.nblob);
    *x = t;
    return 0;
}

START_TEST(test_round_trip)
{
    sl_test_rng rng = {42};
    for (int it = 0; it < 1000; it++) {
        rec x = {0};
        uint64_t v = sl_test_rand(&rng);
        x.a = (uint8_t)v;
        x.b = (uint16_t)(v >> 8);
        x.c = (uint32_t)(v >> 24);
        x.d = sl_test_rand(&rng);
        x.nblob = sl_test_rand(&rng) % (sizeof x.blob + 1);
        for (size_t i = 0; i < x.nblob; i++)
            x.blob[i] = (uint8_t)sl_test_rand(&rng);
        sl_writer w;
        sl_writer_init(&w, 0);
        enc(&w, &x);
        ck_assert(sl_writer_ok(&w));
        size_t n;
        uint8_t *buf = sl_writer_take(&w, &n);
        ck_assert_uint_eq(n, 1 + 2 + 4 + 8 + 4 + x.nblob);
        rec y;
        sl_err err = {0};
        ck_assert_int_eq(dec(buf, n, &y, &err), 0);
        ck_assert_uint_eq(y.a, x.a);
        ck_assert_uint_eq(y.b, x.b);
        ck_assert_uint_eq(y.c, x.c);
        ck_assert(y.d == x.d);
        ck_assert_uint_eq(y.nblob, x.nblob);
        ck_assert_mem_eq(y.blob, x.blob, x.nblob);
        free(buf);
    }
}
END_TEST

START_TEST(test_little_endian_layout)
{
    sl_writer w;
    sl_writer_init(&w, 0);
    sl_writer_u32le(&w, 0x04030201u);
    sl_writer_u16le(&w, 0x0605);
    size_t n;
    uint8_t *buf = sl_writer_take(&w, &n);
    const uint8_t want[] = {1, 2, 3, 4, 5, 6};
    ck_assert_uint_eq(n, sizeof want);
    ck_assert_mem_eq(buf, want, sizeof want);
    free(buf);
}
END_TEST

START_TEST(test_writer_limit)
{
    sl_writer w;
    sl_writer_init(&w, 10);
    sl_writer_u64le(&w, 1);
    ck_assert(sl_writer_ok(&w));
    sl_writer_u32le(&w, 1); /* 12 > 10 */
    ck_assert(!sl_writer_ok(&w));
    sl_writer_u8(&w, 1); /* sticky */
    ck_assert(!sl_writer_ok(&w));
    ck_assert_uint_eq(w.len, 8);
    sl_writer_fini(&w);
}
END_TEST

START_TEST(test_every_truncation_refused)
{
    rec x = {.a = 1, .b = 2, .c = 3, .d = 4, .nblob = 17};
    memset(x.blob, 0xAB, sizeof x.blob);
    sl_writer w;
    sl_writer_init(&w, 0);
    enc(&w, &x);
    size_t n;
    uint8_t *buf = sl_writer_take(&w, &n);
    for (size_t cut = 0; cut < n; cut++) {
        rec y;
        memset(&y, 0x5A, sizeof y);
        rec before = y;
        sl_err err = {0};
        ck_assert_int_eq(dec(buf, cut, &y, &err), SL_EFORMAT);
        ck_assert_ptr_nonnull(strstr(err.msg, "rec"));
        ck_assert_mem_eq(&y, &before, sizeof y); /* untouched */
    }
    free(buf);
}
END_TEST

START_TEST(test_trailing_and_oversized)
{
    rec x = {.nblob = 3};
    sl_writer w;
    sl_writer_init(&w, 0);
    enc(&w, &x);
    sl_writer_u8(&w, 0); /* one trailing byte */
    size_t n;
    uint8_t *buf = sl_writer_take(&w, &n);
    rec y;
    sl_err err = {0};
    ck_assert_int_eq(dec(buf, n, &y, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "trailing"));
    free(buf);

    /* Length prefix larger than the field's limit: refused before reading. */
    sl_writer_init(&w, 0);
    sl_writer_u8(&w, 0);
    sl_writer_u16le(&w, 0);
    sl_writer_u32le(&w, 0);
    sl_writer_u64le(&w, 0);
    sl_writer_u32le(&w, 41);
    uint8_t pad[41] = {0};
    sl_writer_bytes(&w, pad, sizeof pad);
    buf = sl_writer_take(&w, &n);
    ck_assert_int_eq(dec(buf, n, &y, &err), SL_EFORMAT);
    free(buf);

    /* A huge length prefix on a tiny buffer never reads past it. */
    uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    sl_reader r;
    sl_reader_init(&r, huge, sizeof huge);
    size_t got = 1;
    ck_assert_ptr_null(sl_reader_blob32(&r, SIZE_MAX, &got));
    ck_assert_uint_eq(got, 0);
    ck_assert(!sl_reader_ok(&r));
}
END_TEST

Suite *reader_suite(void)
{
    Suite *s = suite_create("reader");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_round_trip);
    tcase_add_test(core, test_little_endian_layout);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_writer_limit);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_every_truncation_refused);
    tcase_add_test(bad, test_trailing_and_oversized);
    suite_add_tcase(s, bad);
    return s;
}
