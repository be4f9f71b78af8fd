/* The federated runtime's codecs and state: crypto/fedmsg (every message
 * round-trips on seeded random contents; every truncation, a trailing byte
 * and out-of-limit counts are refused without touching the output),
 * server/checkpoint (round trip bit for bit, a flipped byte anywhere or a
 * truncation refused, the file written atomically) and server/runcfg
 * (defaults, every key, unknown keys and sections and bad values refused
 * naming the line). */
#include <check.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/fedmsg.h"
#include "server/checkpoint.h"
#include "server/runcfg.h"
#include "shared/fsutil.h"
#include "shared/lora.h"
#include "tests/fixtures.h"

static void rand_bytes(sl_test_rng *r, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)sl_test_rand(r);
}

/* A random TRAIN task whose arrays are owned by the caller. */
static void rand_train(sl_test_rng *r, sl_fed_train *t, uint32_t dim, uint32_t n)
{
    memset(t, 0, sizeof *t);
    t->rank = 1 + (uint32_t)(sl_test_rand(r) % 64);
    t->alpha = 16.0f;
    t->targets = SL_LORA_C_ATTN | SL_LORA_MLP_FC;
    t->nlayers = 1 + (uint32_t)(sl_test_rand(r) % 8);
    for (uint32_t i = 0; i < t->nlayers; i++)
        t->layers[i] = i * 3;
    t->steps = 5;
    t->batch = 4;
    t->seq = 128;
    t->lr = 1e-3f;
    t->seed = sl_test_rand(r);
    t->dp.dim = dim;
    t->dp.clip = 1.5;
    t->dp.scale = 1024;
    t->dp.sigma = 0.7;
    t->dp.threshold = 2;
    t->dp.beta = 0.6;
    t->dp.mode = 0;
    t->dp.bits = 32;
    rand_bytes(r, t->dp.rotation_seed, 32);
    t->sa.cohort = n;
    t->sa.min_cohort = 2;
    t->sa.threshold = 2;
    t->sa.degree = n - 1;
    t->sa.share_threshold = 2;
    t->sa.dropout = 0.3;
    t->sa.dim = 1024;
    t->sa.bits = 32;
    t->n_sites = n;
    t->ids = malloc(n * sizeof *t->ids);
    t->certs = malloc(n * sizeof *t->certs);
    t->cert_lens = malloc(n * sizeof *t->cert_lens);
    for (uint32_t i = 0; i < n; i++) {
        t->ids[i] = 10 + 2 * i;
        t->cert_lens[i] = 1 + (uint32_t)(sl_test_rand(r) % 600);
        uint8_t *c = malloc(t->cert_lens[i]);
        rand_bytes(r, c, t->cert_lens[i]);
        t->certs[i] = c;
    }
    t->dim = dim;
    t->global = malloc(dim * sizeof *t->global);
    sl_test_fill(r, t->global, dim, 2.0f);
}

static void free_train(sl_fed_train *t)
{
    for (uint32_t i = 0; i < t->n_sites; i++)
        free((void *)t->certs[i]);
    free(t->ids);
    free(t->certs);
    free(t->cert_lens);
    free(t->global);
}

START_TEST(train_round_trip)
{
    sl_test_rng r = {11};
    for (int k = 0; k < 20; k++) {
        sl_fed_train t, u;
        rand_train(&r, &t, 1 + (uint32_t)(sl_test_rand(&r) % 3000), 2 + (uint32_t)(k % 9));
        uint8_t *buf;
        size_t n;
        sl_err err = {0};
        ck_assert_int_eq(sl_fed_train_encode(42 + k, &t, &buf, &n, &err), 0);
        sl_fed_task task;
        ck_assert_int_eq(sl_fed_task_decode(buf, n, &task, &err), 0);
        ck_assert_uint_eq(task.round, 42 + k);
        ck_assert_uint_eq(task.kind, SL_FED_TASK_TRAIN);
        ck_assert_int_eq(sl_fed_train_decode(task.body, task.len, &u, &err), 0);
        ck_assert_uint_eq(u.rank, t.rank);
        ck_assert_uint_eq(u.nlayers, t.nlayers);
        ck_assert_mem_eq(u.layers, t.layers, t.nlayers * 4);
        ck_assert_uint_eq(u.seed, t.seed);
        ck_assert(u.dp.clip == t.dp.clip && u.dp.scale == t.dp.scale && u.dp.sigma == t.dp.sigma);
        ck_assert_mem_eq(u.dp.rotation_seed, t.dp.rotation_seed, 32);
        ck_assert_uint_eq(u.sa.cohort, t.sa.cohort);
        ck_assert(u.sa.dropout == t.sa.dropout);
        ck_assert_mem_eq(u.ids, t.ids, t.n_sites * 4);
        for (uint32_t i = 0; i < t.n_sites; i++) {
            ck_assert_uint_eq(u.cert_lens[i], t.cert_lens[i]);
            ck_assert_mem_eq(u.certs[i], t.certs[i], t.cert_lens[i]);
            for (int b = 0; b < 32; b++) /* keys come from verified certificates */
                ck_assert_uint_eq(u.pks[i][b], 0);
        }
        ck_assert_mem_eq(u.global, t.global, t.dim * 4);
        sl_fed_train_fini(&u);
        free(buf);
        free_train(&t);
    }
}
END_TEST

START_TEST(small_messages_round_trip)
{
    sl_err err = {0};
    uint8_t *b;
    size_t n;
    uint8_t cert[300];
    sl_test_rng r = {5};
    rand_bytes(&r, cert, sizeof cert);
    ck_assert_int_eq(sl_fed_join_encode(cert, sizeof cert, &b, &n, &err), 0);
    const uint8_t *c;
    size_t cl;
    ck_assert_int_eq(sl_fed_join_decode(b, n, &c, &cl, &err), 0);
    ck_assert_uint_eq(cl, sizeof cert);
    ck_assert_mem_eq(c, cert, cl);
    free(b);
    sl_fed_join_ok j, k;
    memset(&j, 0, sizeof j);
    j.cert = cert;
    j.cert_len = 100;
    j.nfiles = 3;
    strcpy(j.files[0], "config.json");
    strcpy(j.files[1], "model.safetensors");
    strcpy(j.files[2], "tokenizer.json");
    ck_assert_int_eq(sl_fed_join_ok_encode(&j, &b, &n, &err), 0);
    ck_assert_int_eq(sl_fed_join_ok_decode(b, n, &k, &err), 0);
    ck_assert_uint_eq(k.nfiles, 3);
    ck_assert_str_eq(k.files[1], "model.safetensors");
    ck_assert_mem_eq(k.cert, cert, 100);
    free(b);
    uint64_t v64 = 0, r64 = 0;
    ck_assert_int_eq(sl_fed_poll_encode(0x0102030405060708ull, 7, &b, &n, &err), 0);
    ck_assert_int_eq(sl_fed_poll_decode(b, n, &v64, &r64, &err), 0);
    ck_assert(v64 == 0x0102030405060708ull && r64 == 7);
    /* A short or long POLL is refused and leaves the outputs alone. */
    ck_assert_int_eq(sl_fed_poll_decode(b, n - 1, &v64, &r64, &err), SL_EFORMAT);
    ck_assert(v64 == 0x0102030405060708ull && r64 == 7);
    free(b);
    char text[SL_WIRE_MAX_TEXT + 1];
    ck_assert_int_eq(sl_fed_text_encode("all 3 rounds done", &b, &n, &err), 0);
    ck_assert_int_eq(sl_fed_text_decode(b, n, text, &err), 0);
    ck_assert_str_eq(text, "all 3 rounds done");
    free(b);
    const uint8_t *m;
    size_t ml;
    ck_assert_int_eq(sl_fed_submit_encode(7, "abc", 3, &b, &n, &err), 0);
    ck_assert_int_eq(sl_fed_submit_decode(b, n, &v64, &m, &ml, &err), 0);
    ck_assert(v64 == 7 && ml == 3 && !memcmp(m, "abc", 3));
    free(b);
}
END_TEST

START_TEST(train_truncations_refused)
{
    sl_test_rng r = {3};
    sl_fed_train t, u;
    rand_train(&r, &t, 200, 4);
    uint8_t *buf;
    size_t n;
    sl_err err = {0};
    ck_assert_int_eq(sl_fed_train_encode(1, &t, &buf, &n, &err), 0);
    const uint8_t *body = buf + 9;
    size_t len = n - 9;
    for (size_t cut = 0; cut < len; cut += (cut < 400 ? 1 : 97)) {
        memset(&u, 0x5a, sizeof u);
        ck_assert_int_ne(sl_fed_train_decode(body, cut, &u, &err), 0);
        ck_assert_ptr_null(u.global); /* zeroed, nothing to free */
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, body, len);
    longer[len] = 0;
    ck_assert_int_ne(sl_fed_train_decode(longer, len + 1, &u, &err), 0);
    free(longer);
    /* A non-finite adapter value is refused, naming its index. */
    uint8_t *bad = malloc(len);
    memcpy(bad, body, len);
    memset(bad + len - 4 * 10, 0xff, 4); /* a NaN at index 190 */
    ck_assert_int_ne(sl_fed_train_decode(bad, len, &u, &err), 0);
    ck_assert(strstr(err.msg, "190") != NULL);
    free(bad);
    free(buf);
    free_train(&t);
}
END_TEST

START_TEST(small_truncations_refused)
{
    sl_err err = {0};
    uint8_t cert[50] = {1};
    uint8_t *b;
    size_t n;
    ck_assert_int_eq(sl_fed_join_encode(cert, sizeof cert, &b, &n, &err), 0);
    const uint8_t *c;
    size_t cl;
    for (size_t cut = 0; cut < n; cut++)
        ck_assert_int_ne(sl_fed_join_decode(b, cut, &c, &cl, &err), 0);
    b[0] = 9; /* version */
    ck_assert_int_ne(sl_fed_join_decode(b, n, &c, &cl, &err), 0);
    free(b);
    sl_fed_task t;
    uint8_t task[9] = {0}; /* round 0 */
    task[8] = SL_FED_TASK_KEYLIST;
    ck_assert_int_ne(sl_fed_task_decode(task, sizeof task, &t, &err), 0);
    task[0] = 1;
    ck_assert_int_eq(sl_fed_task_decode(task, sizeof task, &t, &err), 0);
    task[8] = 99;
    ck_assert_int_ne(sl_fed_task_decode(task, sizeof task, &t, &err), 0);
    char text[SL_WIRE_MAX_TEXT + 1];
    uint8_t ctl[6] = {2, 0, 0, 0, 'a', '\n'};
    ck_assert_int_ne(sl_fed_text_decode(ctl, sizeof ctl, text, &err), 0);
    uint64_t rd;
    const uint8_t *m;
    size_t ml;
    uint8_t sub[8] = {1};
    ck_assert_int_ne(sl_fed_submit_decode(sub, sizeof sub, &rd, &m, &ml, &err), 0);
}
END_TEST

START_TEST(train_limits)
{
    sl_test_rng r = {8};
    sl_fed_train t, u;
    rand_train(&r, &t, 64, 3);
    uint8_t *buf;
    size_t n;
    sl_err err = {0};
    t.nlayers = SL_FEDMSG_MAX_LAYERS + 1;
    ck_assert_int_eq(sl_fed_train_encode(1, &t, &buf, &n, &err), SL_ELIMIT);
    t.nlayers = 2;
    t.dim = 63; /* disagrees with the DP dimension */
    ck_assert_int_eq(sl_fed_train_encode(1, &t, &buf, &n, &err), SL_ELIMIT);
    t.dim = 64;
    uint32_t keep = t.cert_lens[1];
    t.cert_lens[1] = 0; /* an empty certificate */
    ck_assert_int_eq(sl_fed_train_encode(1, &t, &buf, &n, &err), SL_ELIMIT);
    t.cert_lens[1] = SL_WIRE_MAX_CERT + 1;
    ck_assert_int_eq(sl_fed_train_encode(1, &t, &buf, &n, &err), SL_ELIMIT);
    t.cert_lens[1] = keep;
    ck_assert_int_eq(sl_fed_train_encode(1, &t, &buf, &n, &err), 0);
    /* A cohort count larger than the bytes that follow is refused before
     * anything is allocated. */
    uint8_t *body = buf + 9;
    size_t len = n - 9;
    size_t off = 4 + 4 + 4 + 4 + 2 * 4 + 4 * 3 + 4 + 8 + 4 + 8 * 3 + 4 + 8 + 2 + 32 + 4 * 5 + 8 +
                 4 + 1;
    body[off] = 0xff;
    body[off + 1] = 0xff;
    body[off + 2] = 0xff;
    body[off + 3] = 0x7f;
    ck_assert_int_eq(sl_fed_train_decode(body, len, &u, &err), SL_EFORMAT);
    ck_assert(strstr(err.msg, "sites") != NULL);
    free(buf);
    free_train(&t);
}
END_TEST

/* ---- cohort certificates ------------------------------------------------ */

static const char *in_dir(const char *dir, const char *name)
{
    static char b[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(b[k], sizeof b[k], "%s/%s", dir, name);
    return b[k];
}

/* A certificate (DER) for a fresh key, issued by the CA in dir. */
static uint8_t *issue_der(const char *dir, const char *name, sl_identity_role role,
                          uint32_t *len, uint8_t pk[32], sl_cert_info *info)
{
    sl_err err = {0};
    char key[64], crt[64];
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(crt, sizeof crt, "%s.crt", name);
    ck_assert_msg(sl_identity_keygen(in_dir(dir, key), pk, &err) == 0, "%s", err.msg);
    ck_assert_msg(sl_identity_issue(in_dir(dir, "ca.crt"), in_dir(dir, "ca.key"), name, role, pk,
                                    NULL, in_dir(dir, crt), info, &err) == 0,
                  "%s", err.msg);
    sl_cert *c = NULL;
    uint8_t *der = NULL;
    size_t n = 0;
    ck_assert_int_eq(sl_identity_cert_read(in_dir(dir, crt), &c, &err), 0);
    ck_assert_int_eq(sl_identity_cert_der(c, &der, &n, &err), 0);
    sl_identity_cert_free(c);
    *len = (uint32_t)n;
    return der;
}

/* Each site takes the cohort's keys from certificates it checks itself: a
 * key from another CA, of the server's role, revoked, or a site listed
 * twice is refused, naming the member; the keys are left zero. */
START_TEST(cohort_certificates_verified)
{
    ck_assert_int_ge(sodium_init(), 0);
    sl_err err = {0};
    const char *d = sl_test_tmpdir();
    char dd[512], od[512];
    snprintf(dd, sizeof dd, "%s/ca", d);
    snprintf(od, sizeof od, "%s/other-ca", d);
    ck_assert_int_eq(sl_fs_mkdirs(dd, 0700, &err), 0);
    ck_assert_int_eq(sl_fs_mkdirs(od, 0700, &err), 0);
    ck_assert_int_eq(sl_identity_ca_create(in_dir(dd, "ca.crt"), in_dir(dd, "ca.key"), NULL, &err),
                     0);
    ck_assert_int_eq(sl_identity_ca_create(in_dir(od, "ca.crt"), in_dir(od, "ca.key"), NULL, &err),
                     0);
    enum { N = 3 };
    uint8_t pk[N][32], xpk[32];
    uint8_t *der[N];
    uint32_t len[N];
    sl_cert_info ci[N], xi;
    const char *names[N] = {"a", "b", "c"};
    for (int i = 0; i < N; i++)
        der[i] = issue_der(dd, names[i], SL_IDENTITY_ROLE_SITE, &len[i], pk[i], &ci[i]);
    uint32_t olen[N];
    memcpy(olen, len, sizeof olen);
    sl_trust *trust = NULL;
    ck_assert_int_eq(sl_identity_trust_load(in_dir(dd, "ca.crt"), NULL, &trust, &err), 0);
    sl_fed_train t;
    memset(&t, 0, sizeof t);
    uint32_t ids[N] = {1, 2, 3};
    const uint8_t *certs[N] = {der[0], der[1], der[2]};
    uint8_t pks[N][32];
    t.n_sites = N;
    t.ids = ids;
    t.certs = certs;
    t.cert_lens = len;
    t.pks = pks;
    memset(pks, 0, sizeof pks);
    ck_assert_msg(sl_fed_cohort_verify(&t, trust, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N; i++)
        ck_assert_mem_eq(pks[i], pk[i], 32);
    uint8_t zero[N][32];
    memset(zero, 0, sizeof zero);
    /* Another CA. */
    uint32_t xl;
    uint8_t *x = issue_der(od, "b", SL_IDENTITY_ROLE_SITE, &xl, xpk, &xi);
    certs[1] = x;
    len[1] = xl;
    memset(pks, 0, sizeof pks);
    ck_assert_int_eq(sl_fed_cohort_verify(&t, trust, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "cohort member 2") != NULL, "%s", err.msg);
    ck_assert_mem_eq(pks, zero, sizeof pks);
    free(x);
    /* The server's role. */
    x = issue_der(dd, "server", SL_IDENTITY_ROLE_SERVER, &xl, xpk, &xi);
    certs[1] = x;
    len[1] = xl;
    ck_assert_int_eq(sl_fed_cohort_verify(&t, trust, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "cohort member 2") != NULL, "%s", err.msg);
    free(x);
    /* A site twice. */
    certs[1] = der[0];
    len[1] = len[0];
    ck_assert_int_eq(sl_fed_cohort_verify(&t, trust, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "same site") != NULL, "%s", err.msg);
    ck_assert_mem_eq(pks, zero, sizeof pks);
    /* Garbage bytes. */
    uint8_t junk[40] = {0x30, 0x26};
    certs[1] = junk;
    len[1] = sizeof junk;
    ck_assert_int_eq(sl_fed_cohort_verify(&t, trust, &err), SL_ECRYPTO);
    /* Revoked (a CRL listing site c). */
    memcpy(len, olen, sizeof len);
    for (int i = 0; i < N; i++)
        certs[i] = der[i];
    sl_identity_revoked rv;
    memset(&rv, 0, sizeof rv);
    memcpy(rv.serial, ci[2].serial, ci[2].serial_len);
    rv.serial_len = ci[2].serial_len;
    rv.when = time(NULL);
    ck_assert_int_eq(sl_identity_crl_write(in_dir(dd, "ca.crt"), in_dir(dd, "ca.key"), &rv, 1,
                                           in_dir(dd, "crl.pem"), &err), 0);
    sl_trust *t2 = NULL;
    ck_assert_int_eq(sl_identity_trust_load(in_dir(dd, "ca.crt"), in_dir(dd, "crl.pem"), &t2,
                                            &err), 0);
    ck_assert_int_eq(sl_fed_cohort_verify(&t, t2, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "cohort member 3") != NULL, "%s", err.msg);
    ck_assert_int_eq(sl_fed_cohort_verify(&t, trust, &err), 0); /* without the CRL */
    sl_identity_trust_free(t2);
    sl_identity_trust_free(trust);
    for (int i = 0; i < N; i++)
        free(der[i]);
}
END_TEST

/* ---- checkpoint --------------------------------------------------------- */

static void rand_ckpt(sl_test_rng *r, sl_ckpt *c, uint32_t dim, int opt)
{
    sl_err err = {0};
    ck_assert_int_eq(sl_ckpt_init(c, dim, opt, &err), 0);
    c->round = 7;
    c->next_round = 9;
    c->pending_round = 8;
    c->pending.mode = 0;
    c->pending.q = 0.5;
    c->pending.clip = 1;
    c->pending.scale = 100;
    c->pending.sigma2_grid = 50;
    c->pending.dim = 1024;
    c->pending.sampled = 10;
    c->pending.received = 5;
    c->pending.survivors = 5;
    c->pending.threshold = 5;
    c->pending.modulus_bits = 32;
    c->pending.rounding_beta = 0.5;
    ck_assert_int_eq(sl_acct_add_sgm(&c->acct, 0.1, 1.1, 3, &err), 0);
    c->adam_t = 4;
    sl_test_fill(r, c->global, dim, 1.0f);
    if (opt == SL_CKPT_FEDADAM) {
        sl_test_fill(r, c->m, dim, 1.0f);
        sl_test_fill(r, c->v, dim, 1.0f);
    }
}

START_TEST(ckpt_round_trip)
{
    sl_test_rng r = {21};
    for (int opt = 0; opt < 2; opt++) {
        sl_ckpt c, d;
        rand_ckpt(&r, &c, 1000 + 17 * (uint32_t)opt, opt);
        const char *dir = sl_test_tmpdir();
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, SL_CKPT_FILE);
        sl_err err = {0};
        ck_assert_int_eq(sl_ckpt_save(path, &c, &err), 0);
        ck_assert_int_eq(sl_ckpt_load(path, &d, &err), 0);
        ck_assert(d.round == 7 && d.next_round == 9 && d.pending_round == 8 && d.adam_t == 4);
        ck_assert_int_eq(d.optimizer, opt);
        ck_assert_mem_eq(&d.pending, &c.pending, sizeof c.pending);
        ck_assert_uint_eq(d.acct.n, c.acct.n);
        ck_assert_mem_eq(d.acct.rdp, c.acct.rdp, c.acct.n * sizeof(double));
        ck_assert_mem_eq(d.acct.orders, c.acct.orders, c.acct.n * sizeof(double));
        ck_assert_mem_eq(d.global, c.global, c.dim * 4);
        if (opt)
            ck_assert(!memcmp(d.m, c.m, c.dim * 4) && !memcmp(d.v, c.v, c.dim * 4));
        /* Same epsilon from the reloaded accountant. */
        sl_acct_eps e1, e2;
        ck_assert_int_eq(sl_acct_epsilon(&c.acct, 1e-5, &e1, &err), 0);
        ck_assert_int_eq(sl_acct_epsilon(&d.acct, 1e-5, &e2, &err), 0);
        ck_assert(e1.epsilon == e2.epsilon);
        sl_ckpt_fini(&c);
        sl_ckpt_fini(&d);
    }
}
END_TEST

START_TEST(ckpt_tamper_refused)
{
    sl_test_rng r = {4};
    sl_ckpt c, d;
    rand_ckpt(&r, &c, 300, SL_CKPT_FEDAVG);
    uint8_t *buf;
    size_t n;
    sl_err err = {0};
    ck_assert_int_eq(sl_ckpt_encode(&c, &buf, &n, &err), 0);
    for (size_t i = 0; i < n; i += 1 + i / 16) {
        buf[i] ^= 0x10;
        memset(&d, 0x5a, sizeof d);
        ck_assert_int_eq(sl_ckpt_decode(buf, n, &d, &err), SL_EFORMAT);
        buf[i] ^= 0x10;
    }
    for (size_t cut = 0; cut < n; cut += 1 + cut / 8)
        ck_assert_int_eq(sl_ckpt_decode(buf, cut, &d, &err), SL_EFORMAT);
    ck_assert_int_eq(sl_ckpt_decode(buf, n, &d, &err), 0);
    sl_ckpt_fini(&d);
    free(buf);
    const char *dir = sl_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/none.bin", dir);
    ck_assert_int_eq(sl_ckpt_load(path, &d, &err), SL_ENOTFOUND);
    sl_ckpt_fini(&c);
}
END_TEST

START_TEST(ckpt_limits)
{
    sl_ckpt c;
    sl_err err = {0};
    ck_assert_int_eq(sl_ckpt_init(&c, 0, SL_CKPT_FEDAVG, &err), SL_ELIMIT);
    ck_assert_int_eq(sl_ckpt_init(&c, SL_CKPT_MAX_DIM + 1, SL_CKPT_FEDAVG, &err), SL_ELIMIT);
    /* Inconsistent counters are refused even with a valid digest. */
    sl_test_rng r = {9};
    rand_ckpt(&r, &c, 16, SL_CKPT_FEDAVG);
    c.next_round = c.round; /* next must be above the last completed */
    uint8_t *buf;
    size_t n;
    ck_assert_int_eq(sl_ckpt_encode(&c, &buf, &n, &err), 0);
    sl_ckpt d;
    ck_assert_int_eq(sl_ckpt_decode(buf, n, &d, &err), SL_EFORMAT);
    ck_assert(strstr(err.msg, "inconsistent") != NULL);
    free(buf);
    sl_ckpt_fini(&c);
}
END_TEST

/* ---- run configuration -------------------------------------------------- */

static const char *ini(const char *text)
{
    return sl_test_write(sl_test_tmpdir(), "server.ini", text, strlen(text));
}

START_TEST(runcfg_keys)
{
    sl_runcfg *c = malloc(sizeof *c);
    sl_err err = {0};
    const char *p = ini("[server]\nlisten = 127.0.0.1:1\n[run]\nmodel = m\nsites = a, b,c\n"
                        "rounds = 7\nsample_rate = 0.25\nlora_targets = c_attn,mlp.c_fc\n"
                        "optimizer = fedadam\nnoise = central\nepsilon = 3\ndelta = 1e-6\n");
    ck_assert_int_eq(sl_runcfg_load(p, c, &err), 0);
    ck_assert_uint_eq(c->nsites, 3);
    ck_assert_str_eq(c->sites[2], "c");
    ck_assert_int_eq(sl_runcfg_site(c, "b"), 1);
    ck_assert_int_eq(sl_runcfg_site(c, "d"), -1);
    ck_assert_uint_eq(c->rounds, 7);
    ck_assert(c->sample_rate == 0.25 && c->epsilon == 3 && c->delta == 1e-6);
    ck_assert_uint_eq(c->lora_targets, SL_LORA_C_ATTN | SL_LORA_MLP_FC);
    ck_assert(c->fedadam && c->central && c->server_lr == 1e-2);
    ck_assert(strstr(c->model, "/m") != NULL); /* relative to the file */
    free(c);
}
END_TEST

START_TEST(runcfg_malformed)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"[run]\nmodel = m\nsites = a,b\nroundz = 3\n", "unknown key 'roundz'"},
        {"[run]\nmodel = m\nsites = a,b\n[other]\nx = 1\n", "unknown section [other]"},
        {"[run]\nmodel = m\nsites = a,B\n", "bad value 'a,B'"},
        {"[run]\nmodel = m\nsites = a,a\n", "bad value 'a,a'"},
        {"[run]\nmodel = m\nsites = a\n", "bad value 'a'"},
        {"[run]\nmodel = m\nsites = a,b\nsample_rate = 0\n", "sample_rate"},
        {"[run]\nmodel = m\nsites = a,b\nsample_rate = 1.5\n", "sample_rate"},
        {"[run]\nmodel = m\nsites = a,b\nepsilon = nan\n", "epsilon"},
        {"[run]\nmodel = m\nsites = a,b\nrounds = -1\n", "rounds"},
        {"[run]\nmodel = m\nsites = a,b\nlora_targets = q_proj\n", "lora_targets"},
        {"[run]\nmodel = m\nsites = a,b\nmin_sites = 3\n", "min_sites 3"},
        {"[run]\nsites = a,b\n", "missing required key '[run] model'"},
        {"[run]\nmodel = m\n", "missing required key '[run] sites'"},
    };
    sl_runcfg *c = malloc(sizeof *c);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_err err = {0};
        memset(c, 0x5a, sizeof *c);
        ck_assert_int_ne(sl_runcfg_load(ini(bad[i].text), c, &err), 0);
        ck_assert_msg(strstr(err.msg, bad[i].want) != NULL, "case %zu: %s", i, err.msg);
        ck_assert_uint_eq(c->rounds, 0x5a5a5a5a); /* untouched */
    }
    free(c);
}
END_TEST

Suite *runtime_suite(void)
{
    Suite *s = suite_create("runtime");
    TCase *core = tcase_create("core");
    tcase_add_test(core, train_round_trip);
    tcase_add_test(core, small_messages_round_trip);
    tcase_add_test(core, ckpt_round_trip);
    tcase_add_test(core, cohort_certificates_verified);
    tcase_add_test(core, runcfg_keys);
    suite_add_tcase(s, core);
    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, train_limits);
    tcase_add_test(limits, ckpt_limits);
    suite_add_tcase(s, limits);
    TCase *mal = tcase_create("malformed");
    tcase_add_test(mal, train_truncations_refused);
    tcase_add_test(mal, small_truncations_refused);
    tcase_add_test(mal, ckpt_tamper_refused);
    tcase_add_test(mal, runcfg_malformed);
    suite_add_tcase(s, mal);
    return s;
}
