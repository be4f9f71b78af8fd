/* Channel: handshake, traffic, re-sends, resumption and every refusal the
 * issue lists, driven at the byte level (frames passed by hand, a fake
 * clock) plus tests over real nanomsg sockets on loopback (calls, a REQ
 * re-send answered once, a chunked fetch that resumes, the pipelined
 * stream with re-sends inside its window). A "rogue" client
 * rebuilt here from docs/protocol.md's key schedule presents certificates
 * and keys a real client would refuse to load: it checks the server's
 * refusals and, when honest, cross-checks the documented key schedule. */
#include <arpa/inet.h>
#include <check.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crypto/channel.h"
#include "crypto/identity.h"
#include "shared/fsutil.h"
#include "shared/transport.h"
#include "shared/wire.h"
#include "tests/fixtures.h"

/* ---- fixtures ----------------------------------------------------------- */

static uint64_t g_now = 1000000;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return g_now;
}
static void quiet(void *ctx, sl_chan_log_level level, const char *line)
{
    (void)ctx, (void)level, (void)line;
}

typedef struct fx {
    char dir[256];
    char ca_crt[320], ca_key[320], crl[320];
    sl_chan_server_cfg scfg;
    sl_chan_client_cfg ccfg; /* site "a" */
} fx;

static void pathf(char *out, size_t cap, const char *dir, const char *name)
{
    ck_assert_int_lt(snprintf(out, cap, "%s/%s", dir, name), (int)cap);
}

/* Issues a site certificate name.crt/name.key in dir from the CA in dir. */
static void make_site(const char *dir, const char *ca_crt, const char *ca_key, const char *name,
                      const sl_identity_validity *v, sl_cert_info *info, sl_chan_client_cfg *cfg)
{
    char key[320], crt[320], kn[80], cn[80];
    snprintf(kn, sizeof kn, "%s.key", name);
    snprintf(cn, sizeof cn, "%s.crt", name);
    pathf(key, sizeof key, dir, kn);
    pathf(crt, sizeof crt, dir, cn);
    sl_err err = {0};
    uint8_t pk[32];
    ck_assert_msg(sl_identity_keygen(key, pk, &err) == 0, "%s", err.msg);
    ck_assert_msg(sl_identity_issue(ca_crt, ca_key, name, SL_IDENTITY_ROLE_SITE, pk, v, crt, info,
                                    &err) == 0,
                  "%s", err.msg);
    if (cfg) {
        memset(cfg, 0, sizeof *cfg);
        snprintf(cfg->server, sizeof cfg->server, "127.0.0.1:1");
        snprintf(cfg->name, sizeof cfg->name, "%s", name);
        snprintf(cfg->cert, sizeof cfg->cert, "%s", crt);
        snprintf(cfg->key, sizeof cfg->key, "%s", key);
        snprintf(cfg->ca, sizeof cfg->ca, "%s", ca_crt);
        cfg->log = quiet;
        cfg->clock = fake_clock;
    }
}

static void fx_init(fx *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s", sl_test_tmpdir());
    pathf(f->ca_crt, sizeof f->ca_crt, f->dir, "ca.crt");
    pathf(f->ca_key, sizeof f->ca_key, f->dir, "ca.key");
    pathf(f->crl, sizeof f->crl, f->dir, "crl.pem");
    sl_err err = {0};
    ck_assert_msg(sl_identity_ca_create(f->ca_crt, f->ca_key, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(sl_identity_crl_write(f->ca_crt, f->ca_key, NULL, 0, f->crl, &err), 0);
    uint8_t pk[32];
    sl_chan_server_cfg *s = &f->scfg;
    pathf(s->key, sizeof s->key, f->dir, "server.key");
    pathf(s->cert, sizeof s->cert, f->dir, "server.crt");
    ck_assert_int_eq(sl_identity_keygen(s->key, pk, &err), 0);
    ck_assert_int_eq(sl_identity_issue(f->ca_crt, f->ca_key, "server", SL_IDENTITY_ROLE_SERVER, pk,
                                       NULL, s->cert, NULL, &err),
                     0);
    snprintf(s->ca, sizeof s->ca, "%s", f->ca_crt);
    snprintf(s->crl, sizeof s->crl, "%s", f->crl);
    snprintf(s->listen, sizeof s->listen, "127.0.0.1:1");
    s->log = quiet;
    s->clock = fake_clock;
    make_site(f->dir, f->ca_crt, f->ca_key, "a", NULL, NULL, &f->ccfg);
}

static sl_chan_server *mk_server(const sl_chan_server_cfg *cfg)
{
    sl_chan_server *s = NULL;
    sl_err err = {0};
    ck_assert_msg(sl_chan_server_create(cfg, &s, &err) == 0, "%s", err.msg);
    return s;
}

static sl_chan_client *mk_client(const sl_chan_client_cfg *cfg)
{
    sl_chan_client *c = NULL;
    sl_err err = {0};
    ck_assert_msg(sl_chan_client_create(cfg, &c, &err) == 0, "%s", err.msg);
    return c;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(d);
    memcpy(d, p, n);
    return d;
}

/* Server processes a copy of frame; returns its code; *reply is a copy. */
static int srv(sl_chan_server *s, const uint8_t *frame, size_t n, sl_chan_request *req,
               uint8_t **reply, size_t *rlen, sl_err *err)
{
    uint8_t *copy = dup_bytes(frame, n);
    const uint8_t *r = NULL;
    size_t rl = 0;
    sl_chan_request tmp;
    int rc = sl_chan_server_process(s, copy, n, NULL, 0, req ? req : &tmp, &r, &rl, err);
    *reply = r ? dup_bytes(r, rl) : NULL;
    *rlen = rl;
    if (!req || !req->type)
        free(copy);
    else
        req->payload = dup_bytes(req->payload, req->len), free(copy);
    return rc;
}

/* Full handshake between c and s, frames passed by hand. */
static void handshake(sl_chan_server *s, sl_chan_client *c)
{
    sl_err err = {0};
    uint8_t *f = NULL, *reply = NULL;
    size_t n = 0, rl = 0;
    ck_assert_int_eq(sl_chan_client_start(c, 0, &f, &n, &err), 0);
    while (f) {
        int rc = srv(s, f, n, NULL, &reply, &rl, &err);
        ck_assert_msg(rc == 0, "server: %s", err.msg);
        sl_transport_free(f);
        f = NULL;
        ck_assert_msg(sl_chan_client_handle(c, reply, rl, &f, &n, &err) == 0, "client: %s",
                      err.msg);
        free(reply);
    }
    ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_READY);
}

/* One application round trip; the server echoes the payload reversed with
 * type + 1. */
static void round_trip(sl_chan_server *s, sl_chan_client *c, uint16_t type, const uint8_t *p,
                       size_t n)
{
    sl_err err = {0};
    uint8_t *f = NULL, *reply = NULL;
    size_t fn = 0, rl = 0;
    ck_assert_int_eq(sl_chan_client_seal(c, type, p, n, &f, &fn, &err), 0);
    sl_chan_request req;
    ck_assert_msg(srv(s, f, fn, &req, &reply, &rl, &err) == 0, "%s", err.msg);
    sl_transport_free(f);
    ck_assert_ptr_null(reply);
    ck_assert_uint_eq(req.type, type);
    ck_assert_uint_eq(req.len, n);
    if (n)
        ck_assert_mem_eq(req.payload, p, n);
    ck_assert_str_eq(req.peer, sl_chan_client_peer(c));
    uint8_t *rev = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        rev[i] = p[n - 1 - i];
    const uint8_t *r = NULL;
    ck_assert_int_eq(sl_chan_server_seal_reply(s, (uint16_t)(type % SL_WIRE_APP_MAX + 1), rev, n,
                                               &r, &rl, &err),
                     0);
    reply = dup_bytes(r, rl);
    sl_wire_app a;
    ck_assert_msg(sl_chan_client_open(c, reply, rl, &a, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(a.type, type % SL_WIRE_APP_MAX + 1);
    ck_assert_uint_eq(a.len, n);
    if (n)
        ck_assert_mem_eq(a.payload, rev, n);
    free(rev);
    free(reply);
    free((void *)req.payload);
}

/* ---- a client rebuilt from docs/protocol.md ------------------------------ */

typedef struct rogue {
    uint8_t esk[32];
    uint8_t hello[68];
    uint8_t c2s[32], s2c[32], rs[32];
    uint8_t sid[16];
} rogue;

static void rogue_hello(rogue *r)
{
    sl_wire_msg m = {.type = SL_WIRE_HELLO};
    randombytes_buf(r->esk, 32);
    crypto_scalarmult_base(m.u.hello.eph, r->esk);
    randombytes_buf(m.u.hello.rand, 32);
    uint8_t *buf;
    size_t n;
    ck_assert_int_eq(sl_wire_encode(&m, &buf, &n, NULL), 0);
    ck_assert_uint_eq(n, sizeof r->hello);
    memcpy(r->hello, buf, n);
    free(buf);
}

static void lp(crypto_generichash_state *st, const uint8_t *p, size_t n)
{
    uint8_t len[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
    crypto_generichash_update(st, len, 4);
    crypto_generichash_update(st, p, n);
}

/* Labels are hashed with their terminating zero byte (docs/protocol.md). */
#define LABEL(st, s) crypto_generichash_update(st, (const uint8_t *)s, sizeof s)

/* FINISH presenting cert (DER) signed with sk, from the server's reply. */
static void rogue_finish(rogue *r, const uint8_t *reply, size_t rn, const uint8_t *cert,
                         size_t cert_len, const uint8_t sk[64], uint8_t **frame, size_t *n)
{
    sl_wire_msg m;
    ck_assert_int_eq(sl_wire_decode(reply, rn, &m, NULL), 0);
    ck_assert_uint_eq(m.type, SL_WIRE_HELLO_REPLY);
    memcpy(r->sid, m.u.hello_reply.sid, 16);
    uint8_t th1[32], shared[32], prk[32], th2[32], sig[64];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    LABEL(&st, "sealora/v1 handshake");
    lp(&st, r->hello, sizeof r->hello);
    lp(&st, reply, rn - 64);
    crypto_generichash_final(&st, th1, 32);
    ck_assert_int_eq(crypto_scalarmult(shared, r->esk, m.u.hello_reply.eph), 0);
    uint8_t msg[64];
    memcpy(msg, "sealora/v1 keys", 16);
    memcpy(msg + 16, th1, 32);
    crypto_generichash(prk, 32, msg, 48, shared, 32);
    crypto_kdf_derive_from_key(r->c2s, 32, 1, "slchanv1", prk);
    crypto_kdf_derive_from_key(r->s2c, 32, 2, "slchanv1", prk);
    crypto_kdf_derive_from_key(r->rs, 32, 3, "slchanv1", prk);
    crypto_generichash_init(&st, NULL, 0, 32);
    LABEL(&st, "sealora/v1 client");
    crypto_generichash_update(&st, th1, 32);
    lp(&st, cert, cert_len);
    crypto_generichash_final(&st, th2, 32);
    uint8_t smsg[28 + 32];
    memcpy(smsg, "sealora/v1 client signature", 28);
    memcpy(smsg + 28, th2, 32);
    crypto_sign_detached(sig, NULL, smsg, sizeof smsg, sk);
    sl_wire_finish f = {.cert = cert, .cert_len = cert_len};
    memcpy(f.sig, sig, 64);
    uint8_t *inner;
    size_t in_n;
    ck_assert_int_eq(sl_wire_finish_encode(&f, &inner, &in_n, NULL), 0);
    *n = SL_WIRE_SEALED_HDR + in_n + 16;
    uint8_t *out = malloc(*n);
    sl_wire_sealed h = {.counter = 0, .ack = 0, .ct_len = in_n + 16};
    memcpy(h.sid, r->sid, 16);
    randombytes_buf(h.nonce, 24);
    sl_wire_sealed_header(out, SL_WIRE_FINISH, &h);
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out + 64, out + 64 + in_n, NULL, inner,
                                                        in_n, out, 64, NULL, h.nonce, r->c2s);
    free(inner);
    *frame = out;
}

static void cert_der(const char *path, uint8_t **der, size_t *n)
{
    sl_cert *c = NULL;
    sl_err err = {0};
    ck_assert_msg(sl_identity_cert_read(path, &c, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(sl_identity_cert_der(c, der, n, &err), 0);
    sl_identity_cert_free(c);
}

/* Runs a rogue handshake; returns the server's code on FINISH. */
static int rogue_run(sl_chan_server *s, const char *cert_path, const char *key_path,
                     const uint8_t *sk_override, sl_err *err, rogue *r_out, uint8_t **ok,
                     size_t *okn)
{
    rogue r;
    rogue_hello(&r);
    uint8_t *reply, *fin, *der;
    size_t rl, fn, dn;
    ck_assert_int_eq(srv(s, r.hello, sizeof r.hello, NULL, &reply, &rl, err), 0);
    uint8_t sk[64];
    if (sk_override)
        memcpy(sk, sk_override, 64);
    else
        ck_assert_int_eq(sl_identity_load_secret(key_path, sk, err), 0);
    cert_der(cert_path, &der, &dn);
    rogue_finish(&r, reply, rl, der, dn, sk, &fin, &fn);
    uint8_t *ans;
    size_t an;
    int rc = srv(s, fin, fn, NULL, &ans, &an, err);
    if (ok) {
        *ok = ans;
        *okn = an;
    } else {
        free(ans);
    }
    if (r_out)
        *r_out = r;
    free(reply);
    free(fin);
    free(der);
    return rc;
}

/* ---- core ------------------------------------------------------------------ */

START_TEST(test_handshake_and_traffic)
{
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_chan_client *c = mk_client(&f.ccfg);
    handshake(s, c);
    ck_assert_str_eq(sl_chan_client_peer(c), "a");
    sl_test_rng rng = {21};
    uint8_t *buf = malloc(70000);
    for (int i = 0; i < 30; i++) {
        size_t n = i == 0 ? 0 : sl_test_rand(&rng) % 70000;
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)sl_test_rand(&rng);
        round_trip(s, c, (uint16_t)(1 + sl_test_rand(&rng) % SL_WIRE_APP_MAX), buf, n);
    }
    sl_chan_server_stats st;
    sl_chan_server_get_stats(s, &st);
    ck_assert(st.handshakes == 1 && st.requests == 30 && st.refused == 0 && st.sessions == 1);
    free(buf);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST

START_TEST(test_resend_answered_once)
{
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_chan_client *c = mk_client(&f.ccfg);
    sl_err err = {0};
    /* A re-sent HELLO gets the very same HELLO_REPLY. */
    uint8_t *hello, *r1, *r2, *fin, *o1, *o2;
    size_t hn, l1, l2, fn, ol1, ol2;
    ck_assert_int_eq(sl_chan_client_start(c, 0, &hello, &hn, &err), 0);
    ck_assert_int_eq(srv(s, hello, hn, NULL, &r1, &l1, &err), 0);
    ck_assert_int_eq(srv(s, hello, hn, NULL, &r2, &l2, &err), 0);
    ck_assert_uint_eq(l1, l2);
    ck_assert_mem_eq(r1, r2, l1);
    /* A re-sent FINISH gets the very same FINISH_OK; one session. */
    ck_assert_int_eq(sl_chan_client_handle(c, r1, l1, &fin, &fn, &err), 0);
    ck_assert_int_eq(srv(s, fin, fn, NULL, &o1, &ol1, &err), 0);
    ck_assert_int_eq(srv(s, fin, fn, NULL, &o2, &ol2, &err), 0);
    ck_assert_uint_eq(ol1, ol2);
    ck_assert_mem_eq(o1, o2, ol1);
    uint8_t *next;
    size_t nn;
    ck_assert_int_eq(sl_chan_client_handle(c, o1, ol1, &next, &nn, &err), 0);
    ck_assert_ptr_null(next);
    /* A re-sent request: answered from the cache, not processed again. */
    uint8_t *d, *a1, *a2;
    size_t dn, al1, al2;
    ck_assert_int_eq(sl_chan_client_seal(c, 7, "hello", 5, &d, &dn, &err), 0);
    sl_chan_request req;
    ck_assert_int_eq(srv(s, d, dn, &req, &a1, &al1, &err), 0);
    ck_assert_uint_eq(req.type, 7);
    const uint8_t *rp;
    ck_assert_int_eq(sl_chan_server_seal_reply(s, 8, "world", 5, &rp, &al1, &err), 0);
    a1 = dup_bytes(rp, al1);
    sl_chan_request req2;
    ck_assert_int_eq(srv(s, d, dn, &req2, &a2, &al2, &err), 0);
    ck_assert_uint_eq(req2.type, 0); /* nothing for the application */
    ck_assert_uint_eq(al1, al2);
    ck_assert_mem_eq(a1, a2, al1);
    sl_chan_server_stats st;
    sl_chan_server_get_stats(s, &st);
    ck_assert(st.requests == 1 && st.resent == 3 && st.handshakes == 1 && st.refused == 0);
    sl_wire_app app;
    ck_assert_int_eq(sl_chan_client_open(c, a2, al2, &app, &err), 0);
    ck_assert_uint_eq(app.len, 5);
    ck_assert_mem_eq(app.payload, "world", 5);
    /* The client accepts one answer only: the duplicate is refused. */
    ck_assert_int_eq(sl_chan_client_open(c, a1, al1, &app, &err), SL_ESTATE);
    round_trip(s, c, 9, (const uint8_t *)"again", 5);
    free((void *)req.payload);
    sl_transport_free(hello);
    sl_transport_free(fin);
    sl_transport_free(d);
    free(r1), free(r2), free(o1), free(o2), free(a1), free(a2);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST

/* Deferred answers at the byte level: two requests kept unanswered while
 * other traffic goes on, answered later in any order; a re-send of a
 * deferred request is not processed again; an answer to a request the
 * site has moved on from, or in another session, is refused and changes
 * nothing. */
START_TEST(test_deferred_answers)
{
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_chan_client *c1 = mk_client(&f.ccfg), *c2 = mk_client(&f.ccfg);
    handshake(s, c1);
    handshake(s, c2);
    sl_err err = {0};
    sl_chan_deferred d1, d2, none;
    ck_assert_int_eq(sl_chan_server_defer(s, &none, &err), SL_ESTATE); /* nothing pending */
    uint8_t *f1, *f2, *r = NULL;
    size_t n1, n2, rl = 0;
    sl_chan_request req;
    ck_assert_int_eq(sl_chan_client_seal(c1, 7, "one?", 4, &f1, &n1, &err), 0);
    ck_assert_int_eq(srv(s, f1, n1, &req, &r, &rl, &err), 0);
    ck_assert(req.type == 7 && r == NULL);
    free((void *)req.payload);
    ck_assert_int_eq(sl_chan_server_defer(s, &d1, &err), 0);
    ck_assert_int_eq(sl_chan_client_seal(c2, 7, "two?", 4, &f2, &n2, &err), 0);
    ck_assert_int_eq(srv(s, f2, n2, &req, &r, &rl, &err), 0);
    free((void *)req.payload);
    ck_assert_int_eq(sl_chan_server_defer(s, &d2, &err), 0);
    /* c1's request re-sent while deferred: nothing to send, nothing for
     * the application. */
    ck_assert_int_eq(srv(s, f1, n1, &req, &r, &rl, &err), 0);
    ck_assert(req.type == 0 && r == NULL);
    sl_chan_server_stats st;
    sl_chan_server_get_stats(s, &st);
    ck_assert(st.requests == 2 && st.resent == 1);
    /* A forged handle (other session id, slot out of range) is refused. */
    sl_chan_deferred bad = d1;
    bad.sid[0] ^= 1;
    const uint8_t *rp;
    size_t rpl;
    ck_assert_int_eq(sl_chan_server_seal_deferred(s, &bad, 8, "x", 1, &rp, &rpl, &err),
                     SL_ESTATE);
    bad = d1;
    bad.slot = 1 << 20;
    ck_assert_int_eq(sl_chan_server_seal_deferred(s, &bad, 8, "x", 1, &rp, &rpl, &err),
                     SL_ESTATE);
    /* Answered in the other order. */
    sl_wire_app app;
    ck_assert_int_eq(sl_chan_server_seal_deferred(s, &d2, 8, "two!", 4, &rp, &rpl, &err), 0);
    uint8_t *a2 = dup_bytes(rp, rpl);
    ck_assert_int_eq(sl_chan_client_open(c2, a2, rpl, &app, &err), 0);
    ck_assert(app.type == 8 && app.len == 4 && memcmp(app.payload, "two!", 4) == 0);
    ck_assert_int_eq(sl_chan_server_seal_deferred(s, &d1, 8, "one!", 4, &rp, &rpl, &err), 0);
    uint8_t *a1 = dup_bytes(rp, rpl);
    /* Answered once: a second answer is refused; a re-send now gets the
     * cached answer (byte-level: no route, so it is handed back). */
    ck_assert_int_eq(sl_chan_server_seal_deferred(s, &d1, 8, "again", 5, &rp, &rpl, &err),
                     SL_ESTATE);
    ck_assert_int_eq(srv(s, f1, n1, &req, &r, &rl, &err), 0);
    ck_assert(req.type == 0 && r != NULL && rl == rpl);
    ck_assert_mem_eq(r, a1, rl);
    free(r);
    ck_assert_int_eq(sl_chan_client_open(c1, a1, rpl, &app, &err), 0);
    ck_assert(app.type == 8 && app.len == 4 && memcmp(app.payload, "one!", 4) == 0);
    /* c1 gives up on a deferred request and sends another: the late
     * answer is refused and the session goes on. */
    uint8_t *f3, *f4;
    size_t n3, n4;
    sl_chan_deferred d3;
    ck_assert_int_eq(sl_chan_client_seal(c1, 7, "three", 5, &f3, &n3, &err), 0);
    ck_assert_int_eq(srv(s, f3, n3, &req, &r, &rl, &err), 0);
    free((void *)req.payload);
    ck_assert_int_eq(sl_chan_server_defer(s, &d3, &err), 0);
    ck_assert_int_eq(sl_chan_client_seal(c1, 7, "four", 4, &f4, &n4, &err), 0);
    ck_assert_int_eq(srv(s, f4, n4, &req, &r, &rl, &err), 0);
    ck_assert_uint_eq(req.type, 7);
    free((void *)req.payload);
    ck_assert_int_eq(sl_chan_server_seal_reply(s, 8, "four!", 5, &rp, &rpl, &err), 0);
    uint8_t *a4 = dup_bytes(rp, rpl);
    ck_assert_int_eq(sl_chan_server_seal_deferred(s, &d3, 8, "late", 4, &rp, &rpl, &err),
                     SL_ESTATE);
    ck_assert_msg(strstr(err.msg, "moved on") != NULL, "%s", err.msg);
    ck_assert_int_eq(sl_chan_client_open(c1, a4, rpl, &app, &err), 0);
    ck_assert(app.len == 5 && memcmp(app.payload, "four!", 5) == 0);
    round_trip(s, c1, 9, (const uint8_t *)"after", 5);
    round_trip(s, c2, 9, (const uint8_t *)"after", 5);
    sl_transport_free(f1), sl_transport_free(f2), sl_transport_free(f3), sl_transport_free(f4);
    free(a1), free(a2), free(a4);
    sl_chan_client_free(c1);
    sl_chan_client_free(c2);
    sl_chan_server_free(s);
}
END_TEST

/* Pipelining at the byte level: four requests in flight, answered from the
 * cache when re-sent inside the window, refused when replayed after the
 * site acknowledged them, reordered or altered inside the window; replies
 * accepted in request order only. */
START_TEST(test_pipelined_window)
{
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_chan_client *c = mk_client(&f.ccfg);
    handshake(s, c);
    sl_err err = {0};
    sl_test_rng rng = {77};
    uint8_t *d[SL_CHAN_WINDOW], *rep[SL_CHAN_WINDOW] = {0};
    size_t dn[SL_CHAN_WINDOW], rn[SL_CHAN_WINDOW] = {0};
    uint8_t pay[SL_CHAN_WINDOW][40];
    for (unsigned k = 0; k < SL_CHAN_WINDOW; k++) {
        for (size_t i = 0; i < sizeof pay[k]; i++)
            pay[k][i] = (uint8_t)sl_test_rand(&rng);
        ck_assert_int_eq(sl_chan_client_seal_pipelined(c, 3, pay[k], sizeof pay[k], &d[k], &dn[k],
                                                       &err),
                         0);
        ck_assert_uint_eq(sl_chan_client_in_flight(c), k + 1);
    }
    uint8_t *extra;
    size_t en;
    ck_assert_int_eq(sl_chan_client_seal_pipelined(c, 3, "x", 1, &extra, &en, &err), SL_ELIMIT);
    ck_assert_uint_eq(sl_chan_client_in_flight(c), SL_CHAN_WINDOW);
    /* The server takes 1 and 2; then 4 arrives before 3 (a gap: accepted). */
    const unsigned order[3] = {0, 1, 3};
    sl_chan_request req;
    const uint8_t *rp;
    for (unsigned j = 0; j < 3; j++) {
        unsigned k = order[j];
        uint8_t *none = NULL;
        size_t nl = 0;
        ck_assert_int_eq(srv(s, d[k], dn[k], &req, &none, &nl, &err), 0);
        ck_assert_uint_eq(req.len, sizeof pay[k]);
        ck_assert_mem_eq(req.payload, pay[k], sizeof pay[k]);
        free((void *)req.payload);
        uint8_t back = (uint8_t)k;
        ck_assert_int_eq(sl_chan_server_seal_reply(s, 4, &back, 1, &rp, &rn[k], &err), 0);
        rep[k] = dup_bytes(rp, rn[k]);
    }
    sl_chan_server_stats st0, st1;
    sl_chan_server_get_stats(s, &st0);
    /* 3 is now reordered: refused, nothing changes. */
    uint8_t *r = NULL;
    size_t rl = 0;
    ck_assert_int_eq(srv(s, d[2], dn[2], &req, &r, &rl, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "reordered") != NULL, "%s", err.msg);
    free(r);
    /* 1 and 2 re-sent inside the window: the very same answers, processed
     * once. A flipped bit in a re-send is refused. */
    for (unsigned k = 0; k < 2; k++) {
        ck_assert_int_eq(srv(s, d[k], dn[k], &req, &r, &rl, &err), 0);
        ck_assert_uint_eq(req.type, 0);
        ck_assert(rl == rn[k] && memcmp(r, rep[k], rl) == 0);
        free(r);
        uint8_t *x = dup_bytes(d[k], dn[k]);
        x[dn[k] - 1 - sl_test_rand(&rng) % 16] ^= 0x08;
        ck_assert_int_eq(srv(s, x, dn[k], &req, &r, &rl, &err), SL_ECRYPTO);
        free(r), free(x);
    }
    sl_chan_server_get_stats(s, &st1);
    ck_assert(st1.requests == st0.requests && st1.resent == st0.resent + 2 &&
              st1.refused == st0.refused + 3);
    /* The site accepts replies in request order only: 4's before 1's is
     * refused and changes nothing. */
    sl_wire_app a;
    r = dup_bytes(rep[3], rn[3]);
    ck_assert_int_eq(sl_chan_client_open(c, r, rn[3], &a, &err), SL_ECRYPTO);
    free(r);
    for (unsigned k = 0; k < 2; k++) {
        r = dup_bytes(rep[k], rn[k]);
        ck_assert_msg(sl_chan_client_open(c, r, rn[k], &a, &err) == 0, "%s", err.msg);
        ck_assert(a.len == 1 && a.payload[0] == k);
        free(r);
    }
    ck_assert_uint_eq(sl_chan_client_in_flight(c), 2); /* 3 (lost for good) and 4 */
    /* The next request acknowledges everything: a replay of 1 is now a
     * replay, not a re-send. */
    round_trip(s, c, 5, (const uint8_t *)"five", 4);
    ck_assert_uint_eq(sl_chan_client_in_flight(c), 0);
    ck_assert_int_eq(srv(s, d[0], dn[0], &req, &r, &rl, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "replayed") != NULL, "%s", err.msg);
    free(r);
    round_trip(s, c, 6, (const uint8_t *)"six", 3);
    for (unsigned k = 0; k < SL_CHAN_WINDOW; k++)
        sl_transport_free(d[k]), free(rep[k]);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST

START_TEST(test_expiry_and_resumption)
{
    fx f;
    fx_init(&f);
    f.scfg.session_ttl = 600;
    f.scfg.ticket_ttl = 3600;
    sl_chan_server *s = mk_server(&f.scfg);
    sl_chan_client *c = mk_client(&f.ccfg);
    handshake(s, c);
    round_trip(s, c, 1, (const uint8_t *)"x", 1);
    ck_assert(sl_chan_client_session_fresh(c));
    /* The client resumes before the server's expiry: a margin of ttl/10. */
    g_now += 545 * 1000;
    ck_assert(!sl_chan_client_session_fresh(c));
    g_now += 60 * 1000; /* now past the server's expiry too */
    sl_err err = {0};
    uint8_t *d, *r;
    size_t dn, rl;
    ck_assert_int_eq(sl_chan_client_seal(c, 1, "y", 1, &d, &dn, &err), 0);
    ck_assert_int_eq(srv(s, d, dn, NULL, &r, &rl, &err), SL_ESTATE);
    ck_assert_msg(strstr(err.msg, "expired") != NULL, "%s", err.msg);
    sl_wire_app a;
    ck_assert_int_eq(sl_chan_client_open(c, r, rl, &a, &err), SL_ESTATE);
    ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_IDLE);
    sl_transport_free(d);
    free(r);
    /* Resume: RESUME / RESUME_OK, fresh keys, traffic flows again. */
    uint8_t *rs, *ok, *next;
    size_t rsn, okn, nn;
    ck_assert_int_eq(sl_chan_client_start(c, 1, &rs, &rsn, &err), 0);
    ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_RESUME_SENT);
    ck_assert_msg(srv(s, rs, rsn, NULL, &ok, &okn, &err) == 0, "%s", err.msg);
    /* A tampered RESUME_OK is refused and changes nothing. */
    uint8_t *bad = dup_bytes(ok, okn);
    bad[40] ^= 1;
    ck_assert_int_eq(sl_chan_client_handle(c, bad, okn, &next, &nn, &err), SL_ECRYPTO);
    ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_RESUME_SENT);
    free(bad);
    ck_assert_msg(sl_chan_client_handle(c, ok, okn, &next, &nn, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_READY);
    round_trip(s, c, 2, (const uint8_t *)"after resume", 12);
    /* The ticket is one-time: replaying the RESUME is refused. */
    ck_assert_int_eq(srv(s, rs, rsn, NULL, &r, &rl, &err), SL_ESTATE);
    ck_assert_msg(strstr(err.msg, "already used") != NULL, "%s", err.msg);
    free(r);
    sl_chan_server_stats st;
    sl_chan_server_get_stats(s, &st);
    ck_assert(st.handshakes == 1 && st.resumptions == 1 && st.sessions == 1);
    sl_transport_free(rs);
    free(ok);
    /* Past the ticket's life the client starts over with HELLO, and a
     * stale RESUME is refused by the server. */
    ck_assert_int_eq(sl_chan_client_start(c, 1, &rs, &rsn, &err), 0);
    g_now += 3600 * 1000;
    ck_assert_int_eq(srv(s, rs, rsn, NULL, &r, &rl, &err), SL_ESTATE);
    ck_assert_msg(strstr(err.msg, "ticket") != NULL, "%s", err.msg);
    sl_transport_free(rs);
    free(r);
    ck_assert_int_eq(sl_chan_client_start(c, 1, &rs, &rsn, &err), 0);
    ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_HELLO_SENT);
    sl_transport_free(rs);
    handshake(s, c);
    round_trip(s, c, 3, (const uint8_t *)"z", 1);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST

START_TEST(test_key_schedule_as_documented)
{
    /* A client written from the documentation completes the handshake and
     * its derived keys open the server's FINISH_OK and seal requests. */
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_err err = {0};
    rogue r;
    uint8_t *ok;
    size_t okn;
    ck_assert_msg(rogue_run(s, f.ccfg.cert, f.ccfg.key, NULL, &err, &r, &ok, &okn) == 0, "%s",
                  err.msg);
    sl_wire_msg m;
    ck_assert_int_eq(sl_wire_decode(ok, okn, &m, NULL), 0);
    ck_assert_uint_eq(m.type, SL_WIRE_FINISH_OK);
    size_t mlen = m.u.sealed.ct_len - 16;
    uint8_t pt[256];
    ck_assert_int_eq(crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                         pt, NULL, m.u.sealed.ct, mlen, m.u.sealed.ct + mlen, ok, 64,
                         m.u.sealed.nonce, r.s2c),
                     0);
    sl_wire_finish_ok fo;
    ck_assert_int_eq(sl_wire_finish_ok_decode(pt, mlen, &fo, NULL), 0);
    ck_assert_str_eq(fo.peer, "a");
    /* A DATA sealed by hand with the documented layout is accepted. */
    uint8_t frame[64 + 4 + 3 + 16];
    sl_wire_app_header(frame + 64, 77);
    memcpy(frame + 68, "abc", 3);
    sl_wire_sealed h = {.counter = 1, .ct_len = 4 + 3 + 16};
    memcpy(h.sid, r.sid, 16);
    randombytes_buf(h.nonce, 24);
    sl_wire_sealed_header(frame, SL_WIRE_DATA, &h);
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(frame + 64, frame + 64 + 7, NULL,
                                                        frame + 64, 7, frame, 64, NULL, h.nonce,
                                                        r.c2s);
    sl_chan_request req;
    uint8_t *rep;
    size_t rl;
    ck_assert_msg(srv(s, frame, sizeof frame, &req, &rep, &rl, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(req.type, 77);
    ck_assert_mem_eq(req.payload, "abc", 3);
    free((void *)req.payload);
    free(ok);
    sl_chan_server_free(s);
}
END_TEST

/* ---- sockets ----------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct srv_thread {
    sl_chan_server *s;
    volatile int stop;
    int delay_ms; /* before answering type 50 */
    int app_requests;
} srv_thread;

static void *serve(void *arg)
{
    srv_thread *t = arg;
    while (!t->stop) {
        sl_chan_request req;
        sl_err err = {0};
        if (sl_chan_server_next(t->s, 50, &req, &err) != 0)
            break;
        if (!req.type)
            continue;
        t->app_requests++;
        if (req.type == 50 && t->delay_ms)
            usleep((useconds_t)t->delay_ms * 1000);
        sl_chan_server_reply(t->s, req.type, req.payload, req.len, &err);
    }
    return NULL;
}

static int g_first_progress = -1;
static int progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    if (g_first_progress < 0)
        g_first_progress = (int)(done >> 20);
    return ctx && done >= *(uint64_t *)ctx; /* stop once past the limit */
}

START_TEST(test_sockets_call_resend_fetch)
{
    fx f;
    fx_init(&f);
    int port = free_port();
    snprintf(f.scfg.listen, sizeof f.scfg.listen, "127.0.0.1:%d", port);
    snprintf(f.ccfg.server, sizeof f.ccfg.server, "127.0.0.1:%d", port);
    f.scfg.clock = NULL; /* the server on real time; the site on g_now */
    f.ccfg.resend_ivl_ms = 100; /* REQ re-sends quickly: exercised below */
    f.ccfg.timeout_ms = 20000;
    sl_chan_server *s = mk_server(&f.scfg);
    sl_err err = {0};
    /* A file of 3.5 MiB plus a few bytes: four chunks, the last one short. */
    size_t fsize = (7u << 19) + 13;
    uint8_t *data = malloc(fsize);
    sl_test_rng rng = {33};
    for (size_t i = 0; i < fsize; i++)
        data[i] = (uint8_t)sl_test_rand(&rng);
    char src[320], dest[320], part[340], info[340];
    pathf(src, sizeof src, f.dir, "emulator.bin");
    pathf(dest, sizeof dest, f.dir, "got.bin");
    snprintf(part, sizeof part, "%s.part", dest);
    snprintf(info, sizeof info, "%s.part.info", dest);
    sl_test_write(f.dir, "emulator.bin", data, fsize);
    ck_assert_int_eq(sl_chan_server_add_file(s, "emulator.bin", src, &err), 0);
    ck_assert_int_eq(sl_chan_server_listen(s, &err), 0);
    srv_thread t = {.s = s, .delay_ms = 350};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, serve, &t), 0);

    sl_chan_client *c = mk_client(&f.ccfg);
    for (int i = 0; i < 5; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "ping %d", i);
        sl_chan_reply r;
        ck_assert_msg(sl_chan_client_call(c, 3, msg, (size_t)n, &r, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(r.type, 3);
        ck_assert_mem_eq(r.payload, msg, (size_t)n);
        sl_chan_reply_free(&r);
    }
    /* The site's clock says the session is about to expire: the next call
     * resumes it first (RESUME over the socket), then goes through. */
    sl_chan_server_stats st0;
    sl_chan_server_get_stats(s, &st0);
    g_now += (uint64_t)SL_CHAN_DEFAULT_SESSION_TTL * 1000;
    {
        sl_chan_reply r2;
        ck_assert_msg(sl_chan_client_call(c, 6, "after", 5, &r2, &err) == 0, "%s", err.msg);
        ck_assert_mem_eq(r2.payload, "after", 5);
        sl_chan_reply_free(&r2);
    }
    sl_chan_server_stats st1;
    sl_chan_server_get_stats(s, &st1);
    ck_assert(st1.resumptions == st0.resumptions + 1 && st1.handshakes == st0.handshakes);
    /* The server takes 350 ms; REQ re-sends every 100 ms. Processed once. */
    sl_chan_reply r;
    ck_assert_msg(sl_chan_client_call(c, 50, "slow", 4, &r, &err) == 0, "%s", err.msg);
    sl_chan_reply_free(&r);
    ck_assert_msg(sl_chan_client_call(c, 4, "next", 4, &r, &err) == 0, "%s", err.msg);
    ck_assert_mem_eq(r.payload, "next", 4);
    sl_chan_reply_free(&r);
    /* Fetch: whole file. */
    ck_assert_msg(sl_chan_client_fetch(c, "emulator.bin", dest, progress, NULL, &err) == 0, "%s",
                  err.msg);
    uint8_t *got;
    size_t gn;
    ck_assert_int_eq(sl_fs_read_all(dest, 1 << 24, &got, &gn, &err), 0);
    ck_assert_uint_eq(gn, fsize);
    ck_assert(memcmp(got, data, fsize) == 0);
    free(got);
    ck_assert(!sl_fs_exists(part) && !sl_fs_exists(info));
    ck_assert_int_eq(g_first_progress, 0);
    /* A complete download is recognised; a changed or missing one is not. */
    ck_assert_int_eq(sl_chan_client_have(c, "emulator.bin", dest, &err), 1);
    {
        uint8_t *alt = dup_bytes(data, fsize);
        alt[fsize / 2] ^= 0x01;
        sl_test_write(f.dir, "got.bin", alt, fsize);
        ck_assert_int_eq(sl_chan_client_have(c, "emulator.bin", dest, &err), 0);
        sl_test_write(f.dir, "got.bin", alt, fsize - 1);
        ck_assert_int_eq(sl_chan_client_have(c, "emulator.bin", dest, &err), 0);
        free(alt);
    }
    unlink(dest);
    ck_assert_int_eq(sl_chan_client_have(c, "emulator.bin", dest, &err), 0);
    ck_assert_int_eq(sl_chan_client_have(c, "nope.bin", dest, &err), SL_ENOTFOUND);
    ck_assert_msg(sl_chan_client_fetch(c, "emulator.bin", dest, NULL, NULL, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(sl_chan_client_have(c, "emulator.bin", dest, &err), 1);
    /* Resume: a partial download of 2 MiB recorded as durable. */
    unlink(dest);
    uint8_t dig[32];
    crypto_generichash(dig, 32, data, fsize, NULL, 0);
    char hex[65], txt[200];
    sodium_bin2hex(hex, sizeof hex, dig, 32);
    int tn = snprintf(txt, sizeof txt, "sealora-partial 1\n%s\n%zu\n%u\n", hex, fsize, 2u << 20);
    sl_test_write(f.dir, "got.bin.part", data, (3u << 20) + 5); /* more than recorded */
    sl_test_write(f.dir, "got.bin.part.info", txt, (size_t)tn);
    g_first_progress = -1;
    ck_assert_msg(sl_chan_client_fetch(c, "emulator.bin", dest, progress, NULL, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(g_first_progress, 2); /* resumed at 2 MiB */
    ck_assert_int_eq(sl_fs_read_all(dest, 1 << 24, &got, &gn, &err), 0);
    ck_assert_uint_eq(gn, fsize);
    ck_assert(memcmp(got, data, fsize) == 0);
    free(got);
    /* A fetch stopped after 1 MiB leaves a recorded, resumable partial file. */
    unlink(dest);
    uint64_t limit = 1u << 20;
    g_first_progress = -1;
    ck_assert_int_eq(sl_chan_client_fetch(c, "emulator.bin", dest, progress, &limit, &err),
                     SL_EABORT);
    ck_assert(sl_fs_exists(part) && sl_fs_exists(info) && !sl_fs_exists(dest));
    g_first_progress = -1;
    ck_assert_int_eq(sl_chan_client_fetch(c, "emulator.bin", dest, progress, NULL, &err), 0);
    ck_assert_int_eq(g_first_progress, 1);
    ck_assert_int_eq(sl_fs_read_all(dest, 1 << 24, &got, &gn, &err), 0);
    ck_assert(gn == fsize && memcmp(got, data, fsize) == 0);
    free(got);
    /* A partial download whose bytes are corrupt fails the digest check and
     * is removed; the next fetch starts over and succeeds. */
    unlink(dest);
    uint8_t *bad = dup_bytes(data, 1u << 20);
    bad[12345] ^= 0x40;
    tn = snprintf(txt, sizeof txt, "sealora-partial 1\n%s\n%zu\n%u\n", hex, fsize, 1u << 20);
    sl_test_write(f.dir, "got.bin.part", bad, 1u << 20);
    sl_test_write(f.dir, "got.bin.part.info", txt, (size_t)tn);
    ck_assert_int_eq(sl_chan_client_fetch(c, "emulator.bin", dest, NULL, NULL, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "digest") != NULL, "%s", err.msg);
    ck_assert(!sl_fs_exists(part) && !sl_fs_exists(dest));
    ck_assert_int_eq(sl_chan_client_fetch(c, "emulator.bin", dest, NULL, NULL, &err), 0);
    free(bad);
    /* Unknown file: an authenticated, named refusal. */
    ck_assert_int_eq(sl_chan_client_fetch(c, "nope.bin", dest, NULL, NULL, &err), SL_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, "nope.bin") != NULL, "%s", err.msg);
    ck_assert_int_eq(sl_chan_client_close(c, &err), 0);
    t.stop = 1;
    pthread_join(th, NULL);
    sl_chan_server_stats st;
    sl_chan_server_get_stats(s, &st);
    ck_assert_int_eq(t.app_requests, 8);
    ck_assert_msg(st.resent >= 1, "REQ re-sends seen: %llu", (unsigned long long)st.resent);
    ck_assert(st.refused == 0 && st.sessions == 0);
    free(data);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST


/* The stream over real sockets: messages of seeded random sizes, up to
 * SL_CHAN_WINDOW in flight, echoed in order; a slow answer while the site
 * re-sends everything in flight is processed once. */
/* Deferred answers over sockets: the server holds type 60 (and 62)
 * requests while it serves another client, REQ re-sends the held request
 * meanwhile (every 100 ms) without it being processed twice, and the held
 * call returns with the answer (or the refusal) given later. */
typedef struct hold_thread {
    sl_chan_server *s;
    volatile int stop;
    int app_requests;
} hold_thread;

static void *serve_hold(void *arg)
{
    hold_thread *t = arg;
    sl_chan_deferred held[4];
    int refuse[4], nheld = 0;
    while (!t->stop) {
        sl_chan_request req;
        sl_err err = {0};
        if (sl_chan_server_next(t->s, 50, &req, &err) != 0)
            break;
        if (!req.type)
            continue;
        t->app_requests++;
        if ((req.type == 60 || req.type == 62) && nheld < 4) {
            if (sl_chan_server_defer(t->s, &held[nheld], &err) == 0)
                refuse[nheld++] = req.type == 62;
            continue;
        }
        sl_chan_server_reply(t->s, req.type, req.payload, req.len, &err);
        if (req.type == 61) { /* release everything held */
            for (int k = 0; k < nheld; k++) {
                if (refuse[k])
                    sl_chan_server_reply_deferred_error(t->s, &held[k], SL_WIRE_ERR_APP,
                                                        "held, then refused", &err);
                else
                    sl_chan_server_reply_deferred(t->s, &held[k], 60, "released", 8, &err);
            }
            nheld = 0;
        }
    }
    return NULL;
}

typedef struct held_call {
    sl_chan_client *c;
    uint16_t type;
    int rc;
    char got[32];
    char msg[256];
} held_call;

static void *call_held(void *arg)
{
    held_call *h = arg;
    sl_err err = {0};
    sl_chan_reply r;
    h->rc = sl_chan_client_call(h->c, h->type, "wait", 4, &r, &err);
    if (h->rc == 0) {
        snprintf(h->got, sizeof h->got, "%.*s", (int)r.len, (const char *)r.payload);
        sl_chan_reply_free(&r);
    } else {
        snprintf(h->msg, sizeof h->msg, "%s", err.msg);
    }
    return NULL;
}

START_TEST(test_sockets_deferred)
{
    fx f;
    fx_init(&f);
    int port = free_port();
    snprintf(f.scfg.listen, sizeof f.scfg.listen, "127.0.0.1:%d", port);
    snprintf(f.ccfg.server, sizeof f.ccfg.server, "127.0.0.1:%d", port);
    f.scfg.clock = NULL;
    f.ccfg.resend_ivl_ms = 100;
    f.ccfg.timeout_ms = 20000;
    sl_chan_server *s = mk_server(&f.scfg);
    sl_err err = {0};
    ck_assert_int_eq(sl_chan_server_listen(s, &err), 0);
    hold_thread t = {.s = s};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, serve_hold, &t), 0);
    sl_chan_client *c1 = mk_client(&f.ccfg), *c2 = mk_client(&f.ccfg);
    for (int round = 0; round < 2; round++) {
        held_call h = {.c = c1, .type = round == 0 ? 60 : 62};
        pthread_t ch;
        ck_assert_int_eq(pthread_create(&ch, NULL, call_held, &h), 0);
        usleep(450000); /* held: REQ re-sends it a few times */
        sl_chan_reply r;
        ck_assert_msg(sl_chan_client_call(c2, 61, "go", 2, &r, &err) == 0, "%s", err.msg);
        ck_assert_mem_eq(r.payload, "go", 2);
        sl_chan_reply_free(&r);
        pthread_join(ch, NULL);
        if (round == 0) {
            ck_assert_msg(h.rc == 0, "%s", h.msg);
            ck_assert_str_eq(h.got, "released");
        } else {
            ck_assert_int_eq(h.rc, SL_EINVAL);
            ck_assert_msg(strstr(h.msg, "held, then refused") != NULL, "%s", h.msg);
        }
    }
    sl_chan_server_stats st;
    sl_chan_server_get_stats(s, &st);
    /* Each held request processed once (2 + 2 calls, plus c1's and c2's
     * handshakes, which are not application requests). */
    ck_assert_int_eq(t.app_requests, 4);
    ck_assert_msg(st.resent >= 2, "REQ re-sends of the held requests: %llu",
                  (unsigned long long)st.resent);
    /* c1 goes on normally afterwards. */
    sl_chan_reply r;
    ck_assert_msg(sl_chan_client_call(c1, 5, "more", 4, &r, &err) == 0, "%s", err.msg);
    ck_assert_mem_eq(r.payload, "more", 4);
    sl_chan_reply_free(&r);
    t.stop = 1;
    pthread_join(th, NULL);
    sl_chan_client_free(c1);
    sl_chan_client_free(c2);
    sl_chan_server_free(s);
}
END_TEST

START_TEST(test_sockets_stream)
{
    fx f;
    fx_init(&f);
    int port = free_port();
    snprintf(f.scfg.listen, sizeof f.scfg.listen, "127.0.0.1:%d", port);
    snprintf(f.ccfg.server, sizeof f.ccfg.server, "127.0.0.1:%d", port);
    f.scfg.clock = NULL;
    f.ccfg.clock = NULL;
    f.ccfg.resend_ivl_ms = 100; /* the stream re-sends after SL_CHAN_OVERDUE_MS */
    f.ccfg.timeout_ms = 20000;
    sl_chan_server *s = mk_server(&f.scfg);
    sl_err err = {0};
    ck_assert_int_eq(sl_chan_server_listen(s, &err), 0);
    srv_thread t = {.s = s, .delay_ms = SL_CHAN_OVERDUE_MS * 3 / 2};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, serve, &t), 0);
    sl_chan_client *c = mk_client(&f.ccfg);
    sl_test_rng rng = {91};
    enum { N = 40 };
    static uint8_t msgs[N][3000];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = 1 + sl_test_rand(&rng) % sizeof msgs[i];
        for (size_t j = 0; j < lens[i]; j++)
            msgs[i][j] = (uint8_t)sl_test_rand(&rng);
    }
    int sent = 0, got = 0;
    while (got < N) {
        /* a seeded number of sends, then one receive */
        int burst = 1 + (int)(sl_test_rand(&rng) % SL_CHAN_WINDOW);
        for (int b = 0; b < burst && sent < N && sent - got < (int)SL_CHAN_WINDOW; b++, sent++)
            ck_assert_msg(sl_chan_client_send(c, 7, msgs[sent], lens[sent], &err) == 0, "%s",
                          err.msg);
        if (sent - got == (int)SL_CHAN_WINDOW) {
            ck_assert_int_eq(sl_chan_client_send(c, 7, "x", 1, &err), SL_ELIMIT);
            sl_chan_reply cr;
            ck_assert_int_eq(sl_chan_client_call(c, 7, "x", 1, &cr, &err), SL_ESTATE);
        }
        sl_chan_reply r;
        ck_assert_msg(sl_chan_client_recv(c, &r, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(r.type, 7);
        ck_assert_uint_eq(r.len, lens[got]);
        ck_assert_mem_eq(r.payload, msgs[got], lens[got]);
        sl_chan_reply_free(&r);
        got++;
    }
    /* Zero-copy sends: the payload written straight into the frame. */
    for (int i = 0; i < (int)SL_CHAN_WINDOW; i++) {
        uint8_t *buf = NULL;
        ck_assert_int_eq(sl_chan_client_reserve(c, lens[i], &buf, &err), 0);
        memcpy(buf, msgs[i], lens[i]);
        ck_assert_msg(sl_chan_client_send_reserved(c, 11, &err) == 0, "%s", err.msg);
    }
    {
        uint8_t *buf = NULL;
        ck_assert_int_eq(sl_chan_client_reserve(c, 1, &buf, &err), 0);
        buf[0] = 1;
        ck_assert_int_eq(sl_chan_client_send_reserved(c, 11, &err), SL_ELIMIT);
        ck_assert_int_eq(sl_chan_client_send_reserved(c, 11, &err), SL_ESTATE); /* used up */
    }
    for (int i = 0; i < (int)SL_CHAN_WINDOW; i++) {
        sl_chan_reply r;
        ck_assert_msg(sl_chan_client_recv(c, &r, &err) == 0, "%s", err.msg);
        ck_assert(r.type == 11 && r.len == lens[i] && memcmp(r.payload, msgs[i], lens[i]) == 0);
        sl_chan_reply_free(&r);
    }
    /* The server holds type 50 for 1.5 s; meanwhile the site re-sends what
     * is in flight (after 1 s). Each is processed once. */
    sl_chan_server_stats st0, st1;
    sl_chan_server_get_stats(s, &st0);
    int before = t.app_requests;
    ck_assert_int_eq(sl_chan_client_send(c, 50, "slow", 4, &err), 0);
    ck_assert_int_eq(sl_chan_client_send(c, 8, "quick", 5, &err), 0);
    sl_chan_reply r;
    ck_assert_msg(sl_chan_client_recv(c, &r, &err) == 0, "%s", err.msg);
    ck_assert(r.type == 50 && r.len == 4 && memcmp(r.payload, "slow", 4) == 0);
    sl_chan_reply_free(&r);
    ck_assert_msg(sl_chan_client_recv(c, &r, &err) == 0, "%s", err.msg);
    ck_assert(r.type == 8 && r.len == 5 && memcmp(r.payload, "quick", 5) == 0);
    sl_chan_reply_free(&r);
    ck_assert_int_eq(sl_chan_client_recv(c, &r, &err), SL_ESTATE); /* nothing in flight */
    /* Lockstep calls still work after the stream drained. */
    ck_assert_msg(sl_chan_client_call(c, 9, "call", 4, &r, &err) == 0, "%s", err.msg);
    ck_assert_mem_eq(r.payload, "call", 4);
    sl_chan_reply_free(&r);
    sl_chan_server_get_stats(s, &st1);
    ck_assert_int_eq(t.app_requests, before + 3);
    ck_assert_msg(st1.resent > st0.resent, "re-sends seen: %llu",
                  (unsigned long long)(st1.resent - st0.resent));
    ck_assert_uint_eq(st1.refused, 0);
    ck_assert_int_eq(sl_chan_client_close(c, &err), 0);
    t.stop = 1;
    pthread_join(th, NULL);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST


/* Over real sockets: a site driving the byte-level API through a transport
 * of its own records a DATA frame and replays it, flips a bit, truncates
 * it, sends a frame of the wrong type and one over NN_RCVMAXSIZE. Each is
 * refused (the oversized one by nanomsg, which drops that connection), and
 * the session and the server carry on. */
static int send_recv(sl_transport *tp, const uint8_t *f, size_t n, int timeout_ms,
                     sl_transport_msg *ans)
{
    sl_err err = {0};
    ck_assert_int_eq(sl_transport_send(tp, f, n, &err), 0);
    ck_assert_int_eq(sl_transport_recv(tp, timeout_ms, ans, &err), 0);
    return ans->data != NULL;
}

static uint16_t error_code(const sl_transport_msg *ans)
{
    sl_wire_msg m;
    ck_assert_int_eq(sl_wire_decode(ans->data, ans->len, &m, NULL), 0);
    ck_assert_uint_eq(m.type, SL_WIRE_ERROR);
    return m.u.error.code;
}

START_TEST(test_sockets_adversarial)
{
    fx f;
    fx_init(&f);
    int port = free_port();
    snprintf(f.scfg.listen, sizeof f.scfg.listen, "127.0.0.1:%d", port);
    snprintf(f.ccfg.server, sizeof f.ccfg.server, "127.0.0.1:%d", port);
    f.scfg.clock = NULL;
    f.ccfg.clock = NULL;
    sl_chan_server *s = mk_server(&f.scfg);
    sl_err err = {0};
    ck_assert_int_eq(sl_chan_server_listen(s, &err), 0);
    srv_thread t = {.s = s};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, serve, &t), 0);
    sl_chan_client *c = mk_client(&f.ccfg);
    sl_transport *tp = NULL;
    sl_transport_opts o = {.max_msg = SL_WIRE_MAX_FRAME};
    ck_assert_int_eq(sl_transport_connect(f.ccfg.server, &o, &tp, &err), 0);
    /* Handshake through our own transport. */
    uint8_t *fr = NULL, *next = NULL;
    size_t n = 0, nn = 0;
    ck_assert_int_eq(sl_chan_client_start(c, 0, &fr, &n, &err), 0);
    while (fr) {
        sl_transport_msg ans;
        ck_assert(send_recv(tp, fr, n, 10000, &ans));
        sl_transport_free(fr);
        ck_assert_msg(sl_chan_client_handle(c, ans.data, ans.len, &next, &nn, &err) == 0, "%s",
                      err.msg);
        sl_transport_msg_free(&ans);
        fr = next;
        n = nn;
    }
    /* One genuine request, recorded. */
    uint8_t *d;
    size_t dn;
    ck_assert_int_eq(sl_chan_client_seal(c, 5, "payload", 7, &d, &dn, &err), 0);
    uint8_t *rec = dup_bytes(d, dn);
    size_t rec_len = dn;
    sl_transport_msg ans;
    ck_assert(send_recv(tp, d, dn, 10000, &ans));
    sl_wire_app a;
    ck_assert_int_eq(sl_chan_client_open(c, ans.data, ans.len, &a, &err), 0);
    ck_assert_mem_eq(a.payload, "payload", 7);
    sl_transport_msg_free(&ans);
    sl_transport_free(d);
    /* A second one moves the counter on; then the first is replayed. */
    ck_assert_int_eq(sl_chan_client_seal(c, 5, "second", 6, &d, &dn, &err), 0);
    ck_assert(send_recv(tp, d, dn, 10000, &ans));
    ck_assert_int_eq(sl_chan_client_open(c, ans.data, ans.len, &a, &err), 0);
    sl_transport_msg_free(&ans);
    sl_transport_free(d);
    ck_assert(send_recv(tp, rec, rec_len, 10000, &ans));
    ck_assert_uint_eq(error_code(&ans), SL_WIRE_ERR_REPLAY);
    sl_transport_msg_free(&ans);
    /* Flipped bit, truncation, wrong type for the state. */
    ck_assert_int_eq(sl_chan_client_seal(c, 5, "third", 5, &d, &dn, &err), 0);
    uint8_t *x = dup_bytes(d, dn);
    x[dn - 3] ^= 0x10;
    ck_assert(send_recv(tp, x, dn, 10000, &ans));
    ck_assert_uint_eq(error_code(&ans), SL_WIRE_ERR_AUTH);
    sl_transport_msg_free(&ans);
    ck_assert(send_recv(tp, d, dn - 1, 10000, &ans));
    ck_assert_uint_eq(error_code(&ans), SL_WIRE_ERR_MALFORMED);
    sl_transport_msg_free(&ans);
    memcpy(x, d, dn);
    x[3] = SL_WIRE_REPLY;
    ck_assert(send_recv(tp, x, dn, 10000, &ans));
    ck_assert_uint_eq(error_code(&ans), SL_WIRE_ERR_STATE);
    sl_transport_msg_free(&ans);
    /* The untouched frame still goes through: nothing changed. */
    ck_assert(send_recv(tp, d, dn, 10000, &ans));
    ck_assert_int_eq(sl_chan_client_open(c, ans.data, ans.len, &a, &err), 0);
    ck_assert_mem_eq(a.payload, "third", 5);
    sl_transport_msg_free(&ans);
    sl_transport_free(d);
    free(x);
    /* Oversized: the server's nanomsg drops it and that connection. */
    sl_transport *big = NULL;
    sl_transport_opts bo = {.max_msg = SL_WIRE_MAX_FRAME, .resend_ivl_ms = 60000};
    ck_assert_int_eq(sl_transport_connect(f.ccfg.server, &bo, &big, &err), 0);
    size_t hn = SL_WIRE_MAX_FRAME + 1;
    uint8_t *huge = calloc(1, hn);
    memcpy(huge, rec, 64);
    ck_assert(!send_recv(big, huge, hn, 1500, &ans));
    free(huge);
    sl_transport_close(big);
    /* The server and the session are fine. */
    ck_assert_int_eq(sl_chan_client_seal(c, 5, "fourth", 6, &d, &dn, &err), 0);
    ck_assert(send_recv(tp, d, dn, 10000, &ans));
    ck_assert_int_eq(sl_chan_client_open(c, ans.data, ans.len, &a, &err), 0);
    ck_assert_mem_eq(a.payload, "fourth", 6);
    sl_transport_msg_free(&ans);
    sl_transport_free(d);
    t.stop = 1;
    pthread_join(th, NULL);
    sl_chan_server_stats st;
    sl_chan_server_get_stats(s, &st);
    ck_assert_int_eq(t.app_requests, 4);
    ck_assert(st.refused == 4);
    free(rec);
    sl_transport_close(tp);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST


/* A man in the middle on real sockets: a nanomsg device (raw REP in front,
 * raw REQ behind) that forwards frames and alters the chosen one. */
typedef struct mitm {
    int front, back;
    volatile int stop;
    volatile int tamper_type; /* frame type to alter on its way back; 0 none */
    volatile int tampered;
} mitm;

static void forward(int from, int to, mitm *m, int backwards)
{
    void *body = NULL, *ctrl = NULL;
    struct nn_iovec iov = {.iov_base = &body, .iov_len = NN_MSG};
    struct nn_msghdr h = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctrl,
                          .msg_controllen = NN_MSG};
    int n = nn_recvmsg(from, &h, NN_DONTWAIT);
    if (n < 0)
        return;
    uint8_t *b = body;
    /* Behind a raw REQ the backtrace may still lead the body: skip it. */
    int at = n > 6 && b[0] == 'S' && b[1] == 'L' ? 0 : 4;
    if (backwards && n > 70 && m->tamper_type && b[at + 3] == m->tamper_type) {
        b[at + 70] ^= 0x04; /* HELLO_REPLY: the server random; REPLY: ciphertext */
        m->tampered++;
    }
    iov.iov_base = &body;
    iov.iov_len = NN_MSG;
    h.msg_control = &ctrl;
    h.msg_controllen = NN_MSG;
    if (nn_sendmsg(to, &h, 0) < 0) {
        nn_freemsg(body);
        nn_freemsg(ctrl);
    }
}

static void *run_mitm(void *arg)
{
    mitm *m = arg;
    while (!m->stop) {
        struct nn_pollfd pf[2] = {{.fd = m->front, .events = NN_POLLIN},
                                  {.fd = m->back, .events = NN_POLLIN}};
        if (nn_poll(pf, 2, 50) <= 0)
            continue;
        if (pf[0].revents & NN_POLLIN)
            forward(m->front, m->back, m, 0);
        if (pf[1].revents & NN_POLLIN)
            forward(m->back, m->front, m, 1);
    }
    return NULL;
}

START_TEST(test_sockets_man_in_the_middle)
{
    fx f;
    fx_init(&f);
    int sport = free_port(), pport = free_port();
    snprintf(f.scfg.listen, sizeof f.scfg.listen, "127.0.0.1:%d", sport);
    snprintf(f.ccfg.server, sizeof f.ccfg.server, "127.0.0.1:%d", pport);
    f.scfg.clock = NULL;
    f.ccfg.clock = NULL;
    f.ccfg.timeout_ms = 10000;
    sl_chan_server *s = mk_server(&f.scfg);
    sl_err err = {0};
    ck_assert_int_eq(sl_chan_server_listen(s, &err), 0);
    srv_thread t = {.s = s};
    pthread_t th, mt;
    ck_assert_int_eq(pthread_create(&th, NULL, serve, &t), 0);
    mitm m = {.tamper_type = SL_WIRE_HELLO_REPLY};
    char url[64];
    m.front = nn_socket(AF_SP_RAW, NN_REP);
    m.back = nn_socket(AF_SP_RAW, NN_REQ);
    int maxsz = (int)SL_WIRE_MAX_FRAME;
    nn_setsockopt(m.front, NN_SOL_SOCKET, NN_RCVMAXSIZE, &maxsz, sizeof maxsz);
    nn_setsockopt(m.back, NN_SOL_SOCKET, NN_RCVMAXSIZE, &maxsz, sizeof maxsz);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", pport);
    ck_assert_int_ge(nn_bind(m.front, url), 0);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", sport);
    ck_assert_int_ge(nn_connect(m.back, url), 0);
    ck_assert_int_eq(pthread_create(&mt, NULL, run_mitm, &m), 0);
    /* A tampered HELLO_REPLY: the site refuses the transcript. */
    sl_chan_client *c = mk_client(&f.ccfg);
    ck_assert_int_eq(sl_chan_client_connect(c, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "transcript signature") != NULL, "%s", err.msg);
    ck_assert_int_eq(m.tampered, 1);
    /* Honest relaying: the handshake and a call go through the device. */
    m.tamper_type = 0;
    ck_assert_msg(sl_chan_client_connect(c, &err) == 0, "%s", err.msg);
    sl_chan_reply r;
    ck_assert_int_eq(sl_chan_client_call(c, 2, "via proxy", 9, &r, &err), 0);
    ck_assert_mem_eq(r.payload, "via proxy", 9);
    sl_chan_reply_free(&r);
    /* A tampered REPLY: refused by the site, which carries on. */
    m.tamper_type = SL_WIRE_REPLY;
    uint8_t big[200];
    memset(big, 7, sizeof big);
    ck_assert_int_eq(sl_chan_client_call(c, 2, big, sizeof big, &r, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "does not authenticate") != NULL, "%s", err.msg);
    m.tamper_type = 0;
    ck_assert_int_eq(sl_chan_client_call(c, 2, big, sizeof big, &r, &err), 0);
    ck_assert_mem_eq(r.payload, big, sizeof big);
    sl_chan_reply_free(&r);
    sl_chan_client_close(c, &err);
    m.stop = 1;
    t.stop = 1;
    pthread_join(mt, NULL);
    pthread_join(th, NULL);
    nn_close(m.front);
    nn_close(m.back);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST

/* ---- limits ------------------------------------------------------------------- */

START_TEST(test_session_quota_and_pending)
{
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_chan_client *cs[SL_CHAN_SESSIONS_PER_PEER + 1];
    for (unsigned i = 0; i <= SL_CHAN_SESSIONS_PER_PEER; i++) {
        cs[i] = mk_client(&f.ccfg);
        handshake(s, cs[i]);
        g_now += 10;
    }
    sl_chan_server_stats st;
    sl_chan_server_get_stats(s, &st);
    ck_assert_uint_eq(st.sessions, SL_CHAN_SESSIONS_PER_PEER);
    /* The oldest session of the site made room. */
    sl_err err = {0};
    uint8_t *d, *r;
    size_t dn, rl;
    ck_assert_int_eq(sl_chan_client_seal(cs[0], 1, "x", 1, &d, &dn, &err), 0);
    ck_assert_int_eq(srv(s, d, dn, NULL, &r, &rl, &err), SL_ESTATE);
    ck_assert_msg(strstr(err.msg, "unknown session") != NULL, "%s", err.msg);
    sl_transport_free(d);
    free(r);
    for (unsigned i = 1; i <= SL_CHAN_SESSIONS_PER_PEER; i++)
        round_trip(s, cs[i], 1, (const uint8_t *)"ok", 2);
    for (unsigned i = 0; i <= SL_CHAN_SESSIONS_PER_PEER; i++)
        sl_chan_client_free(cs[i]);
    /* Pending handshakes are bounded: the oldest unfinished one goes. */
    sl_chan_client *first = mk_client(&f.ccfg);
    uint8_t *h, *hr, *fin;
    size_t hn, hrl, fn;
    ck_assert_int_eq(sl_chan_client_start(first, 0, &h, &hn, &err), 0);
    ck_assert_int_eq(srv(s, h, hn, NULL, &hr, &hrl, &err), 0);
    for (unsigned i = 0; i < SL_CHAN_MAX_PENDING; i++) {
        rogue x;
        rogue_hello(&x);
        g_now += 1;
        ck_assert_int_eq(srv(s, x.hello, sizeof x.hello, NULL, &r, &rl, &err), 0);
        free(r);
    }
    ck_assert_int_eq(sl_chan_client_handle(first, hr, hrl, &fin, &fn, &err), 0);
    ck_assert_int_eq(srv(s, fin, fn, NULL, &r, &rl, &err), SL_ESTATE);
    ck_assert_msg(strstr(err.msg, "unknown or expired handshake") != NULL, "%s", err.msg);
    free(r);
    /* Unfinished handshakes also expire with time. */
    sl_transport_free(h);
    ck_assert_int_eq(sl_chan_client_start(first, 0, &h, &hn, &err), 0);
    free(hr);
    ck_assert_int_eq(srv(s, h, hn, NULL, &hr, &hrl, &err), 0);
    sl_transport_free(fin);
    ck_assert_int_eq(sl_chan_client_handle(first, hr, hrl, &fin, &fn, &err), 0);
    g_now += SL_CHAN_PENDING_TTL_MS + 1;
    ck_assert_int_eq(srv(s, fin, fn, NULL, &r, &rl, &err), SL_ESTATE);
    free(r);
    sl_transport_free(h);
    sl_transport_free(fin);
    free(hr);
    sl_chan_client_free(first);
    sl_chan_server_free(s);
}
END_TEST

START_TEST(test_size_limits)
{
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_chan_client *c = mk_client(&f.ccfg);
    handshake(s, c);
    sl_err err = {0};
    uint8_t *d;
    size_t dn;
    uint8_t *big = calloc(1, SL_WIRE_MAX_PAYLOAD + 1);
    ck_assert_int_eq(sl_chan_client_seal(c, 1, big, SL_WIRE_MAX_PAYLOAD + 1, &d, &dn, &err),
                     SL_ELIMIT);
    ck_assert_int_eq(sl_chan_client_seal(c, 0, big, 1, &d, &dn, &err), SL_EINVAL);
    /* The largest payload goes through. */
    round_trip(s, c, 1, big, SL_WIRE_MAX_PAYLOAD);
    /* A reserved type sent by a client gets an authenticated refusal. */
    ck_assert_int_eq(sl_chan_client_seal(c, 0xff77, "x", 1, &d, &dn, &err), 0);
    uint8_t *r;
    size_t rl;
    sl_chan_request req;
    ck_assert_int_eq(srv(s, d, dn, &req, &r, &rl, &err), 0);
    ck_assert_uint_eq(req.type, 0);
    sl_wire_app a;
    ck_assert_int_eq(sl_chan_client_open(c, r, rl, &a, &err), SL_EINVAL);
    ck_assert_msg(strstr(err.msg, "reserved") != NULL, "%s", err.msg);
    sl_transport_free(d);
    free(r);
    /* Server-side reply limits and misuse. */
    const uint8_t *rp;
    ck_assert_int_eq(sl_chan_server_seal_reply(s, 1, "x", 1, &rp, &rl, &err), SL_ESTATE);
    ck_assert_int_eq(sl_chan_client_seal(c, 1, "x", 1, &d, &dn, &err), 0);
    ck_assert_int_eq(srv(s, d, dn, &req, &r, &rl, &err), 0);
    ck_assert_int_eq(sl_chan_server_seal_reply(s, 1, big, SL_WIRE_MAX_PAYLOAD + 1, &rp, &rl, &err),
                     SL_ELIMIT);
    ck_assert_int_eq(sl_chan_server_seal_reply(s, 0xff01, "x", 1, &rp, &rl, &err), SL_EINVAL);
    ck_assert_int_eq(sl_chan_server_seal_error(s, SL_WIRE_ERR_APP, "not now", &rp, &rl, &err), 0);
    r = dup_bytes(rp, rl);
    ck_assert_int_eq(sl_chan_client_open(c, r, rl, &a, &err), SL_EINVAL);
    ck_assert_msg(strstr(err.msg, "not now") != NULL, "%s", err.msg);
    free(r);
    free((void *)req.payload);
    sl_transport_free(d);
    free(big);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST

START_TEST(test_revocation_mid_session)
{
    fx f;
    fx_init(&f);
    sl_cert_info bi;
    sl_chan_client_cfg bcfg;
    make_site(f.dir, f.ca_crt, f.ca_key, "b", NULL, &bi, &bcfg);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_chan_client *c = mk_client(&f.ccfg);
    sl_chan_client *b = mk_client(&bcfg);
    handshake(s, c);
    handshake(s, b);
    round_trip(s, b, 1, (const uint8_t *)"b", 1);
    /* Revoke b: its live session ends at its next message, a ends nothing. */
    sl_err err = {0};
    sl_identity_revoked rv = {.serial_len = bi.serial_len};
    memcpy(rv.serial, bi.serial, bi.serial_len);
    ck_assert_int_eq(sl_identity_crl_write(f.ca_crt, f.ca_key, &rv, 1, f.crl, &err), 0);
    uint8_t *d, *r;
    size_t dn, rl;
    ck_assert_int_eq(sl_chan_client_seal(b, 1, "b", 1, &d, &dn, &err), 0);
    ck_assert_int_eq(srv(s, d, dn, NULL, &r, &rl, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "'b' is revoked") != NULL, "%s", err.msg);
    sl_wire_app a;
    ck_assert_int_eq(sl_chan_client_open(b, r, rl, &a, &err), SL_ECRYPTO);
    ck_assert_int_eq(sl_chan_client_get_state(b), SL_CHAN_IDLE);
    sl_transport_free(d);
    free(r);
    round_trip(s, c, 1, (const uint8_t *)"a", 1);
    /* A new handshake from b is refused with the cause. */
    uint8_t *h, *hr, *fin;
    size_t hn, hrl, fn;
    ck_assert_int_eq(sl_chan_client_start(b, 0, &h, &hn, &err), 0);
    ck_assert_int_eq(srv(s, h, hn, NULL, &hr, &hrl, &err), 0);
    ck_assert_int_eq(sl_chan_client_handle(b, hr, hrl, &fin, &fn, &err), 0);
    ck_assert_int_eq(srv(s, fin, fn, NULL, &r, &rl, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "'b' is revoked") != NULL, "%s", err.msg);
    uint8_t *next;
    size_t nn;
    ck_assert_int_eq(sl_chan_client_handle(b, r, rl, &next, &nn, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "denied") != NULL, "%s", err.msg);
    sl_transport_free(h);
    sl_transport_free(fin);
    free(hr);
    free(r);
    sl_chan_client_free(b);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST

/* ---- malformed ------------------------------------------------------------------ */

START_TEST(test_replay_and_reorder)
{
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_chan_client *c = mk_client(&f.ccfg);
    handshake(s, c);
    sl_err err = {0};
    /* Record DATA 1, answer it; DATA 2 likewise; then replay 1. */
    uint8_t *d1, *d2, *r;
    size_t n1, n2, rl;
    const uint8_t *rp;
    sl_chan_request req;
    sl_wire_app a;
    ck_assert_int_eq(sl_chan_client_seal(c, 1, "one", 3, &d1, &n1, &err), 0);
    ck_assert_int_eq(srv(s, d1, n1, &req, &r, &rl, &err), 0);
    free((void *)req.payload);
    ck_assert_int_eq(sl_chan_server_seal_reply(s, 1, "1", 1, &rp, &rl, &err), 0);
    uint8_t *reply1 = dup_bytes(rp, rl);
    size_t reply1_len = rl;
    r = dup_bytes(rp, rl);
    ck_assert_int_eq(sl_chan_client_open(c, r, rl, &a, &err), 0);
    free(r);
    ck_assert_int_eq(sl_chan_client_seal(c, 1, "two", 3, &d2, &n2, &err), 0);
    ck_assert_int_eq(srv(s, d2, n2, &req, &r, &rl, &err), 0);
    free((void *)req.payload);
    ck_assert_int_eq(sl_chan_server_seal_reply(s, 1, "2", 1, &rp, &rl, &err), 0);
    /* The client refuses the recorded reply 1 in place of reply 2. */
    r = dup_bytes(reply1, reply1_len);
    ck_assert_int_eq(sl_chan_client_open(c, r, reply1_len, &a, &err), SL_ECRYPTO);
    ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_REQUEST_SENT);
    free(r);
    r = dup_bytes(rp, rl);
    ck_assert_int_eq(sl_chan_client_open(c, r, rl, &a, &err), 0);
    free(r);
    sl_chan_server_stats before, after;
    sl_chan_server_get_stats(s, &before);
    ck_assert_int_eq(srv(s, d1, n1, &req, &r, &rl, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "replayed") != NULL, "%s", err.msg);
    ck_assert_uint_eq(req.type, 0);
    free(r);
    sl_chan_server_get_stats(s, &after);
    ck_assert(after.requests == before.requests && after.refused == before.refused + 1);
    /* Reordered: 4 arrives before 3; then 3 is refused. */
    uint8_t *d3, *d4;
    size_t n3, n4;
    ck_assert_int_eq(sl_chan_client_seal(c, 1, "three", 5, &d3, &n3, &err), 0);
    ck_assert_int_eq(sl_chan_client_seal(c, 1, "four", 4, &d4, &n4, &err), 0);
    ck_assert_int_eq(srv(s, d4, n4, &req, &r, &rl, &err), 0);
    ck_assert_uint_eq(req.len, 4);
    free((void *)req.payload);
    ck_assert_int_eq(sl_chan_server_seal_reply(s, 1, "4", 1, &rp, &rl, &err), 0);
    r = dup_bytes(rp, rl);
    ck_assert_int_eq(sl_chan_client_open(c, r, rl, &a, &err), 0);
    free(r);
    ck_assert_int_eq(srv(s, d3, n3, &req, &r, &rl, &err), SL_ECRYPTO);
    free(r);
    /* State unchanged: the session carries on. */
    round_trip(s, c, 5, (const uint8_t *)"five", 4);
    sl_transport_free(d1), sl_transport_free(d2), sl_transport_free(d3), sl_transport_free(d4);
    free(reply1);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST

START_TEST(test_flipped_truncated_oversized)
{
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_chan_client *c = mk_client(&f.ccfg);
    handshake(s, c);
    sl_err err = {0};
    uint8_t *d, *r;
    size_t dn, rl;
    ck_assert_int_eq(sl_chan_client_seal(c, 9, "some payload bytes", 18, &d, &dn, &err), 0);
    sl_test_rng rng = {44};
    sl_chan_request req;
    for (size_t bit = 0; bit < dn * 8; bit += 1 + sl_test_rand(&rng) % 3) {
        uint8_t *x = dup_bytes(d, dn);
        x[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rc = srv(s, x, dn, &req, &r, &rl, &err);
        ck_assert_msg(rc < 0, "bit %zu accepted", bit);
        ck_assert_uint_eq(req.type, 0);
        ck_assert_ptr_nonnull(r); /* an ERROR frame goes back */
        sl_wire_msg m;
        ck_assert_int_eq(sl_wire_decode(r, rl, &m, NULL), 0);
        ck_assert_uint_eq(m.type, SL_WIRE_ERROR);
        free(r);
        free(x);
    }
    for (size_t cut = 0; cut < dn; cut++) {
        ck_assert_int_lt(srv(s, d, cut, &req, &r, &rl, &err), 0);
        free(r);
    }
    uint8_t *longer = calloc(1, dn + 1);
    memcpy(longer, d, dn);
    ck_assert_int_eq(srv(s, longer, dn + 1, &req, &r, &rl, &err), SL_EFORMAT);
    free(r);
    free(longer);
    uint8_t *huge = calloc(1, SL_WIRE_MAX_FRAME + 1);
    memcpy(huge, d, 64);
    ck_assert_int_eq(srv(s, huge, SL_WIRE_MAX_FRAME + 1, &req, &r, &rl, &err), SL_ELIMIT);
    free(r);
    free(huge);
    /* Nothing changed: the untouched frame is still accepted. */
    ck_assert_int_eq(srv(s, d, dn, &req, &r, &rl, &err), 0);
    ck_assert_uint_eq(req.type, 9);
    ck_assert_mem_eq(req.payload, "some payload bytes", 18);
    free((void *)req.payload);
    /* The client side: a flipped or truncated REPLY is refused and the
     * genuine one still opens. */
    const uint8_t *rp;
    ck_assert_int_eq(sl_chan_server_seal_reply(s, 3, "reply", 5, &rp, &rl, &err), 0);
    uint8_t *good = dup_bytes(rp, rl);
    sl_wire_app a;
    for (size_t bit = 0; bit < rl * 8; bit += 7) {
        uint8_t *x = dup_bytes(good, rl);
        x[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ck_assert_msg(sl_chan_client_open(c, x, rl, &a, &err) < 0, "bit %zu accepted", bit);
        ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_REQUEST_SENT);
        free(x);
    }
    for (size_t cut = 0; cut < rl; cut++) {
        uint8_t *x = dup_bytes(good, rl);
        ck_assert_int_lt(sl_chan_client_open(c, x, cut, &a, &err), 0);
        free(x);
    }
    ck_assert_int_eq(sl_chan_client_open(c, good, rl, &a, &err), 0);
    ck_assert_mem_eq(a.payload, "reply", 5);
    free(good);
    sl_transport_free(d);
    round_trip(s, c, 1, (const uint8_t *)"still fine", 10);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST

START_TEST(test_wrong_type_for_state)
{
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_chan_client *c = mk_client(&f.ccfg);
    sl_err err = {0};
    uint8_t *r, *h, *hr, *fin, *next;
    size_t rl, hn, hrl, fn, nn;
    /* Client cannot seal or open before a session exists. */
    ck_assert_int_eq(sl_chan_client_seal(c, 1, "x", 1, &h, &hn, &err), SL_ESTATE);
    uint8_t junk[80] = {0};
    sl_wire_app a;
    ck_assert_int_eq(sl_chan_client_open(c, junk, sizeof junk, &a, &err), SL_ESTATE);
    ck_assert_int_eq(sl_chan_client_start(c, 0, &h, &hn, &err), 0);
    ck_assert_int_eq(srv(s, h, hn, NULL, &hr, &hrl, &err), 0);
    /* Server-to-client frames sent to the server are refused. */
    uint8_t pool[64] = {0};
    for (uint8_t t = 1; t <= 9; t++) {
        if (t == SL_WIRE_HELLO || t == SL_WIRE_FINISH || t == SL_WIRE_RESUME || t == SL_WIRE_DATA)
            continue;
        sl_wire_msg m;
        memset(&m, 0, sizeof m);
        m.type = t;
        if (t == SL_WIRE_HELLO_REPLY) {
            m.u.hello_reply.cert = pool;
            m.u.hello_reply.cert_len = 10;
        } else if (sl_wire_is_sealed(t)) {
            m.u.sealed.ct = pool;
            m.u.sealed.ct_len = 16;
        }
        uint8_t *buf;
        size_t n;
        ck_assert_int_eq(sl_wire_encode(&m, &buf, &n, NULL), 0);
        ck_assert_int_eq(srv(s, buf, n, NULL, &r, &rl, &err), SL_ESTATE);
        ck_assert_msg(strstr(err.msg, "does not accept") != NULL, "%s", err.msg);
        free(buf);
        free(r);
    }
    /* DATA on a handshake that has not finished. */
    sl_wire_msg hm;
    ck_assert_int_eq(sl_wire_decode(hr, hrl, &hm, NULL), 0);
    sl_wire_msg dm = {.type = SL_WIRE_DATA};
    memcpy(dm.u.sealed.sid, hm.u.hello_reply.sid, 16);
    dm.u.sealed.counter = 1;
    dm.u.sealed.ct = pool;
    dm.u.sealed.ct_len = 20;
    uint8_t *dbuf;
    size_t dbn;
    ck_assert_int_eq(sl_wire_encode(&dm, &dbuf, &dbn, NULL), 0);
    ck_assert_int_eq(srv(s, dbuf, dbn, NULL, &r, &rl, &err), SL_ESTATE);
    ck_assert_msg(strstr(err.msg, "before the handshake finished") != NULL, "%s", err.msg);
    free(r);
    /* The client in HELLO_SENT refuses anything but HELLO_REPLY. */
    ck_assert_int_eq(sl_chan_client_handle(c, dbuf, dbn, &next, &nn, &err), SL_ESTATE);
    ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_HELLO_SENT);
    ck_assert_int_eq(sl_chan_client_handle(c, hr, hrl, &fin, &fn, &err), 0);
    /* ... and in FINISH_SENT anything but FINISH_OK; a HELLO_REPLY replayed. */
    ck_assert_int_eq(sl_chan_client_handle(c, hr, hrl, &next, &nn, &err), SL_ESTATE);
    ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_FINISH_SENT);
    ck_assert_int_eq(srv(s, fin, fn, NULL, &r, &rl, &err), 0);
    ck_assert_int_eq(sl_chan_client_handle(c, r, rl, &next, &nn, &err), 0);
    free(r);
    /* A FINISH replayed later, a HELLO_REPLY handed to a ready client. */
    round_trip(s, c, 1, (const uint8_t *)"x", 1);
    ck_assert_int_eq(srv(s, fin, fn, NULL, &r, &rl, &err), SL_ESTATE);
    free(r);
    ck_assert_int_eq(sl_chan_client_handle(c, hr, hrl, &next, &nn, &err), SL_ESTATE);
    ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_READY);
    /* FINISH for a session nobody started. */
    uint8_t *f2 = dup_bytes(fin, fn);
    f2[4] ^= 0xff;
    ck_assert_int_eq(srv(s, f2, fn, NULL, &r, &rl, &err), SL_ESTATE);
    ck_assert_msg(strstr(err.msg, "unknown or expired handshake") != NULL, "%s", err.msg);
    free(r);
    free(f2);
    round_trip(s, c, 2, (const uint8_t *)"y", 1);
    free(dbuf);
    free(hr);
    sl_transport_free(h);
    sl_transport_free(fin);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST

START_TEST(test_tampered_transcript)
{
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_err err = {0};
    /* (1) HELLO altered on its way to the server; (2) each field of the
     * HELLO_REPLY altered on its way back: the client refuses. */
    size_t spots[] = {5, 40, 67, /* HELLO: key, nonce */
                      1000 + 4, 1000 + 25, 1000 + 60, 1000 + 85, 1000 + 90, 1000 + 100};
    for (size_t i = 0; i < sizeof spots / sizeof *spots; i++) {
        sl_chan_client *c = mk_client(&f.ccfg);
        uint8_t *h, *hr, *next;
        size_t hn, hrl, nn;
        ck_assert_int_eq(sl_chan_client_start(c, 0, &h, &hn, &err), 0);
        if (spots[i] < 1000)
            h[spots[i]] ^= 0x20;
        ck_assert_int_eq(srv(s, h, hn, NULL, &hr, &hrl, &err), 0);
        if (spots[i] >= 1000)
            hr[spots[i] - 1000] ^= 0x20;
        int rc = sl_chan_client_handle(c, hr, hrl, &next, &nn, &err);
        ck_assert_msg(rc == SL_ECRYPTO, "spot %zu: %d %s", spots[i], rc, err.msg);
        ck_assert_msg(strstr(err.msg, "transcript signature") != NULL ||
                          strstr(err.msg, "certificate") != NULL,
                      "%s", err.msg);
        ck_assert_int_eq(sl_chan_client_get_state(c), SL_CHAN_HELLO_SENT);
        sl_transport_free(h);
        free(hr);
        sl_chan_client_free(c);
    }
    /* A second valid server certificate substituted by a man in the middle
     * who lacks its key: the signature does not match the certificate. */
    char k2[320], c2[320];
    pathf(k2, sizeof k2, f.dir, "server2.key");
    pathf(c2, sizeof c2, f.dir, "server2.crt");
    uint8_t pk[32];
    ck_assert_int_eq(sl_identity_keygen(k2, pk, &err), 0);
    ck_assert_int_eq(sl_identity_issue(f.ca_crt, f.ca_key, "server", SL_IDENTITY_ROLE_SERVER, pk,
                                       NULL, c2, NULL, &err),
                     0);
    uint8_t *der2;
    size_t dn2;
    cert_der(c2, &der2, &dn2);
    sl_chan_client *c = mk_client(&f.ccfg);
    uint8_t *h, *hr, *next, *forged;
    size_t hn, hrl, nn, fn;
    ck_assert_int_eq(sl_chan_client_start(c, 0, &h, &hn, &err), 0);
    ck_assert_int_eq(srv(s, h, hn, NULL, &hr, &hrl, &err), 0);
    sl_wire_msg m;
    ck_assert_int_eq(sl_wire_decode(hr, hrl, &m, NULL), 0);
    m.u.hello_reply.cert = der2;
    m.u.hello_reply.cert_len = dn2;
    ck_assert_int_eq(sl_wire_encode(&m, &forged, &fn, NULL), 0);
    ck_assert_int_eq(sl_chan_client_handle(c, forged, fn, &next, &nn, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "transcript signature") != NULL, "%s", err.msg);
    /* The genuine reply still works afterwards. */
    ck_assert_int_eq(sl_chan_client_handle(c, hr, hrl, &next, &nn, &err), 0);
    sl_transport_free(next);
    free(forged);
    free(der2);
    free(hr);
    sl_transport_free(h);
    sl_chan_client_free(c);
    sl_chan_server_free(s);
}
END_TEST

START_TEST(test_refused_identities)
{
    fx f;
    fx_init(&f);
    sl_chan_server *s = mk_server(&f.scfg);
    sl_err err = {0};
    /* Honest rogue: accepted (baseline). */
    ck_assert_msg(rogue_run(s, f.ccfg.cert, f.ccfg.key, NULL, &err, NULL, NULL, NULL) == 0, "%s",
                  err.msg);
    /* Wrong private key: certificate of a, signature by another key. */
    uint8_t opk[32], osk[64];
    crypto_sign_keypair(opk, osk);
    ck_assert_int_eq(rogue_run(s, f.ccfg.cert, NULL, osk, &err, NULL, NULL, NULL), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "transcript signature of site 'a'") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "wrong private key") != NULL, "%s", err.msg);
    /* Certificate from another CA. */
    char d2[256], ca2[320], cak2[320];
    snprintf(d2, sizeof d2, "%s", sl_test_tmpdir());
    pathf(ca2, sizeof ca2, d2, "ca.crt");
    pathf(cak2, sizeof cak2, d2, "ca.key");
    ck_assert_int_eq(sl_identity_ca_create(ca2, cak2, NULL, &err), 0);
    sl_chan_client_cfg other;
    make_site(d2, ca2, cak2, "a", NULL, NULL, &other);
    ck_assert_int_eq(rogue_run(s, other.cert, other.key, NULL, &err, NULL, NULL, NULL),
                     SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "but this side trusts") != NULL, "%s", err.msg);
    /* ... and a real client of that other CA refuses our server first. */
    sl_chan_client *oc = mk_client(&other);
    uint8_t *h, *hr, *next;
    size_t hn, hrl, nn;
    ck_assert_int_eq(sl_chan_client_start(oc, 0, &h, &hn, &err), 0);
    ck_assert_int_eq(srv(s, h, hn, NULL, &hr, &hrl, &err), 0);
    ck_assert_int_eq(sl_chan_client_handle(oc, hr, hrl, &next, &nn, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "server certificate refused") != NULL &&
                      strstr(err.msg, "rotated") != NULL,
                  "%s", err.msg);
    sl_transport_free(h);
    free(hr);
    sl_chan_client_free(oc);
    /* Expired certificate. */
    sl_chan_client_cfg old;
    sl_identity_validity v = {.start = time(NULL) - 20 * 86400, .days = 10};
    make_site(f.dir, f.ca_crt, f.ca_key, "old", &v, NULL, &old);
    ck_assert_int_eq(rogue_run(s, old.cert, old.key, NULL, &err, NULL, NULL, NULL), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "'old' expired on") != NULL, "%s", err.msg);
    /* A real client refuses to start with it, naming the cause. */
    sl_chan_client *c = NULL;
    ck_assert_int_eq(sl_chan_client_create(&old, &c, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "expired") != NULL, "%s", err.msg);
    /* The server's certificate presented by a site. */
    ck_assert_int_eq(rogue_run(s, f.scfg.cert, f.scfg.key, NULL, &err, NULL, NULL, NULL),
                     SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "not a site certificate") != NULL, "%s", err.msg);
    /* A kit whose key does not belong to its certificate. */
    sl_chan_client_cfg mixed = f.ccfg;
    snprintf(mixed.key, sizeof mixed.key, "%s", old.key);
    ck_assert_int_eq(sl_chan_client_create(&mixed, &c, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "does not belong") != NULL, "%s", err.msg);
    /* A name that is not the certificate's. */
    sl_chan_client_cfg named = f.ccfg;
    snprintf(named.name, sizeof named.name, "zzz");
    ck_assert_int_eq(sl_chan_client_create(&named, &c, &err), SL_EINVAL);
    sl_chan_server_stats st;
    sl_chan_server_get_stats(s, &st);
    ck_assert(st.handshakes == 1 && st.refused == 4);
    sl_chan_server_free(s);
}
END_TEST

START_TEST(test_config_files)
{
    fx f;
    fx_init(&f);
    const char *ini = "# comment\n[server]\nlisten = 127.0.0.1:7001\ncert = server.crt\n"
                      "key = server.key\nca = ca.crt\ncrl = crl.pem\nsession_ttl = 120\n"
                      "max_sessions = 8\n";
    const char *p = sl_test_write(f.dir, "server.ini", ini, strlen(ini));
    char sp[320];
    snprintf(sp, sizeof sp, "%s", p);
    sl_chan_server_cfg sc;
    sl_err err = {0};
    ck_assert_msg(sl_chan_server_config_load(sp, &sc, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(sc.listen, "127.0.0.1:7001");
    ck_assert_str_eq(sc.cert, f.scfg.cert);
    ck_assert_str_eq(sc.crl, f.crl);
    ck_assert_uint_eq(sc.session_ttl, 120);
    ck_assert_uint_eq(sc.max_sessions, 8);
    sc.log = quiet;
    sl_chan_server *s = mk_server(&sc);
    sl_chan_server_free(s);
    const char *cini = "[site]\nname = a\ncert = a.crt\nkey = a.key\nca = ca.crt\n"
                       "[server]\naddress = 127.0.0.1:7001\ntimeout = 5\n";
    p = sl_test_write(f.dir, "client.ini", cini, strlen(cini));
    char cp[320];
    snprintf(cp, sizeof cp, "%s", p);
    sl_chan_client_cfg cc;
    ck_assert_msg(sl_chan_client_config_load(cp, &cc, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(cc.name, "a");
    ck_assert_str_eq(cc.key, f.ccfg.key);
    ck_assert_int_eq(cc.timeout_ms, 5000);
    /* Errors name the file, the line and the key. */
    const char *bad[][2] = {
        {"[server]\nlisten = x:1\ncert = a\nkey = b\nca = c\ncolour = red\n", ":6: unknown key"},
        {"[server]\nlisten = x:1\ncert = a\nkey = b\nca = c\nsession_ttl = -5\n", ":6: bad value"},
        {"[server]\nlisten = x:1\nsession_ttl = 9999999999\n", ":3: bad value"},
        {"[server]\nlisten = x:1\ncert = a\nca = c\n", "missing required key '[server] key'"},
        {"[server]\nlisten\n", ":2:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        p = sl_test_write(f.dir, "bad.ini", bad[i][0], strlen(bad[i][0]));
        ck_assert_int_eq(sl_chan_server_config_load(p, &sc, &err), SL_EINVAL);
        ck_assert_msg(strstr(err.msg, bad[i][1]) != NULL && strstr(err.msg, "bad.ini") != NULL,
                      "%s", err.msg);
    }
    const char *badc = "[site]\nname = Not-Valid\n";
    p = sl_test_write(f.dir, "badc.ini", badc, strlen(badc));
    ck_assert_int_eq(sl_chan_client_config_load(p, &cc, &err), SL_EINVAL);
    ck_assert_int_eq(sl_chan_client_config_load("/nonexistent/x.ini", &cc, &err), SL_ENOTFOUND);
}
END_TEST

Suite *channel_suite(void)
{
    Suite *s = suite_create("channel");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_handshake_and_traffic);
    tcase_add_test(core, test_resend_answered_once);
    tcase_add_test(core, test_expiry_and_resumption);
    tcase_add_test(core, test_key_schedule_as_documented);
    tcase_add_test(core, test_sockets_call_resend_fetch);
    tcase_add_test(core, test_sockets_stream);
    tcase_add_test(core, test_deferred_answers);
    tcase_add_test(core, test_sockets_deferred);
    tcase_add_test(core, test_config_files);
    tcase_set_timeout(core, 120);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_session_quota_and_pending);
    tcase_add_test(lim, test_size_limits);
    tcase_add_test(lim, test_revocation_mid_session);
    tcase_set_timeout(lim, 120);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_replay_and_reorder);
    tcase_add_test(bad, test_pipelined_window);
    tcase_add_test(bad, test_flipped_truncated_oversized);
    tcase_add_test(bad, test_wrong_type_for_state);
    tcase_add_test(bad, test_tampered_transcript);
    tcase_add_test(bad, test_refused_identities);
    tcase_add_test(bad, test_sockets_adversarial);
    tcase_add_test(bad, test_sockets_man_in_the_middle);
    tcase_set_timeout(bad, 120);
    suite_add_tcase(s, bad);
    return s;
}
