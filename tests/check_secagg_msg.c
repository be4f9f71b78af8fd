/* Secure-aggregation message codec (crypto/secagg_msg): every message type
 * round-trips on seeded random contents; every truncation, a trailing
 * byte, a wrong version or type, an out-of-order list, a bad kind and a
 * count beyond its limit or beyond the bytes present are refused with a
 * message naming the field; nothing is allocated for an oversized count. */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secagg_msg.h"
#include "tests/fixtures.h"

static void setup(void) { ck_assert_int_ge(sodium_init(), 0); }

static void rnd(sl_test_rng *r, void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ((uint8_t *)p)[i] = (uint8_t)sl_test_rand(r);
}

/* A random valid message of the given type (arrays owned by the caller's
 * storage: free with free_msg). */
static void make(sl_test_rng *r, int type, sl_secagg_msg *m, uint32_t *words_store)
{
    memset(m, 0, sizeof *m);
    m->type = (uint8_t)type;
    m->round = sl_test_rand(r);
    m->site = (uint32_t)sl_test_rand(r);
    uint32_t n = 1 + (uint32_t)(sl_test_rand(r) % 12), id = (uint32_t)(sl_test_rand(r) % 100);
    switch (type) {
    case SL_SECAGG_MSG_ADVERTISE:
        rnd(r, &m->advert, sizeof m->advert);
        m->site = m->advert.site;
        break;
    case SL_SECAGG_MSG_KEYLIST:
        m->params = (sl_secagg_round_params){5, 4, 3, 3, 1 + (uint32_t)(sl_test_rand(r) % 999),
                                             sl_test_rand(r) & 1 ? 32 : 64};
        m->site = 0;
        m->count = n;
        m->adverts = malloc(n * sizeof *m->adverts);
        for (uint32_t i = 0; i < n; i++) {
            rnd(r, &m->adverts[i], sizeof m->adverts[i]);
            m->adverts[i].site = id += 1 + (uint32_t)(sl_test_rand(r) % 5);
        }
        break;
    case SL_SECAGG_MSG_SHARES:
    case SL_SECAGG_MSG_DELIVER:
        m->count = n;
        m->sealed = malloc(n * sizeof *m->sealed);
        for (uint32_t i = 0; i < n; i++) {
            rnd(r, m->sealed[i].bundle, sizeof m->sealed[i].bundle);
            m->sealed[i].peer = id += 1 + (uint32_t)(sl_test_rand(r) % 5);
        }
        break;
    case SL_SECAGG_MSG_MASKED:
        m->bits = sl_test_rand(r) & 1 ? 32 : 64;
        m->dim = 1 + (uint32_t)(sl_test_rand(r) % 50);
        rnd(r, words_store, (size_t)m->dim * (m->bits / 8));
        m->vec = words_store;
        break;
    case SL_SECAGG_MSG_UNMASK_REQ:
        m->site = 0;
        m->count = n;
        m->ids = malloc(n * sizeof *m->ids);
        for (uint32_t i = 0; i < n; i++)
            m->ids[i] = id += 1 + (uint32_t)(sl_test_rand(r) % 5);
        break;
    case SL_SECAGG_MSG_UNMASK:
        m->count = n;
        m->shares = malloc(n * sizeof *m->shares);
        for (uint32_t i = 0; i < n; i++) {
            rnd(r, m->shares[i].share, sizeof m->shares[i].share);
            m->shares[i].kind = sl_test_rand(r) & 1 ? SL_SECAGG_SHARE_SELF : SL_SECAGG_SHARE_KEY;
            m->shares[i].about = id += (uint32_t)(sl_test_rand(r) % 3); /* repeats allowed */
        }
        break;
    }
}

static void free_msg(sl_secagg_msg *m)
{
    free(m->adverts);
    free(m->sealed);
    free(m->ids);
    free(m->shares);
}

static void assert_same(const sl_secagg_msg *a, const sl_secagg_msg *b)
{
    ck_assert_uint_eq(a->type, b->type);
    ck_assert(a->round == b->round);
    ck_assert_uint_eq(a->site, b->site);
    ck_assert_uint_eq(a->count, b->count);
    switch (a->type) {
    case SL_SECAGG_MSG_ADVERTISE:
        ck_assert_mem_eq(&a->advert, &b->advert, sizeof a->advert);
        break;
    case SL_SECAGG_MSG_KEYLIST:
        ck_assert_mem_eq(&a->params, &b->params, sizeof a->params);
        ck_assert_mem_eq(a->adverts, b->adverts, a->count * sizeof *a->adverts);
        break;
    case SL_SECAGG_MSG_SHARES:
    case SL_SECAGG_MSG_DELIVER:
        for (uint32_t i = 0; i < a->count; i++) { /* field by field: the structs have padding */
            ck_assert_uint_eq(a->sealed[i].peer, b->sealed[i].peer);
            ck_assert_mem_eq(a->sealed[i].bundle, b->sealed[i].bundle, SL_SECAGG_BUNDLE_BYTES);
        }
        break;
    case SL_SECAGG_MSG_MASKED:
        ck_assert_uint_eq(a->bits, b->bits);
        ck_assert_uint_eq(a->dim, b->dim);
        ck_assert_mem_eq(a->vec, b->words, (size_t)a->dim * (a->bits / 8)); /* LE host */
        break;
    case SL_SECAGG_MSG_UNMASK_REQ:
        ck_assert_mem_eq(a->ids, b->ids, a->count * sizeof *a->ids);
        break;
    case SL_SECAGG_MSG_UNMASK:
        for (uint32_t i = 0; i < a->count; i++) {
            ck_assert_uint_eq(a->shares[i].about, b->shares[i].about);
            ck_assert_uint_eq(a->shares[i].kind, b->shares[i].kind);
            ck_assert_mem_eq(a->shares[i].share, b->shares[i].share, SL_SECAGG_SHARE_BYTES);
        }
        break;
    }
}

START_TEST(test_round_trip)
{
    sl_test_rng r = {31};
    static uint32_t words[200];
    sl_err err = {0};
    for (int it = 0; it < 140; it++) {
        int type = 1 + it % 7;
        sl_secagg_msg m, d;
        make(&r, type, &m, words);
        uint8_t *buf;
        size_t len;
        ck_assert_int_eq(sl_secagg_msg_encode(&m, &buf, &len, &err), 0);
        ck_assert_int_eq(sl_secagg_msg_decode(&d, buf, len, &err), 0);
        assert_same(&m, &d);
        sl_secagg_msg_fini(&d);
        /* Every truncation is refused and leaves nothing to free. */
        int bad = 0;
        for (size_t cut = 0; cut < len; cut++) {
            sl_secagg_msg t;
            bad += sl_secagg_msg_decode(&t, buf, cut, NULL) == 0;
            bad += t.adverts || t.sealed || t.ids || t.shares;
        }
        ck_assert_int_eq(bad, 0);
        /* One trailing byte is refused. */
        uint8_t *longer = malloc(len + 1);
        memcpy(longer, buf, len);
        longer[len] = 0;
        ck_assert_int_eq(sl_secagg_msg_decode(&d, longer, len + 1, &err), SL_EFORMAT);
        ck_assert_ptr_nonnull(strstr(err.msg, "trailing"));
        free(longer);
        free(buf);
        free_msg(&m);
    }
}
END_TEST

START_TEST(test_limits)
{
    sl_err err = {0};
    sl_secagg_msg m, d;
    memset(&m, 0, sizeof m);
    /* A count above the limit is refused before any allocation, even if
     * the bytes were there. */
    uint8_t hdr[10 + 4 + 4] = {SL_SECAGG_MSG_VERSION, SL_SECAGG_MSG_UNMASK_REQ};
    uint32_t c = SL_SECAGG_MSG_MAX_LIST + 1;
    memcpy(hdr + 10, &c, 4);
    ck_assert_int_eq(sl_secagg_msg_decode(&d, hdr, 14, &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "exceeds"));
    /* A count within the limit but beyond the bytes present. */
    c = 1000;
    memcpy(hdr + 10, &c, 4);
    ck_assert_int_eq(sl_secagg_msg_decode(&d, hdr, 14, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "left"));
    /* MASKED dimension limits, both ways. */
    uint8_t mk[10 + 4 + 1 + 4] = {SL_SECAGG_MSG_VERSION, SL_SECAGG_MSG_MASKED};
    mk[14] = 32;
    uint32_t dim = SL_SECAGG_MSG_MAX_DIM + 1;
    memcpy(mk + 15, &dim, 4);
    ck_assert_int_eq(sl_secagg_msg_decode(&d, mk, sizeof mk, &err), SL_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "dim"));
    /* The encoder refuses what the decoder would. */
    m.type = SL_SECAGG_MSG_UNMASK_REQ;
    uint32_t ids[2] = {5, 5};
    m.ids = ids;
    m.count = 2;
    uint8_t *buf = NULL;
    size_t len;
    ck_assert_int_eq(sl_secagg_msg_encode(&m, &buf, &len, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "increase"));
    ck_assert_ptr_null(buf);
}
END_TEST

START_TEST(test_malformed)
{
    sl_test_rng r = {32};
    static uint32_t words[200];
    sl_err err = {0};
    sl_secagg_msg m, d;
    uint8_t *buf;
    size_t len;
    /* Wrong version, unknown type. */
    make(&r, SL_SECAGG_MSG_ADVERTISE, &m, words);
    ck_assert_int_eq(sl_secagg_msg_encode(&m, &buf, &len, &err), 0);
    buf[0] = 2;
    ck_assert_int_eq(sl_secagg_msg_decode(&d, buf, len, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "version 2"));
    buf[0] = SL_SECAGG_MSG_VERSION;
    buf[1] = 99;
    ck_assert_int_eq(sl_secagg_msg_decode(&d, buf, len, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "unknown type 99"));
    free(buf);
    free_msg(&m);
    /* Key list out of order (swap two ids on the wire). */
    make(&r, SL_SECAGG_MSG_KEYLIST, &m, words);
    if (m.count < 2) {
        free_msg(&m);
        make(&r, SL_SECAGG_MSG_KEYLIST, &m, words);
    }
    ck_assert_int_eq(sl_secagg_msg_encode(&m, &buf, &len, &err), 0);
    size_t first = 10 + 21 + 4; /* header, params, count */
    memcpy(buf + first + 164, buf + first, 4); /* second id = first id */
    ck_assert_int_eq(sl_secagg_msg_decode(&d, buf, len, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "must increase"));
    /* Bad modulus bits in the key list. */
    buf[10 + 20] = 16;
    ck_assert_int_eq(sl_secagg_msg_decode(&d, buf, len, &err), SL_EFORMAT);
    free(buf);
    free_msg(&m);
    /* Unmask share of an unknown kind. */
    make(&r, SL_SECAGG_MSG_UNMASK, &m, words);
    ck_assert_int_eq(sl_secagg_msg_encode(&m, &buf, &len, &err), 0);
    buf[10 + 4 + 4 + 4] = 3;
    ck_assert_int_eq(sl_secagg_msg_decode(&d, buf, len, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "kind 3"));
    free(buf);
    free_msg(&m);
    /* Random bytes never crash the decoder and rarely parse. */
    uint8_t junk[300];
    for (int it = 0; it < 2000; it++) {
        size_t n = sl_test_rand(&r) % sizeof junk;
        rnd(&r, junk, n);
        if (n > 1) {
            junk[0] = SL_SECAGG_MSG_VERSION;
            junk[1] = (uint8_t)(1 + it % 7);
        }
        if (sl_secagg_msg_decode(&d, junk, n, NULL) == 0)
            sl_secagg_msg_fini(&d);
    }
}
END_TEST

Suite *secagg_msg_suite(void)
{
    Suite *s = suite_create("secagg_msg");
    TCase *core = tcase_create("core");
    tcase_add_unchecked_fixture(core, setup, NULL);
    tcase_add_test(core, test_round_trip);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_unchecked_fixture(lim, setup, NULL);
    tcase_add_test(lim, test_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_unchecked_fixture(bad, setup, NULL);
    tcase_add_test(bad, test_malformed);
    suite_add_tcase(s, bad);
    return s;
}
