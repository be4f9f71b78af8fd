/* Wire codec: every frame type and every inner message round-trips on
 * seeded random contents; every truncation, a trailing byte, a bad magic,
 * version or type, and each field past its limit are refused without
 * touching the output. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/wire.h"
#include "tests/fixtures.h"

static void rand_bytes(sl_test_rng *r, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)sl_test_rand(r);
}

static void rand_text(sl_test_rng *r, char *out, size_t max)
{
    size_t n = sl_test_rand(r) % (max + 1);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(0x20 + sl_test_rand(r) % 95);
    out[n] = 0;
}

/* A random, valid message of the given type; byte fields point into pool. */
static void rand_msg(sl_test_rng *r, uint8_t type, sl_wire_msg *m, uint8_t *pool, size_t pool_n)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    switch (type) {
    case SL_WIRE_HELLO:
        rand_bytes(r, m->u.hello.eph, 32);
        rand_bytes(r, m->u.hello.rand, 32);
        break;
    case SL_WIRE_HELLO_REPLY: {
        sl_wire_hello_reply *h = &m->u.hello_reply;
        rand_bytes(r, h->sid, 16);
        rand_bytes(r, h->eph, 32);
        rand_bytes(r, h->rand, 32);
        h->session_ttl = (uint32_t)sl_test_rand(r);
        h->ticket_ttl = (uint32_t)sl_test_rand(r);
        h->cert_len = 1 + sl_test_rand(r) % (pool_n < SL_WIRE_MAX_CERT ? pool_n : SL_WIRE_MAX_CERT);
        rand_bytes(r, pool, h->cert_len);
        h->cert = pool;
        rand_bytes(r, h->sig, 64);
        break;
    }
    case SL_WIRE_RESUME:
        rand_bytes(r, m->u.resume.ticket, 16);
        rand_bytes(r, m->u.resume.eph, 32);
        rand_bytes(r, m->u.resume.rand, 32);
        rand_bytes(r, m->u.resume.mac, 32);
        break;
    case SL_WIRE_RESUME_OK: {
        sl_wire_resume_ok *o = &m->u.resume_ok;
        rand_bytes(r, o->sid, 16);
        rand_bytes(r, o->eph, 32);
        rand_bytes(r, o->rand, 32);
        o->session_ttl = (uint32_t)sl_test_rand(r);
        o->ticket_ttl = (uint32_t)sl_test_rand(r);
        rand_bytes(r, o->mac, 32);
        break;
    }
    case SL_WIRE_FINISH:
    case SL_WIRE_FINISH_OK:
    case SL_WIRE_DATA:
    case SL_WIRE_REPLY: {
        sl_wire_sealed *s = &m->u.sealed;
        rand_bytes(r, s->sid, 16);
        s->counter = sl_test_rand(r);
        s->ack = type == SL_WIRE_REPLY ? sl_test_rand(r)
                 : type == SL_WIRE_DATA ? sl_test_rand(r) % (s->counter + 1 ? s->counter + 1 : 1)
                                        : 0;
        rand_bytes(r, s->nonce, 24);
        s->ct_len = 16 + sl_test_rand(r) % (pool_n - 16);
        rand_bytes(r, pool, s->ct_len);
        s->ct = pool;
        break;
    }
    case SL_WIRE_ERROR:
        m->u.error.code = (uint16_t)sl_test_rand(r);
        rand_text(r, m->u.error.msg, SL_WIRE_MAX_TEXT);
        break;
    }
}

static void assert_same(const sl_wire_msg *a, const sl_wire_msg *b)
{
    ck_assert_uint_eq(a->type, b->type);
    switch (a->type) {
    case SL_WIRE_HELLO:
        ck_assert_mem_eq(&a->u.hello, &b->u.hello, sizeof a->u.hello);
        break;
    case SL_WIRE_HELLO_REPLY: {
        const sl_wire_hello_reply *x = &a->u.hello_reply, *y = &b->u.hello_reply;
        ck_assert_mem_eq(x->sid, y->sid, 16);
        ck_assert_mem_eq(x->eph, y->eph, 32);
        ck_assert_mem_eq(x->rand, y->rand, 32);
        ck_assert_uint_eq(x->session_ttl, y->session_ttl);
        ck_assert_uint_eq(x->ticket_ttl, y->ticket_ttl);
        ck_assert_uint_eq(x->cert_len, y->cert_len);
        ck_assert_mem_eq(x->cert, y->cert, x->cert_len);
        ck_assert_mem_eq(x->sig, y->sig, 64);
        break;
    }
    case SL_WIRE_RESUME:
        ck_assert_mem_eq(&a->u.resume, &b->u.resume, sizeof a->u.resume);
        break;
    case SL_WIRE_RESUME_OK:
        ck_assert_mem_eq(&a->u.resume_ok, &b->u.resume_ok, sizeof a->u.resume_ok);
        break;
    case SL_WIRE_ERROR:
        ck_assert_uint_eq(a->u.error.code, b->u.error.code);
        ck_assert_str_eq(a->u.error.msg, b->u.error.msg);
        break;
    default: {
        const sl_wire_sealed *x = &a->u.sealed, *y = &b->u.sealed;
        ck_assert_mem_eq(x->sid, y->sid, 16);
        ck_assert(x->counter == y->counter);
        ck_assert(x->ack == y->ack);
        ck_assert_mem_eq(x->nonce, y->nonce, 24);
        ck_assert_uint_eq(x->ct_len, y->ct_len);
        ck_assert_mem_eq(x->ct, y->ct, x->ct_len);
    }
    }
}

START_TEST(test_frames_round_trip)
{
    sl_test_rng rng = {6};
    enum { POOL = 70000 };
    uint8_t *pool = malloc(POOL);
    for (int it = 0; it < 400; it++) {
        uint8_t type = (uint8_t)(1 + it % 9);
        sl_wire_msg m, d;
        rand_msg(&rng, type, &m, pool, POOL);
        uint8_t *buf = NULL;
        size_t n = 0;
        sl_err err = {0};
        ck_assert_msg(sl_wire_encode(&m, &buf, &n, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(sl_wire_decode(buf, n, &d, &err), 0);
        assert_same(&m, &d);
        ck_assert_int_eq(sl_wire_is_sealed(type), sl_wire_is_sealed(d.type));
        /* The sealed header helper writes the same bytes as the encoder. */
        if (sl_wire_is_sealed(type)) {
            uint8_t hdr[SL_WIRE_SEALED_HDR];
            sl_wire_sealed_header(hdr, type, &m.u.sealed);
            ck_assert_mem_eq(hdr, buf, SL_WIRE_SEALED_HDR);
            ck_assert_ptr_eq(d.u.sealed.ct, buf + SL_WIRE_SEALED_HDR);
        }
        free(buf);
    }
    free(pool);
}
END_TEST

START_TEST(test_inner_round_trip)
{
    sl_test_rng rng = {7};
    uint8_t cert[SL_WIRE_MAX_CERT];
    sl_err err = {0};
    for (int it = 0; it < 200; it++) {
        uint8_t *buf = NULL;
        size_t n = 0;
        sl_wire_finish f = {.cert = cert, .cert_len = 1 + sl_test_rand(&rng) % sizeof cert}, g;
        rand_bytes(&rng, cert, f.cert_len);
        rand_bytes(&rng, f.sig, 64);
        ck_assert_int_eq(sl_wire_finish_encode(&f, &buf, &n, &err), 0);
        ck_assert_int_eq(sl_wire_finish_decode(buf, n, &g, &err), 0);
        ck_assert_uint_eq(g.cert_len, f.cert_len);
        ck_assert_mem_eq(g.cert, cert, f.cert_len);
        ck_assert_mem_eq(g.sig, f.sig, 64);
        free(buf);

        sl_wire_finish_ok o, p;
        o.session_ttl = (uint32_t)sl_test_rand(&rng);
        o.ticket_ttl = (uint32_t)sl_test_rand(&rng);
        rand_text(&rng, o.peer, SL_WIRE_MAX_NAME);
        ck_assert_int_eq(sl_wire_finish_ok_encode(&o, &buf, &n, &err), 0);
        ck_assert_int_eq(sl_wire_finish_ok_decode(buf, n, &p, &err), 0);
        ck_assert_uint_eq(p.session_ttl, o.session_ttl);
        ck_assert_uint_eq(p.ticket_ttl, o.ticket_ttl);
        ck_assert_str_eq(p.peer, o.peer);
        free(buf);

        sl_wire_file_req q = {.offset = sl_test_rand(&rng),
                              .len = (uint32_t)(sl_test_rand(&rng) % (SL_WIRE_MAX_CHUNK + 1))},
                         q2;
        size_t nl = 1 + sl_test_rand(&rng) % SL_WIRE_MAX_NAME;
        static const char alpha[] = "abcXYZ019._-";
        for (size_t i = 0; i < nl; i++)
            q.name[i] = alpha[sl_test_rand(&rng) % (sizeof alpha - 1)];
        q.name[0] = 'f';
        q.name[nl] = 0;
        ck_assert_int_eq(sl_wire_file_req_encode(&q, &buf, &n, &err), 0);
        ck_assert_int_eq(sl_wire_file_req_decode(buf, n, &q2, &err), 0);
        ck_assert_str_eq(q2.name, q.name);
        ck_assert(q2.offset == q.offset);
        ck_assert_uint_eq(q2.len, q.len);
        free(buf);

        sl_wire_file_info fi = {.size = sl_test_rand(&rng),
                                .chunk = 1 + (uint32_t)(sl_test_rand(&rng) % SL_WIRE_MAX_CHUNK)},
                          fj;
        rand_bytes(&rng, fi.digest, 32);
        ck_assert_int_eq(sl_wire_file_info_encode(&fi, &buf, &n, &err), 0);
        ck_assert_int_eq(sl_wire_file_info_decode(buf, n, &fj, &err), 0);
        ck_assert(fj.size == fi.size);
        ck_assert_uint_eq(fj.chunk, fi.chunk);
        ck_assert_mem_eq(fj.digest, fi.digest, 32);
        free(buf);

        sl_wire_error e = {.code = (uint16_t)sl_test_rand(&rng)}, e2;
        rand_text(&rng, e.msg, SL_WIRE_MAX_TEXT);
        ck_assert_int_eq(sl_wire_app_error_encode(&e, &buf, &n, &err), 0);
        ck_assert_int_eq(sl_wire_app_error_decode(buf, n, &e2, &err), 0);
        ck_assert_uint_eq(e2.code, e.code);
        ck_assert_str_eq(e2.msg, e.msg);
        free(buf);

        uint8_t app[64];
        uint16_t type = (uint16_t)(1 + sl_test_rand(&rng) % 0xfffe);
        sl_wire_app_header(app, type);
        size_t plen = sl_test_rand(&rng) % (sizeof app - SL_WIRE_APP_HDR + 1);
        rand_bytes(&rng, app + SL_WIRE_APP_HDR, plen);
        sl_wire_app a;
        ck_assert_int_eq(sl_wire_app_decode(app, SL_WIRE_APP_HDR + plen, &a, &err), 0);
        ck_assert_uint_eq(a.type, type);
        ck_assert_uint_eq(a.len, plen);
        ck_assert_ptr_eq(a.payload, app + SL_WIRE_APP_HDR);

        uint8_t ch[40];
        uint64_t off = sl_test_rand(&rng);
        sl_wire_chunk_header(ch, off);
        sl_wire_chunk c;
        ck_assert_int_eq(sl_wire_chunk_decode(ch, sizeof ch, &c, &err), 0);
        ck_assert(c.offset == off);
        ck_assert_uint_eq(c.len, sizeof ch - SL_WIRE_CHUNK_HDR);
    }
}
END_TEST

START_TEST(test_layout_known_answer)
{
    /* A HELLO is exactly: "SL", version 1, type 1, 32-byte key, 32-byte nonce. */
    sl_wire_msg m = {.type = SL_WIRE_HELLO};
    memset(m.u.hello.eph, 0xAA, 32);
    memset(m.u.hello.rand, 0xBB, 32);
    uint8_t *buf;
    size_t n;
    ck_assert_int_eq(sl_wire_encode(&m, &buf, &n, NULL), 0);
    ck_assert_uint_eq(n, 68);
    ck_assert_mem_eq(buf, "SL\x01\x01", 4);
    ck_assert_uint_eq(buf[4], 0xAA);
    ck_assert_uint_eq(buf[67], 0xBB);
    free(buf);
    /* Sealed header: counter and ack little-endian at 20 and 28, nonce at 36,
     * ciphertext length at 60. */
    sl_wire_sealed s = {.counter = 0x0102030405060708ull, .ack = 9, .ct_len = 0x11223344};
    uint8_t h[SL_WIRE_SEALED_HDR];
    sl_wire_sealed_header(h, SL_WIRE_REPLY, &s);
    ck_assert_uint_eq(h[3], SL_WIRE_REPLY);
    ck_assert_uint_eq(h[20], 0x08);
    ck_assert_uint_eq(h[27], 0x01);
    ck_assert_uint_eq(h[28], 9);
    ck_assert_uint_eq(h[60], 0x44);
    ck_assert_uint_eq(h[63], 0x11);
}
END_TEST

START_TEST(test_limits)
{
    sl_err err = {0};
    uint8_t *buf = NULL;
    size_t n = 0;
    static uint8_t big[SL_WIRE_MAX_CERT + 1];
    sl_wire_msg m = {.type = SL_WIRE_HELLO_REPLY};
    m.u.hello_reply.cert = big;
    m.u.hello_reply.cert_len = sizeof big;
    ck_assert_int_eq(sl_wire_encode(&m, &buf, &n, &err), SL_ELIMIT);
    m.u.hello_reply.cert_len = 0;
    ck_assert_int_eq(sl_wire_encode(&m, &buf, &n, &err), SL_ELIMIT);
    m.type = SL_WIRE_DATA;
    m.u.sealed.ct = big;
    m.u.sealed.ct_len = 15;
    ck_assert_int_eq(sl_wire_encode(&m, &buf, &n, &err), SL_ELIMIT);
    m.type = SL_WIRE_ERROR;
    memset(m.u.error.msg, 'x', sizeof m.u.error.msg);
    m.u.error.msg[SL_WIRE_MAX_TEXT] = 0;
    ck_assert_int_eq(sl_wire_encode(&m, &buf, &n, &err), 0);
    free(buf);
    m.u.error.msg[3] = '\n';
    ck_assert_int_eq(sl_wire_encode(&m, &buf, &n, &err), SL_EINVAL);
    m.type = 42;
    ck_assert_int_eq(sl_wire_encode(&m, &buf, &n, &err), SL_EINVAL);

    sl_wire_file_req q = {.name = "emulator.bin", .len = SL_WIRE_MAX_CHUNK + 1};
    ck_assert_int_eq(sl_wire_file_req_encode(&q, &buf, &n, &err), SL_ELIMIT);
    const char *bad_names[] = {"", ".hidden", "a/b", "a b", "..", "x\x01"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        snprintf(q.name, sizeof q.name, "%s", bad_names[i]);
        q.len = 1;
        ck_assert_int_eq(sl_wire_file_req_encode(&q, &buf, &n, &err), SL_EINVAL);
    }
    sl_wire_file_info fi = {.chunk = 0};
    ck_assert_int_eq(sl_wire_file_info_encode(&fi, &buf, &n, &err), SL_ELIMIT);

    /* A frame over the limit is refused before it is parsed. */
    size_t huge = SL_WIRE_MAX_FRAME + 1;
    uint8_t *h = calloc(1, huge);
    sl_wire_msg d;
    ck_assert_int_eq(sl_wire_decode(h, huge, &d, &err), SL_ELIMIT);
    /* An application payload over the limit. */
    sl_wire_app_header(h, 5);
    sl_wire_app a;
    ck_assert_int_eq(sl_wire_app_decode(h, SL_WIRE_APP_HDR + SL_WIRE_MAX_PAYLOAD + 1, &a, &err),
                     SL_ELIMIT);
    ck_assert_int_eq(sl_wire_app_decode(h, SL_WIRE_APP_HDR + SL_WIRE_MAX_PAYLOAD, &a, &err), 0);
    sl_wire_chunk c;
    ck_assert_int_eq(sl_wire_chunk_decode(h, SL_WIRE_CHUNK_HDR + SL_WIRE_MAX_CHUNK + 1, &c, &err),
                     SL_ELIMIT);
    free(h);
}
END_TEST

START_TEST(test_truncation_and_trailing)
{
    sl_test_rng rng = {8};
    uint8_t pool[300];
    for (uint8_t type = 1; type <= 9; type++) {
        sl_wire_msg m;
        rand_msg(&rng, type, &m, pool, sizeof pool);
        if (type == SL_WIRE_HELLO_REPLY)
            m.u.hello_reply.cert_len = 200;
        uint8_t *buf = NULL;
        size_t n = 0;
        sl_err err = {0};
        ck_assert_int_eq(sl_wire_encode(&m, &buf, &n, &err), 0);
        for (size_t cut = 0; cut < n; cut++) {
            sl_wire_msg d, before;
            memset(&d, 0x5A, sizeof d);
            before = d;
            ck_assert_msg(sl_wire_decode(buf, cut, &d, &err) == SL_EFORMAT, "type %u cut %zu",
                          type, cut);
            ck_assert_mem_eq(&d, &before, sizeof d);
        }
        uint8_t *longer = malloc(n + 1);
        memcpy(longer, buf, n);
        longer[n] = 0;
        sl_wire_msg d;
        ck_assert_int_eq(sl_wire_decode(longer, n + 1, &d, &err), SL_EFORMAT);
        ck_assert_msg(strstr(err.msg, "trailing") != NULL, "%s", err.msg);
        free(longer);
        free(buf);
    }
}
END_TEST

START_TEST(test_bad_headers)
{
    sl_wire_msg m = {.type = SL_WIRE_HELLO};
    uint8_t *buf;
    size_t n;
    ck_assert_int_eq(sl_wire_encode(&m, &buf, &n, NULL), 0);
    sl_err err = {0};
    sl_wire_msg d;
    buf[0] = 'X';
    ck_assert_int_eq(sl_wire_decode(buf, n, &d, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "magic"));
    buf[0] = 'S';
    buf[2] = 2;
    ck_assert_int_eq(sl_wire_decode(buf, n, &d, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "version 2 is not supported"));
    buf[2] = 1;
    for (int t = 0; t < 256; t++) {
        if (t >= 1 && t <= 9)
            continue;
        buf[3] = (uint8_t)t;
        ck_assert_int_eq(sl_wire_decode(buf, n, &d, &err), SL_EFORMAT);
    }
    free(buf);
    /* A FINISH with an ack, a DATA acking above its own counter, an ERROR
     * with a control byte,
     * a certificate length of zero, an application header with reserved bits. */
    uint8_t ct[16] = {0};
    sl_wire_msg s = {.type = SL_WIRE_REPLY};
    s.u.sealed.ct = ct;
    s.u.sealed.ct_len = 16;
    s.u.sealed.ack = 3;
    ck_assert_int_eq(sl_wire_encode(&s, &buf, &n, NULL), 0);
    buf[3] = SL_WIRE_FINISH;
    ck_assert_int_eq(sl_wire_decode(buf, n, &d, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "ack"));
    buf[3] = SL_WIRE_DATA; /* counter 0, ack 3 */
    ck_assert_int_eq(sl_wire_decode(buf, n, &d, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "above its counter"));
    buf[20] = 3; /* counter 3: acking itself is fine */
    ck_assert_int_eq(sl_wire_decode(buf, n, &d, &err), 0);
    free(buf);
    sl_wire_msg e = {.type = SL_WIRE_ERROR};
    snprintf(e.u.error.msg, sizeof e.u.error.msg, "abc");
    ck_assert_int_eq(sl_wire_encode(&e, &buf, &n, NULL), 0);
    buf[n - 1] = 0x07;
    ck_assert_int_eq(sl_wire_decode(buf, n, &d, &err), SL_EFORMAT);
    free(buf);
    uint8_t app[8];
    sl_wire_app_header(app, 9);
    app[2] = 1;
    sl_wire_app a;
    ck_assert_int_eq(sl_wire_app_decode(app, sizeof app, &a, &err), SL_EFORMAT);
    sl_wire_app_header(app, 0);
    ck_assert_int_eq(sl_wire_app_decode(app, sizeof app, &a, &err), SL_EFORMAT);
    ck_assert_int_eq(sl_wire_app_decode(app, 3, &a, &err), SL_EFORMAT);
    /* File request with a name that is not a transfer name. */
    uint8_t fr[4 + 3 + 12] = {3, 0, 0, 0, '.', '.', '/'};
    sl_wire_file_req q;
    ck_assert_int_eq(sl_wire_file_req_decode(fr, sizeof fr, &q, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "file request"));
}
END_TEST

Suite *wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_frames_round_trip);
    tcase_add_test(core, test_inner_round_trip);
    tcase_add_test(core, test_layout_known_answer);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_limits);
    tcase_set_timeout(lim, 60);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_truncation_and_trailing);
    tcase_add_test(bad, test_bad_headers);
    suite_add_tcase(s, bad);
    return s;
}
