/* Secure aggregation end to end (crypto/secagg_client, secagg_server,
 * secagg_graph, secagg_config, secagg_sim):
 *  - exactness: for 3, 10 and 50 sites and dropouts before share keys,
 *    after share keys, after masked input and during unmasking (and all
 *    at once), the unmasked sum equals the plain modular sum of the
 *    contributors' vectors bit for bit, for both moduli;
 *  - privacy of the masks: a masked vector of an all-zero (or structured)
 *    input passes a chi-square test for uniform bytes; the server never
 *    holds both share kinds for one site;
 *  - adversarial sites (wrong length, shares for non-neighbours, a second
 *    masked input, both share kinds, wrong sender, bad signature) are
 *    refused with a clear error and the round still completes exactly;
 *    adversarial server messages are refused by the sites;
 *  - graph and configuration checks. */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secagg_client.h"
#include "crypto/secagg_graph.h"
#include "crypto/secagg_msg.h"
#include "crypto/secagg_server.h"
#include "crypto/secagg_sim.h"
#include "tests/fixtures.h"

static void setup(void) { ck_assert_int_ge(sodium_init(), 0); }

/* ---- exactness through the simulator ------------------------------- */

static void fill_words(sl_test_rng *r, void *w, size_t nbytes)
{
    for (size_t i = 0; i < nbytes; i++)
        ((uint8_t *)w)[i] = (uint8_t)sl_test_rand(r);
}

/* Runs one round where `ndrop` seeded-random sites drop at `when` (or at
 * mixed phases when when < 0) and checks the sum against our own plain
 * sum of the sites that sent a masked input. */
static void exact_case(uint32_t n, uint32_t dim, double dropout, uint32_t ndrop, int when,
                       unsigned bits, uint64_t seed)
{
    sl_err err = {0};
    sl_secagg_sim_opts o;
    memset(&o, 0, sizeof o);
    ck_assert_msg(sl_secagg_config_default(&o.cfg, n, dim, dropout, bits, &err) == 0, "%s",
                  err.msg);
    o.round = seed;
    o.seed = seed;
    o.first_id = 1000;
    size_t wb = bits / 8;
    uint8_t *in = malloc((size_t)n * dim * wb), *drop = calloc(n, 1);
    uint8_t *sum = malloc(dim * wb), *plain = calloc(dim, wb);
    sl_test_rng r = {seed};
    fill_words(&r, in, (size_t)n * dim * wb);
    for (uint32_t d = 0; d < ndrop;) {
        uint32_t i = (uint32_t)(sl_test_rand(&r) % n);
        if (drop[i])
            continue;
        drop[i] = (uint8_t)(when > 0 ? when : SL_SECAGG_SIM_BEFORE_SHARES + (int)(d % 4));
        d++;
    }
    o.drop = drop;
    o.inputs = in;
    sl_secagg_sim_result res;
    ck_assert_msg(sl_secagg_sim_run(&o, sum, &res, &err) == 0, "%s", err.msg);
    ck_assert_msg(!res.aborted, "n=%u when=%d: %s", n, when, res.abort_msg);
    uint32_t contrib = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (drop[i] == SL_SECAGG_SIM_BEFORE_SHARES || drop[i] == SL_SECAGG_SIM_BEFORE_INPUT ||
            drop[i] == SL_SECAGG_SIM_NO_ADVERT)
            continue;
        contrib++;
        for (size_t j = 0; j < dim; j++) {
            if (bits == 32)
                ((uint32_t *)plain)[j] += ((uint32_t *)in)[(size_t)i * dim + j];
            else
                ((uint64_t *)plain)[j] += ((uint64_t *)in)[(size_t)i * dim + j];
        }
    }
    ck_assert_uint_eq(res.contributors, contrib);
    ck_assert_msg(memcmp(sum, plain, dim * wb) == 0, "n=%u when=%d bits=%u: sum differs", n, when,
                  bits);
    ck_assert(res.exact);
    if (when == SL_SECAGG_SIM_BEFORE_UNMASK || when == SL_SECAGG_SIM_LATE_UNMASK)
        ck_assert_uint_lt(res.answered, contrib);
    free(in);
    free(drop);
    free(sum);
    free(plain);
}

static const int phases[] = {SL_SECAGG_SIM_BEFORE_SHARES, SL_SECAGG_SIM_BEFORE_INPUT,
                             SL_SECAGG_SIM_BEFORE_UNMASK, SL_SECAGG_SIM_LATE_UNMASK, -1};

START_TEST(test_exact_3)
{
    for (size_t p = 0; p < sizeof phases / sizeof phases[0]; p++)
        exact_case(3, 300, 1.0 / 3, 1, phases[p], 32, 100 + p);
    exact_case(3, 300, 1.0 / 3, 0, 0, 64, 7);
}
END_TEST

START_TEST(test_exact_10)
{
    for (size_t p = 0; p < sizeof phases / sizeof phases[0]; p++)
        exact_case(10, 300, 0.2, 2, phases[p], 32, 200 + p);
    exact_case(10, 300, 0.2, 2, SL_SECAGG_SIM_BEFORE_INPUT, 64, 210);
    exact_case(10, 300, 0.2, 2, -1, 64, 211);
    exact_case(10, 5000, 0.2, 2, -1, 32, 220); /* crosses keystream blocks */
}
END_TEST

START_TEST(test_exact_50)
{
    for (size_t p = 0; p < sizeof phases / sizeof phases[0]; p++)
        exact_case(50, 100, 0.1, 5, phases[p], 32, 300 + p);
}
END_TEST

/* ---- a hand-driven round for the adversarial cases ------------------- */

#define MAXN 48
typedef struct tround {
    uint32_t n, dim;
    sl_secagg_config cfg;
    uint64_t round;
    uint32_t ids[MAXN];
    uint8_t pk[MAXN][32], sk[MAXN][64];
    sl_dp_rng rng[MAXN];
    sl_secagg_client *cl[MAXN];
    sl_secagg_server *srv;
    uint8_t *bc;          /* last broadcast */
    size_t bclen;
    uint8_t *msg[MAXN];   /* last message of each site */
    size_t len[MAXN];
    uint32_t *in;         /* n x dim inputs */
    uint8_t in_sum[MAXN]; /* which inputs the server took */
} tround;

/* degree > 0 replaces the default degree (share threshold: a bare majority). */
static void tr_init_deg(tround *t, uint32_t n, uint32_t dim, double dropout, uint32_t degree,
                        uint64_t seed)
{
    memset(t, 0, sizeof *t);
    sl_err err = {0};
    t->n = n;
    t->dim = dim;
    t->round = seed;
    ck_assert_msg(sl_secagg_config_default(&t->cfg, n, dim, dropout, 32, &err) == 0, "%s", err.msg);
    if (degree) {
        t->cfg.degree = degree;
        t->cfg.share_threshold = (degree + 1) / 2 + 1;
        ck_assert_msg(sl_secagg_config_validate(&t->cfg, &err) == 0, "%s", err.msg);
    }
    for (uint32_t i = 0; i < n; i++) {
        uint8_t s[32] = {(uint8_t)i, (uint8_t)seed, 1};
        crypto_sign_seed_keypair(t->pk[i], t->sk[i], s);
        t->ids[i] = 10 + 3 * i;
        sl_dp_rng_init_u64(&t->rng[i], seed * 1000 + i);
    }
    for (uint32_t i = 0; i < n; i++)
        ck_assert_int_eq(sl_secagg_client_create(&t->cl[i], &t->cfg, t->round, t->ids[i], t->sk[i],
                                                 t->ids, (const uint8_t(*)[32])t->pk, n,
                                                 &t->rng[i], &err), 0);
    ck_assert_int_eq(sl_secagg_server_create(&t->srv, &t->cfg, t->round, t->ids,
                                             (const uint8_t(*)[32])t->pk, n, &err), 0);
    t->in = malloc((size_t)n * dim * 4);
    sl_test_rng r = {seed};
    for (size_t i = 0; i < (size_t)n * dim; i++)
        t->in[i] = (uint32_t)sl_test_rand(&r);
}

static void tr_init(tround *t, uint32_t n, uint32_t dim, double dropout, uint64_t seed)
{
    tr_init_deg(t, n, dim, dropout, 0, seed);
}

static void tr_free(tround *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        sl_secagg_client_free(t->cl[i]);
        sl_dp_rng_fini(&t->rng[i]);
        free(t->msg[i]);
    }
    sl_secagg_server_free(t->srv);
    free(t->bc);
    free(t->in);
}

static void tr_set(tround *t, uint32_t i, uint8_t *m, size_t l)
{
    free(t->msg[i]);
    t->msg[i] = m;
    t->len[i] = l;
}

static void tr_bc(tround *t, uint8_t *m, size_t l)
{
    free(t->bc);
    t->bc = m;
    t->bclen = l;
}

/* Phase helpers: `skip` marks sites that stay silent in that phase. */
static void tr_advertise(tround *t, const uint8_t *skip)
{
    sl_err err = {0};
    for (uint32_t i = 0; i < t->n; i++) {
        if (skip && skip[i])
            continue;
        uint8_t *m;
        size_t l;
        ck_assert_int_eq(sl_secagg_client_advertise(t->cl[i], &m, &l, &err), 0);
        tr_set(t, i, m, l);
        ck_assert_msg(sl_secagg_server_on_advertise(t->srv, t->ids[i], m, l, &err) == 0, "%s",
                      err.msg);
    }
    uint8_t *m;
    size_t l;
    ck_assert_msg(sl_secagg_server_end_advertise(t->srv, &m, &l, &err) == 0, "%s", err.msg);
    tr_bc(t, m, l);
}

static void tr_keylist(tround *t, const uint8_t *skip, int send)
{
    sl_err err = {0};
    for (uint32_t i = 0; i < t->n; i++) {
        if (skip && skip[i])
            continue;
        uint8_t *m;
        size_t l;
        ck_assert_msg(sl_secagg_client_on_keylist(t->cl[i], t->bc, t->bclen, &m, &l, &err) == 0,
                      "%s", err.msg);
        tr_set(t, i, m, l);
        if (send)
            ck_assert_msg(sl_secagg_server_on_shares(t->srv, t->ids[i], m, l, &err) == 0, "%s",
                          err.msg);
    }
}

static void tr_masked(tround *t, const uint8_t *skip, int send)
{
    sl_err err = {0};
    ck_assert_int_eq(sl_secagg_server_end_shares(t->srv, &err), 0);
    for (uint32_t i = 0; i < t->n; i++) {
        if (skip && skip[i])
            continue;
        uint8_t *d, *m;
        size_t dl, l;
        ck_assert_msg(sl_secagg_server_deliver(t->srv, t->ids[i], &d, &dl, &err) == 0, "%s",
                      err.msg);
        ck_assert_msg(sl_secagg_client_on_deliver(t->cl[i], d, dl, t->in + (size_t)i * t->dim, &m,
                                                  &l, &err) == 0, "%s", err.msg);
        free(d);
        tr_set(t, i, m, l);
        if (send) {
            ck_assert_msg(sl_secagg_server_on_masked(t->srv, t->ids[i], m, l, &err) == 0, "%s",
                          err.msg);
            t->in_sum[i] = 1;
        }
    }
}

static void tr_unmask(tround *t, const uint8_t *skip, int send)
{
    sl_err err = {0};
    uint8_t *m;
    size_t l;
    ck_assert_msg(sl_secagg_server_end_masked(t->srv, &m, &l, &err) == 0, "%s", err.msg);
    tr_bc(t, m, l);
    for (uint32_t i = 0; i < t->n; i++) {
        if ((skip && skip[i]) || !t->in_sum[i])
            continue;
        ck_assert_msg(sl_secagg_client_on_unmask_request(t->cl[i], t->bc, t->bclen, &m, &l, &err)
                          == 0, "%s", err.msg);
        tr_set(t, i, m, l);
        if (send)
            ck_assert_msg(sl_secagg_server_on_unmask(t->srv, t->ids[i], m, l, &err) == 0, "%s",
                          err.msg);
    }
}

static void tr_check_sum(tround *t)
{
    sl_err err = {0};
    uint32_t *sum = malloc(t->dim * 4), *plain = calloc(t->dim, 4);
    ck_assert(sl_secagg_server_ready(t->srv));
    ck_assert_msg(sl_secagg_server_finish(t->srv, sum, &err) == 0, "%s", err.msg);
    for (uint32_t i = 0; i < t->n; i++)
        if (t->in_sum[i])
            for (uint32_t j = 0; j < t->dim; j++)
                plain[j] += t->in[(size_t)i * t->dim + j];
    ck_assert_mem_eq(sum, plain, t->dim * 4);
    free(sum);
    free(plain);
}

static void expect_refused(int rc, const sl_err *err, const char *needle)
{
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(err->msg, needle) != NULL, "message '%s' lacks '%s'", err->msg, needle);
}

/* ---- privacy of the masks ---------------------------------------------- */

static double chi_bytes(const uint8_t *b, size_t n)
{
    double h[256] = {0}, e = n / 256.0, chi = 0;
    for (size_t i = 0; i < n; i++)
        h[b[i]] += 1;
    for (int i = 0; i < 256; i++)
        chi += (h[i] - e) * (h[i] - e) / e;
    return chi;
}

START_TEST(test_masked_vector_uniform)
{
    /* 16384 words = 65536 bytes, 256 expected per byte value; 330.5 is the
     * 0.999 quantile of chi-square with 255 degrees of freedom. */
    tround t;
    tr_init(&t, 5, 16384, 0.2, 41);
    for (uint32_t j = 0; j < t.dim; j++) {
        t.in[j] = 0;                      /* site 0: all zeros */
        t.in[t.dim + j] = 0x01020304u;    /* site 1: one repeated word */
    }
    ck_assert_double_gt(chi_bytes((const uint8_t *)(t.in + t.dim), t.dim * 4), 1e5); /* power */
    tr_advertise(&t, NULL);
    tr_keylist(&t, NULL, 1);
    tr_masked(&t, NULL, 1);
    for (int s = 0; s < 2; s++) {
        sl_secagg_msg m;
        sl_err err = {0};
        ck_assert_int_eq(sl_secagg_msg_decode(&m, t.msg[s], t.len[s], &err), 0);
        ck_assert_uint_eq(m.dim, t.dim);
        double chi = chi_bytes(m.words, (size_t)m.dim * 4);
        ck_assert_msg(chi < 330.5, "site %d: chi-square %.1f", s, chi);
        sl_secagg_msg_fini(&m);
    }
    tr_unmask(&t, NULL, 1);
    tr_check_sum(&t);
    tr_free(&t);
}
END_TEST

START_TEST(test_never_both_kinds)
{
    tround t;
    tr_init(&t, 10, 64, 0.2, 42);
    uint8_t drop_input[MAXN] = {0};
    drop_input[3] = drop_input[7] = 1; /* share keys, then vanish */
    tr_advertise(&t, NULL);
    tr_keylist(&t, NULL, 1);
    tr_masked(&t, drop_input, 1);
    tr_unmask(&t, NULL, 0);
    sl_err err = {0};
    /* Site 0 asks to reveal both kinds for site 3 (it holds both shares). */
    sl_secagg_msg m;
    ck_assert_int_eq(sl_secagg_msg_decode(&m, t.msg[0], t.len[0], &err), 0);
    sl_secagg_msg evil = m;
    evil.shares = malloc((m.count + 1) * sizeof *evil.shares);
    uint32_t k = 0;
    for (uint32_t i = 0; i < m.count; i++) {
        evil.shares[k++] = m.shares[i];
        if (m.shares[i].about == t.ids[3]) {
            evil.shares[k] = m.shares[i];
            evil.shares[k++].kind = SL_SECAGG_SHARE_SELF; /* the other kind too */
        }
    }
    evil.count = k;
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(sl_secagg_msg_encode(&evil, &buf, &len, &err), 0);
    expect_refused(sl_secagg_server_on_unmask(t.srv, t.ids[0], buf, len, &err), &err,
                   "both kinds");
    free(buf);
    /* Only the wrong kind: a key share of a survivor. */
    evil.count = 1;
    evil.shares[0].about = t.ids[1];
    evil.shares[0].kind = SL_SECAGG_SHARE_KEY;
    ck_assert_int_eq(sl_secagg_msg_encode(&evil, &buf, &len, &err), 0);
    expect_refused(sl_secagg_server_on_unmask(t.srv, t.ids[0], buf, len, &err), &err,
                   "key share of site 13");
    free(buf);
    free(evil.shares);
    sl_secagg_msg_fini(&m);
    uint32_t ns, nk;
    sl_secagg_server_share_counts(t.srv, t.ids[3], &ns, &nk);
    ck_assert_uint_eq(ns + nk, 0); /* refusals changed nothing */
    /* Honest answers; the invariant holds for every site, after each. */
    for (uint32_t i = 0; i < t.n; i++) {
        if (!t.in_sum[i])
            continue;
        ck_assert_int_eq(sl_secagg_server_on_unmask(t.srv, t.ids[i], t.msg[i], t.len[i], &err), 0);
        for (uint32_t j = 0; j < t.n; j++) {
            sl_secagg_server_share_counts(t.srv, t.ids[j], &ns, &nk);
            ck_assert(ns == 0 || nk == 0);
            if (drop_input[j])
                ck_assert_uint_eq(ns, 0);
            else
                ck_assert_uint_eq(nk, 0);
        }
    }
    sl_secagg_server_share_counts(t.srv, t.ids[3], &ns, &nk);
    ck_assert_uint_ge(nk, t.cfg.share_threshold);
    tr_check_sum(&t);
    tr_free(&t);
}
END_TEST

/* ---- adversarial sites ------------------------------------------------ */

START_TEST(test_adversarial_sites)
{
    tround t;
    tr_init_deg(&t, 40, 50, 0.2, 10, 43); /* a ring graph of degree 10, not complete */
    sl_err err = {0};
    /* Advertisements: a bad signature, an unregistered sender, a replay. */
    uint8_t *m;
    size_t l;
    ck_assert_int_eq(sl_secagg_client_advertise(t.cl[0], &m, &l, &err), 0);
    m[l - 1] ^= 1;
    expect_refused(sl_secagg_server_on_advertise(t.srv, t.ids[0], m, l, &err), &err,
                   "bad signature");
    m[l - 1] ^= 1;
    expect_refused(sl_secagg_server_on_advertise(t.srv, 9999, m, l, &err), &err,
                   "not registered");
    expect_refused(sl_secagg_server_on_advertise(t.srv, t.ids[1], m, l, &err), &err,
                   "claims to come from site 10");
    ck_assert_int_eq(sl_secagg_server_on_advertise(t.srv, t.ids[0], m, l, &err), 0);
    expect_refused(sl_secagg_server_on_advertise(t.srv, t.ids[0], m, l, &err), &err,
                   "second key advertisement");
    free(m);
    uint8_t skip0[MAXN] = {1};
    tr_advertise(&t, skip0);
    /* Shares: site 0 sends bundles for every other site. */
    uint8_t skip_none[MAXN] = {0};
    tr_keylist(&t, skip_none, 0);
    sl_secagg_msg sh;
    ck_assert_int_eq(sl_secagg_msg_decode(&sh, t.msg[0], t.len[0], &err), 0);
    sl_secagg_msg all = sh;
    all.sealed = malloc(t.n * sizeof *all.sealed);
    all.count = 0;
    for (uint32_t i = 1; i < t.n; i++) {
        all.sealed[all.count] = sh.sealed[0];
        all.sealed[all.count++].peer = t.ids[i];
    }
    ck_assert_int_eq(sl_secagg_msg_encode(&all, &m, &l, &err), 0);
    expect_refused(sl_secagg_server_on_shares(t.srv, t.ids[0], m, l, &err), &err,
                   "not its neighbour");
    free(m);
    free(all.sealed);
    sl_secagg_msg_fini(&sh);
    /* Site 0 is now out (no shares); everybody else shares honestly. */
    for (uint32_t i = 1; i < t.n; i++)
        ck_assert_int_eq(sl_secagg_server_on_shares(t.srv, t.ids[i], t.msg[i], t.len[i], &err), 0);
    expect_refused(sl_secagg_server_on_shares(t.srv, t.ids[1], t.msg[1], t.len[1], &err), &err,
                   "second share message");
    uint8_t skip_first[MAXN] = {1};
    tr_masked(&t, skip_first, 0);
    /* Masked inputs: site 1's vector one word short, site 2 twice. */
    sl_secagg_msg mk;
    ck_assert_int_eq(sl_secagg_msg_decode(&mk, t.msg[1], t.len[1], &err), 0);
    sl_secagg_msg shortm = mk;
    shortm.vec = mk.words;
    shortm.dim = mk.dim - 1;
    ck_assert_int_eq(sl_secagg_msg_encode(&shortm, &m, &l, &err), 0);
    expect_refused(sl_secagg_server_on_masked(t.srv, t.ids[1], m, l, &err), &err,
                   "49 words");
    free(m);
    sl_secagg_msg_fini(&mk);
    for (uint32_t i = 2; i < t.n; i++) {
        ck_assert_int_eq(sl_secagg_server_on_masked(t.srv, t.ids[i], t.msg[i], t.len[i], &err), 0);
        t.in_sum[i] = 1;
    }
    expect_refused(sl_secagg_server_on_masked(t.srv, t.ids[2], t.msg[2], t.len[2], &err), &err,
                   "second masked input");
    /* A masked input sent as another site. */
    expect_refused(sl_secagg_server_on_masked(t.srv, t.ids[1], t.msg[2], t.len[2], &err), &err,
                   "claims to come from");
    /* The round goes on: site 1 counts as dropped after sharing keys. */
    tr_unmask(&t, NULL, 1);
    expect_refused(sl_secagg_server_on_unmask(t.srv, t.ids[2], t.msg[2], t.len[2], &err), &err,
                   "second unmasking answer");
    sl_secagg_server_stats st;
    sl_secagg_server_get_stats(t.srv, &st);
    ck_assert_uint_eq(st.masked, t.n - 2);
    ck_assert_uint_ge(st.refused, 10);
    tr_check_sum(&t);
    tr_free(&t);
}
END_TEST

START_TEST(test_sites_refuse_bad_server)
{
    tround t;
    tr_init(&t, 6, 16, 0.2, 44);
    sl_err err = {0};
    tr_advertise(&t, NULL);
    /* A key list with another site's signature broken. */
    uint8_t *bad = malloc(t.bclen);
    memcpy(bad, t.bc, t.bclen);
    size_t entry = 10 + 21 + 4;
    bad[entry + 164 + 100] ^= 1; /* second entry's commitment */
    uint8_t *m = NULL;
    size_t l;
    expect_refused(sl_secagg_client_on_keylist(t.cl[0], bad, t.bclen, &m, &l, &err), &err,
                   "bad signature");
    ck_assert_ptr_null(m);
    /* Parameters other than the site's own. */
    memcpy(bad, t.bc, t.bclen);
    bad[10 + 8] ^= 1; /* threshold */
    expect_refused(sl_secagg_client_on_keylist(t.cl[0], bad, t.bclen, &m, &l, &err), &err,
                   "differ from this site's");
    free(bad);
    /* The state is unchanged: the genuine list is still accepted. */
    tr_keylist(&t, NULL, 1);
    ck_assert_int_eq(sl_secagg_server_end_shares(t.srv, &err), 0);
    /* Delivered shares from a site that is not a neighbour (itself). */
    uint8_t *d;
    size_t dl;
    ck_assert_int_eq(sl_secagg_server_deliver(t.srv, t.ids[0], &d, &dl, &err), 0);
    sl_secagg_msg dm;
    ck_assert_int_eq(sl_secagg_msg_decode(&dm, d, dl, &err), 0);
    dm.sealed[0].peer = t.ids[0] - 1; /* unknown, keeps the order */
    uint8_t *d2;
    size_t dl2;
    ck_assert_int_eq(sl_secagg_msg_encode(&dm, &d2, &dl2, &err), 0);
    expect_refused(sl_secagg_client_on_deliver(t.cl[0], d2, dl2, t.in, &m, &l, &err), &err,
                   "not its neighbour");
    free(d2);
    sl_secagg_msg_fini(&dm);
    ck_assert_int_eq(sl_secagg_client_on_deliver(t.cl[0], d, dl, t.in, &m, &l, &err), 0);
    free(d);
    free(m);
    /* An unmasking request naming fewer survivors than t: nothing revealed. */
    sl_secagg_msg rq;
    memset(&rq, 0, sizeof rq);
    rq.type = SL_SECAGG_MSG_UNMASK_REQ;
    rq.round = t.round;
    uint32_t few[1] = {t.ids[0]};
    rq.ids = few;
    rq.count = 1;
    ck_assert_int_eq(sl_secagg_msg_encode(&rq, &d, &dl, &err), 0);
    m = NULL;
    ck_assert_int_eq(sl_secagg_client_on_unmask_request(t.cl[0], d, dl, &m, &l, &err), SL_EABORT);
    ck_assert_ptr_nonnull(strstr(err.msg, "revealing nothing"));
    ck_assert_ptr_null(m);
    free(d);
    /* A message of the wrong round. */
    rq.round = t.round + 1;
    uint32_t all[6];
    for (int i = 0; i < 6; i++)
        all[i] = t.ids[i];
    rq.ids = all;
    rq.count = 6;
    ck_assert_int_eq(sl_secagg_msg_encode(&rq, &d, &dl, &err), 0);
    expect_refused(sl_secagg_client_on_unmask_request(t.cl[0], d, dl, &m, &l, &err), &err,
                   "round");
    free(d);
    tr_free(&t);
}
END_TEST

START_TEST(test_aborts_release_nothing)
{
    sl_err err = {0};
    /* Below the minimum cohort. */
    tround t;
    tr_init(&t, 10, 16, 0.2, 45);
    uint8_t *m;
    size_t l;
    for (uint32_t i = 0; i < t.cfg.min_cohort - 1; i++) {
        ck_assert_int_eq(sl_secagg_client_advertise(t.cl[i], &m, &l, &err), 0);
        ck_assert_int_eq(sl_secagg_server_on_advertise(t.srv, t.ids[i], m, l, &err), 0);
        free(m);
    }
    ck_assert_int_eq(sl_secagg_server_end_advertise(t.srv, &m, &l, &err), SL_EABORT);
    ck_assert_ptr_nonnull(strstr(err.msg, "minimum cohort"));
    tr_free(&t);
    /* Below t masked inputs. */
    tr_init(&t, 10, 16, 0.2, 46);
    tr_advertise(&t, NULL);
    tr_keylist(&t, NULL, 1);
    uint8_t skip[MAXN] = {1, 1, 1};
    tr_masked(&t, skip, 1);
    ck_assert_int_eq(sl_secagg_server_end_masked(t.srv, &m, &l, &err), SL_EABORT);
    ck_assert_ptr_nonnull(strstr(err.msg, "below the threshold"));
    uint32_t sum[16] = {7};
    ck_assert_int_eq(sl_secagg_server_finish(t.srv, sum, &err), SL_ESTATE);
    ck_assert_uint_eq(sum[0], 7);
    tr_free(&t);
    /* Not enough unmasking answers: finish aborts and writes nothing. */
    tr_init(&t, 10, 16, 0.2, 47);
    tr_advertise(&t, NULL);
    tr_keylist(&t, NULL, 1);
    tr_masked(&t, NULL, 1);
    uint8_t quiet[MAXN];
    memset(quiet, 1, sizeof quiet);
    quiet[0] = quiet[1] = 0;
    tr_unmask(&t, quiet, 1);
    ck_assert(!sl_secagg_server_ready(t.srv));
    ck_assert_int_eq(sl_secagg_server_finish(t.srv, sum, &err), SL_EABORT);
    ck_assert_ptr_nonnull(strstr(err.msg, "nothing released"));
    ck_assert_uint_eq(sum[0], 7);
    tr_free(&t);
}
END_TEST

/* ---- graph and configuration ------------------------------------------ */

START_TEST(test_graph)
{
    sl_err err = {0};
    uint8_t seed[32] = {1}, seed2[32] = {2};
    uint32_t nb[64];
    for (uint32_t n = 3; n <= 60; n += 19) {
        for (uint32_t k = 2; k < n - 1; k += 4) {
            sl_secagg_graph g, h;
            ck_assert_int_eq(sl_secagg_graph_init(&g, n, k, seed, &err), 0);
            ck_assert_int_eq(sl_secagg_graph_init(&h, n, k, seed, &err), 0);
            int bad = 0;
            for (uint32_t a = 0; a < n; a++) {
                uint32_t deg = 0;
                for (uint32_t b = 0; b < n; b++) {
                    int e = sl_secagg_graph_adjacent(&g, a, b);
                    bad += e != sl_secagg_graph_adjacent(&g, b, a); /* symmetric */
                    bad += e != sl_secagg_graph_adjacent(&h, a, b); /* reproducible */
                    deg += (uint32_t)e;
                }
                bad += deg != k; /* k-regular */
                uint32_t m = sl_secagg_graph_neighbours(&g, a, nb);
                bad += m != k;
                for (uint32_t j = 0; j < m; j++)
                    bad += !sl_secagg_graph_adjacent(&g, a, nb[j]) || (j && nb[j] <= nb[j - 1]);
            }
            ck_assert_int_eq(bad, 0);
            sl_secagg_graph_fini(&h);
            ck_assert_int_eq(sl_secagg_graph_init(&h, n, k, seed2, &err), 0);
            int differ = 0;
            for (uint32_t a = 0; a < n; a++)
                for (uint32_t b = 0; b < n; b++)
                    differ += sl_secagg_graph_adjacent(&g, a, b) != sl_secagg_graph_adjacent(&h, a, b);
            if (n > 20)
                ck_assert_int_gt(differ, 0);
            sl_secagg_graph_fini(&g);
            sl_secagg_graph_fini(&h);
        }
    }
    sl_secagg_graph g;
    ck_assert_int_eq(sl_secagg_graph_init(&g, 5, 4, seed, &err), 0); /* complete */
    ck_assert_uint_eq(sl_secagg_graph_neighbours(&g, 2, nb), 4);
    ck_assert(!sl_secagg_graph_adjacent(&g, 2, 2));
    sl_secagg_graph_fini(&g);
    ck_assert_int_eq(sl_secagg_graph_init(&g, 10, 3, seed, &err), SL_EINVAL);
    ck_assert_int_eq(sl_secagg_graph_init(&g, 1, 0, seed, &err), SL_EINVAL);
}
END_TEST

START_TEST(test_config_defaults_valid)
{
    static const uint32_t ns[] = {3, 10, 33, 50, 100, 500, 1000};
    static const double fs[] = {0, 0.1, 0.2};
    sl_err err = {0};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof fs / sizeof fs[0]; j++) {
            sl_secagg_config c;
            ck_assert_msg(sl_secagg_config_default(&c, ns[i], 1000, fs[j], 32, &err) == 0,
                          "n=%u f=%g: %s", ns[i], fs[j], err.msg);
            ck_assert_uint_le(c.threshold, ns[i]);
            ck_assert_uint_ge(c.threshold, 2);
            ck_assert(2 * c.share_threshold > sl_secagg_config_degree(&c, ns[i]) + 1);
            if (ns[i] >= 100 && fs[j] <= 0.1)
                ck_assert_uint_lt(c.degree, ns[i] - 1); /* sparse for large cohorts */
        }
    /* Too much dropout for any setting is refused, with the reason. */
    sl_secagg_config c;
    ck_assert_int_eq(sl_secagg_config_default(&c, 10, 100, 0.6, 32, &err), SL_EINVAL);
}
END_TEST

START_TEST(test_config_inconsistent)
{
    sl_err err = {0};
    sl_secagg_config base;
    ck_assert_int_eq(sl_secagg_config_default(&base, 100, 1000, 0.1, 32, &err), 0);
    ck_assert_int_eq(sl_secagg_config_validate(&base, &err), 0);
    struct { const char *needle; sl_secagg_config c; } bad[16];
    int nb = 0;
#define BAD(field, value, text)                                                                   \
    do {                                                                                           \
        bad[nb].c = base;                                                                          \
        bad[nb].c.field = value;                                                                   \
        bad[nb++].needle = text;                                                                     \
    } while (0)
    BAD(share_threshold, (base.degree + 1) / 2, "exceed half");
    BAD(share_threshold, base.degree + 1, "lost neighbours");
    BAD(threshold, 1, "threshold 1");
    BAD(threshold, 95, "every such round would abort");
    BAD(min_cohort, base.threshold - 1, "min cohort");
    BAD(degree, base.degree + 1, "must be even");
    BAD(degree, 0, "degree 0");
    BAD(bits, 16, "modulus bits 16");
    BAD(dim, 0, "dim 0");
    BAD(dim, SL_SECAGG_MAX_DIM + 1, "dim");
    BAD(dropout, 1.0, "dropout");
    BAD(cohort, 1, "cohort 1");
#undef BAD
    for (int i = 0; i < nb; i++) {
        ck_assert_int_eq(sl_secagg_config_validate(&bad[i].c, &err), SL_EINVAL);
        ck_assert_msg(strstr(err.msg, bad[i].needle), "case %d: '%s' lacks '%s'", i, err.msg,
                      bad[i].needle);
    }
    /* A complete graph over 300 sites needs more Shamir shares than exist. */
    sl_secagg_config c = base;
    c.cohort = 300;
    c.degree = 299;
    c.threshold = c.min_cohort = 250;
    c.share_threshold = 200;
    ck_assert_int_eq(sl_secagg_config_validate(&c, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "Shamir"));
    /* DP plans that do not match the round, or may wrap. */
    sl_dp_params p;
    memset(&p, 0, sizeof p);
    p.dim = 1000;
    p.clip = 1;
    p.scale = 1024;
    p.sigma = 1;
    p.threshold = base.threshold;
    p.beta = SL_DP_DEFAULT_BETA;
    p.bits = 32;
    sl_dp_plan pl;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    expect_refused(sl_secagg_config_check_dp(&base, &pl, SL_DP_MAX_OVERFLOW_PROB, &err), &err,
                   "sends 1024 words");
    c = base;
    c.dim = 1024;
    ck_assert_int_eq(sl_secagg_config_check_dp(&c, &pl, SL_DP_MAX_OVERFLOW_PROB, &err), 0);
    p.threshold = base.threshold + 1;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    expect_refused(sl_secagg_config_check_dp(&c, &pl, SL_DP_MAX_OVERFLOW_PROB, &err), &err,
                   "calibrated");
    p.threshold = base.threshold;
    p.bits = 64;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    expect_refused(sl_secagg_config_check_dp(&c, &pl, SL_DP_MAX_OVERFLOW_PROB, &err), &err,
                   "2^32");
    p.bits = 32;
    p.dim = 16;
    p.sigma = 0.01;
    p.scale = 1 << 24;
    c.dim = 16;
    ck_assert_int_eq(sl_dp_plan_init(&pl, &p, &err), 0);
    expect_refused(sl_secagg_config_check_dp(&c, &pl, SL_DP_MAX_OVERFLOW_PROB, &err), &err,
                   "modulus 2^32 too small");
}
END_TEST

Suite *secagg_suite(void)
{
    Suite *s = suite_create("secagg");
    TCase *core = tcase_create("core");
    tcase_add_unchecked_fixture(core, setup, NULL);
    tcase_set_timeout(core, 120);
    tcase_add_test(core, test_exact_3);
    tcase_add_test(core, test_exact_10);
    tcase_add_test(core, test_exact_50);
    tcase_add_test(core, test_masked_vector_uniform);
    tcase_add_test(core, test_never_both_kinds);
    tcase_add_test(core, test_graph);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_unchecked_fixture(lim, setup, NULL);
    tcase_set_timeout(lim, 60);
    tcase_add_test(lim, test_config_defaults_valid);
    tcase_add_test(lim, test_config_inconsistent);
    tcase_add_test(lim, test_aborts_release_nothing);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_unchecked_fixture(bad, setup, NULL);
    tcase_set_timeout(bad, 60);
    tcase_add_test(bad, test_adversarial_sites);
    tcase_add_test(bad, test_sites_refuse_bad_server);
    suite_add_tcase(s, bad);
    return s;
}
