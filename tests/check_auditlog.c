/* Audit log and auditor: a clean log with receipts verifies and its
 * recomputed epsilon equals the accountant's; a crash leaves a log that
 * reopens (unsigned tail) or is repaired on request (torn line, kept aside);
 * every tampering the issue lists is detected and named: edited (with and
 * without recomputing the chain), deleted, inserted, reordered, truncated
 * (torn, unsigned tail, cut at a round boundary, proven by receipts),
 * another key, a rewritten log, a receipt for a round the log does not
 * show, a site missing from the contributors, noise below the configured
 * level, an understated epsilon, an exceeded budget; random byte flips are
 * all caught. Fixtures (keys, logs, receipts) are generated here. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/auditcheck.h"
#include "crypto/auditlog.h"
#include "shared/fsutil.h"
#include "tests/fixtures.h"

#define NSITES 5
#define CANON (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17))

typedef struct fixture {
    char dir[256];     /* log folder */
    char rdir[NSITES][300]; /* one receipt folder per site */
    const char *rdirs[NSITES];
    uint8_t pk[32], sk[64];
    int rounds;
    double eps; /* accountant's epsilon after all rounds */
} fixture;

static const char *site_name(int i)
{
    static char b[NSITES][16];
    snprintf(b[i], sizeof b[i], "site-%02d", i);
    return b[i];
}

/* The secure aggregation's own parameter record for a round (crypto/dp):
 * sigma 1 calibrated for t = 3 contributors, inputs and survivors varying. */
static sl_dp_round_record round_rec_n(int r, int inputs, int survivors)
{
    sl_dp_params p;
    memset(&p, 0, sizeof p);
    p.dim = 2000;
    p.clip = 1.0;
    p.scale = 512;
    p.sigma = 1.0;
    p.threshold = 3;
    p.beta = SL_DP_DEFAULT_BETA;
    p.mode = SL_DP_DISTRIBUTED;
    p.bits = 32;
    sl_dp_plan pl;
    sl_err err = {0};
    ck_assert_msg(sl_dp_plan_init(&pl, &p, &err) == 0, "%s", err.msg);
    sl_dp_round_record rec;
    sl_dp_record_fill(&rec, &pl, (uint64_t)r, 0.2, NSITES, (uint32_t)inputs,
                      (uint32_t)survivors);
    return rec;
}

static sl_dp_round_record round_rec(int r, int survivors)
{
    return round_rec_n(r, NSITES, survivors);
}

static sl_acct_mech round_mech(int survivors)
{
    sl_dp_round_record rec = round_rec(0, survivors);
    sl_acct_mech m;
    sl_err err = {0};
    ck_assert_int_eq(sl_auditlog_mech_from_dp(&rec, &m, &err), 0);
    return m;
}

/* One round through the API; contributors are all NSITES sites, survivors
 * vary; receipts are stored in each site's folder. */
static void run_round(sl_auditlog *log, fixture *fx, sl_acct *acct, int r, int survivors,
                      double claim_scale, int receipts)
{
    sl_err err = {0};
    json_t *o = json_pack("{s:i}", "round", r);
    ck_assert_int_eq(sl_auditlog_append(log, "round_start", o, NULL, &err), 0);
    json_decref(o);
    json_t *sites = json_array();
    for (int i = 0; i < NSITES; i++)
        json_array_append_new(sites, json_string(site_name(i)));
    o = json_pack("{s:i, s:o}", "round", r, "sites", sites);
    ck_assert_int_eq(sl_auditlog_append(log, "sampled", o, NULL, &err), 0);
    json_decref(o);
    o = json_pack("{s:i, s:s, s:i}", "round", r, "phase", "masked_input", "received", NSITES);
    ck_assert_int_eq(sl_auditlog_append(log, "phase", o, NULL, &err), 0);
    json_decref(o);
    sl_dp_round_record rec = round_rec(r, survivors);
    ck_assert_msg(sl_auditlog_mechanism(log, &rec, &err) == 0, "%s", err.msg);
    sl_acct_mech m;
    ck_assert_int_eq(sl_auditlog_mech_from_dp(&rec, &m, &err), 0);
    ck_assert_int_eq(sl_acct_add_mech(acct, &m, &err), 0);
    sl_acct_eps e;
    ck_assert_int_eq(sl_acct_epsilon(acct, 1e-5, &e, &err), 0);
    sl_auditlog_contrib c[NSITES];
    for (int i = 0; i < NSITES; i++) {
        c[i].site = site_name(i);
        crypto_hash_sha256(c[i].input, (const uint8_t *)c[i].site, strlen(c[i].site) + r);
    }
    ck_assert_int_eq(sl_auditlog_close_round(log, r, 1, c, NSITES, e.epsilon * claim_scale, NULL,
                                             NULL, &err), 0);
    for (int i = 0; receipts && i < NSITES; i++) {
        char *text = NULL;
        size_t len = 0;
        ck_assert_int_eq(sl_auditlog_receipt(log, site_name(i), &text, &len, &err), 0);
        ck_assert_int_eq(sl_auditlog_receipt_store(fx->rdir[i], (uint8_t *)text, len, fx->pk, &err),
                         0);
        free(text);
    }
    fx->eps = e.epsilon;
}

static void make_log(fixture *fx, int rounds, double budget)
{
    memset(fx, 0, sizeof *fx);
    ck_assert_int_ge(sodium_init(), 0);
    const char *base = sl_test_tmpdir();
    snprintf(fx->dir, sizeof fx->dir, "%s/log", base);
    for (int i = 0; i < NSITES; i++) {
        snprintf(fx->rdir[i], sizeof fx->rdir[i], "%s/receipts/%s", base, site_name(i));
        fx->rdirs[i] = fx->rdir[i];
    }
    crypto_sign_keypair(fx->pk, fx->sk);
    sl_auditlog_config cfg = {"server", budget, 1e-5, 1.0, SL_ACCT_DISTRIBUTED};
    sl_auditlog *log = NULL;
    sl_err err = {0};
    ck_assert_msg(sl_auditlog_create(&log, fx->dir, fx->sk, &cfg, &err) == 0, "%s", err.msg);
    static sl_acct acct;
    sl_acct_init(&acct);
    for (int r = 0; r < rounds; r++)
        run_round(log, fx, &acct, r, 3 + r % 3, 1.0, 1);
    fx->rounds = rounds;
    ck_assert_int_eq(sl_auditlog_close(log, &err), 0);
}

static sl_audit_opts opts(const fixture *fx, int with_receipts)
{
    sl_audit_opts o;
    memset(&o, 0, sizeof o);
    o.pk = fx->pk;
    o.receipt_dirs = with_receipts ? fx->rdirs : NULL;
    o.nreceipt_dirs = with_receipts ? NSITES : 0;
    return o;
}

static void check(const fixture *fx, int with_receipts, sl_audit_report *rep)
{
    sl_audit_opts o = opts(fx, with_receipts);
    sl_err err = {0};
    ck_assert_msg(sl_audit_check(fx->dir, &o, rep, &err) == 0, "%s", err.msg);
}

/* 1 if some error finding has this kind and its message contains `text`. */
static int has(const sl_audit_report *rep, const char *kind, const char *text)
{
    for (size_t i = 0; i < rep->findings.n; i++) {
        const sl_audit_finding *x = &rep->findings.v[i];
        if (x->severity == SL_AUDIT_ERROR && strcmp(x->kind, kind) == 0 && strstr(x->msg, text))
            return 1;
    }
    return 0;
}

static void dump_findings(const sl_audit_report *rep)
{
    for (size_t i = 0; i < rep->findings.n; i++)
        fprintf(stderr, "  [%s %s] %s\n",
                rep->findings.v[i].severity == SL_AUDIT_ERROR ? "E" : "W",
                rep->findings.v[i].kind, rep->findings.v[i].msg);
}

#define EXPECT(rep, kind, text)                                                    \
    do {                                                                           \
        if (!has(rep, kind, text))                                                 \
            dump_findings(rep);                                                    \
        ck_assert_msg(has(rep, kind, text), "no %s finding with '%s'", kind, text); \
        ck_assert(!sl_audit_ok(rep));                                              \
    } while (0)

/* ---- the log file as lines, for tampering ---- */

typedef struct lines {
    char *v[512];
    size_t n;
    char *tail; /* bytes after the last newline */
} lines;

static void log_path(const fixture *fx, char *p, size_t cap)
{
    snprintf(p, cap, "%s/%s", fx->dir, SL_AUDITLOG_FILE);
}

static void read_lines(const fixture *fx, lines *L)
{
    char p[400];
    log_path(fx, p, sizeof p);
    uint8_t *buf;
    size_t len;
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_read_all(p, SL_AUDITLOG_MAX_BYTES, &buf, &len, &err), 0);
    memset(L, 0, sizeof *L);
    char *s = (char *)buf, *nl;
    while ((nl = strchr(s, '\n'))) {
        ck_assert_uint_lt(L->n, 512);
        L->v[L->n++] = strndup(s, (size_t)(nl - s));
        s = nl + 1;
    }
    L->tail = *s ? strdup(s) : NULL;
    free(buf);
}

static void write_lines(const fixture *fx, const lines *L)
{
    char p[400];
    log_path(fx, p, sizeof p);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < L->n; i++)
        fprintf(f, "%s\n", L->v[i]);
    if (L->tail)
        fputs(L->tail, f);
    fclose(f);
}

static void free_lines(lines *L)
{
    for (size_t i = 0; i < L->n; i++)
        free(L->v[i]);
    free(L->tail);
    memset(L, 0, sizeof *L);
}

static json_t *parse(const char *s)
{
    json_t *o = json_loads(s, 0, NULL);
    ck_assert_ptr_nonnull(o);
    return o;
}

static char *dump(json_t *o)
{
    char *s = json_dumps(o, CANON);
    ck_assert_ptr_nonnull(s);
    json_decref(o);
    return s;
}

/* Index of the first line of this type (and round, if >= 0). */
static size_t find(const lines *L, const char *type, int round)
{
    for (size_t i = 0; i < L->n; i++) {
        json_t *o = parse(L->v[i]);
        const char *t = json_string_value(json_object_get(o, "type"));
        int ok = t && strcmp(t, type) == 0 &&
                 (round < 0 || json_integer_value(json_object_get(o, "round")) == round);
        json_decref(o);
        if (ok)
            return i;
    }
    ck_abort_msg("no %s record for round %d", type, round);
    return 0;
}

/* Re-signs line i with sk (as a server rewriting its own log would). */
static void resign(lines *L, size_t i, const uint8_t sk[64])
{
    json_t *o = parse(L->v[i]);
    json_object_del(o, "sig");
    char *body = json_dumps(o, CANON);
    const char *dom = "sealora audit log v1\n";
    size_t n = strlen(dom) + strlen(body);
    uint8_t *msg = malloc(n);
    memcpy(msg, dom, strlen(dom));
    memcpy(msg + strlen(dom), body, strlen(body));
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, msg, n, sk);
    char hex[129];
    sodium_bin2hex(hex, sizeof hex, sig, 64);
    json_object_set_new(o, "sig", json_string(hex));
    free(msg);
    free(body);
    free(L->v[i]);
    L->v[i] = dump(o);
}

/* Recomputes prev of lines from..n-1 (keeping signatures unless sk given). */
static void rechain(lines *L, size_t from, const uint8_t *sk)
{
    for (size_t i = from; i < L->n; i++) {
        uint8_t h[32];
        crypto_hash_sha256(h, (const uint8_t *)L->v[i - 1], strlen(L->v[i - 1]));
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, h, 32);
        json_t *o = parse(L->v[i]);
        json_object_set_new(o, "prev", json_string(hex));
        int was_signed = json_object_get(o, "sig") != NULL;
        free(L->v[i]);
        L->v[i] = dump(o);
        if (sk && was_signed)
            resign(L, i, sk);
    }
}

/* ---- core ---- */

START_TEST(test_clean_log_verifies)
{
    fixture fx;
    make_log(&fx, 6, 10.0);
    sl_audit_report rep;
    check(&fx, 1, &rep);
    if (rep.findings.n)
        dump_findings(&rep);
    ck_assert_uint_eq(rep.findings.n, 0);
    ck_assert(sl_audit_ok(&rep));
    ck_assert(rep.closed);
    ck_assert_uint_eq(rep.nrounds, 6);
    ck_assert_uint_eq(rep.released, 6);
    ck_assert_uint_eq(rep.receipts, 6 * NSITES);
    ck_assert_str_eq(rep.server, "server");
    /* The auditor's number is the accountant's: same formulas, same grid. */
    ck_assert(rep.final.epsilon == fx.eps);
    ck_assert(rep.rounds[5].epsilon == fx.eps);
    ck_assert(rep.rounds[0].epsilon < rep.rounds[5].epsilon);
    /* Survivors 3, 4, 5 of a calibration for t = 3: the noise present is
     * sqrt(s / t) times the clip (the variance is rounded up, by < 1e-9). */
    ck_assert(fabs(rep.rounds[1].z_clip - sqrt(4.0 / 3.0)) < 1e-9);
    ck_assert(rep.rounds[1].z_clip >= sqrt(4.0 / 3.0));
    ck_assert(rep.rounds[1].z_eff < rep.rounds[1].z_clip); /* rounding inflates l2 */
    ck_assert(rep.rounds[1].z_target == 1.0);
    ck_assert_uint_eq(rep.nrecords, 1 + 6 * 5 + 1);
    sl_audit_report_fini(&rep);
}
END_TEST

START_TEST(test_receipt_round_trip)
{
    fixture fx;
    make_log(&fx, 2, 10.0);
    char p[400];
    snprintf(p, sizeof p, "%s/receipt-000001.json", fx.rdir[2]);
    uint8_t *buf;
    size_t len;
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_read_all(p, SL_AUDITLOG_MAX_RECEIPT, &buf, &len, &err), 0);
    sl_receipt r;
    ck_assert_int_eq(sl_auditlog_receipt_verify(buf, len, fx.pk, &r, &err), 0);
    ck_assert_int_eq(r.round, 1);
    ck_assert_str_eq(r.site, "site-02");
    ck_assert_uint_eq(r.log_seq, 1 + 2 * 5 - 1); /* round 1's round_close */
    /* Another key, an edited byte, a truncation: refused. */
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    ck_assert_int_eq(sl_auditlog_receipt_verify(buf, len, pk2, &r, &err), SL_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err.msg, "signature"));
    char *at = strstr((char *)buf, "\"round\":1");
    ck_assert_ptr_nonnull(at);
    at[8] = '7';
    ck_assert_int_eq(sl_auditlog_receipt_verify(buf, len, fx.pk, &r, &err), SL_ECRYPTO);
    at[8] = '1';
    for (size_t cut = 0; cut + 1 < len; cut += 7)
        ck_assert_int_ne(sl_auditlog_receipt_verify(buf, cut, fx.pk, &r, &err), 0);
    free(buf);
    /* The server refuses a receipt for a site that did not contribute. */
    sl_auditlog *log;
    ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, 0, &err), 0);
    char *text;
    ck_assert_int_eq(sl_auditlog_receipt(log, "site-99", &text, &len, &err), SL_ENOTFOUND);
    ck_assert_int_eq(sl_auditlog_receipt(log, "site-01", &text, &len, &err), 0);
    free(text);
    ck_assert_int_eq(sl_auditlog_close(log, &err), 0);
}
END_TEST

/* A crash mid-round leaves an unsigned tail: reopening appends a signed
 * log_resume naming the open round, and the log verifies afterwards. */
START_TEST(test_resume_after_crash)
{
    fixture fx;
    make_log(&fx, 2, 10.0);
    sl_err err = {0};
    sl_auditlog *log;
    ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, 0, &err), 0);
    ck_assert_int_eq(sl_auditlog_last_round(log), 1);
    static sl_acct acct;
    sl_acct_init(&acct);
    sl_acct_mech m = round_mech(3);
    ck_assert_int_eq(sl_acct_add_mech(&acct, &m, &err), 0);
    m = round_mech(4);
    ck_assert_int_eq(sl_acct_add_mech(&acct, &m, &err), 0);
    json_t *o = json_pack("{s:i}", "round", 2);
    ck_assert_int_eq(sl_auditlog_append(log, "round_start", o, NULL, &err), 0);
    json_decref(o);
    sl_dp_round_record rec = round_rec(2, 5);
    ck_assert_int_eq(sl_auditlog_mechanism(log, &rec, &err), 0);
    sl_auditlog_free(log); /* crash before the round closed: nothing released */

    sl_audit_report rep;
    check(&fx, 1, &rep);
    EXPECT(&rep, "truncated", "not signed");
    sl_audit_report_fini(&rep);

    ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, 0, &err), 0);
    ck_assert_int_eq(sl_auditlog_open_round(log), 2);
    run_round(log, &fx, &acct, 2, 5, 1.0, 1);
    ck_assert_int_eq(sl_auditlog_close(log, &err), 0);
    check(&fx, 1, &rep);
    if (rep.findings.errors)
        dump_findings(&rep);
    ck_assert_uint_eq(rep.findings.errors, 0);
    ck_assert_uint_eq(rep.findings.warnings, 1); /* round 2 interrupted, then retried */
    ck_assert_ptr_nonnull(strstr(rep.findings.v[0].msg, "interrupted by a restart"));
    ck_assert(sl_audit_ok(&rep));
    ck_assert(rep.final.epsilon == fx.eps);
    sl_audit_report_fini(&rep);
    /* A second writer is refused while the log is open. */
    ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, 0, &err), 0);
    sl_auditlog *log2 = NULL;
    ck_assert_int_eq(sl_auditlog_open(&log2, fx.dir, fx.sk, 0, &err), SL_ESTATE);
    ck_assert_ptr_nonnull(strstr(err.msg, "in use"));
    ck_assert_int_eq(sl_auditlog_close(log, &err), 0);
    /* An empty file (a crash while creating) is refused with advice. */
    const char *d2 = sl_test_tmpdir();
    sl_test_write(d2, SL_AUDITLOG_FILE, "", 0);
    ck_assert_int_eq(sl_auditlog_open(&log2, d2, fx.sk, 0, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "remove it"));
    /* Reopening with another key is refused. */
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    ck_assert_int_eq(sl_auditlog_open(&log2, fx.dir, sk2, 0, &err), SL_ECRYPTO);
}
END_TEST

/* A round in flight at a crash: the planned worst case is in the log before
 * the round runs; the auditor counts it while the round is open at the end
 * of the log and once the restarted server abandons it, and agrees with the
 * server's accountant to the bit. */
static void start_planned_round(sl_auditlog *log, int r, int plan)
{
    sl_err err = {0};
    json_t *o = json_pack("{s:i}", "round", r);
    ck_assert_int_eq(sl_auditlog_append(log, "round_start", o, NULL, &err), 0);
    json_decref(o);
    if (!plan)
        return;
    /* More inputs than the threshold is not a worst case: refused. */
    sl_dp_round_record bad = round_rec_n(r, NSITES, 3);
    ck_assert_int_eq(sl_auditlog_mechanism_planned(log, &bad, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "not the worst case"));
    sl_dp_round_record worst = round_rec_n(r, 3, 3);
    ck_assert_msg(sl_auditlog_mechanism_planned(log, &worst, &err) == 0, "%s", err.msg);
}

START_TEST(test_abandoned_round_charged)
{
    fixture fx;
    make_log(&fx, 2, 10.0);
    sl_err err = {0};
    static sl_acct acct;
    sl_acct_init(&acct);
    sl_acct_mech m = round_mech(3);
    ck_assert_int_eq(sl_acct_add_mech(&acct, &m, &err), 0);
    m = round_mech(4);
    ck_assert_int_eq(sl_acct_add_mech(&acct, &m, &err), 0);
    double eps2 = fx.eps;
    sl_dp_round_record worst = round_rec_n(2, 3, 3);
    sl_acct_mech wm;
    ck_assert_int_eq(sl_auditlog_mech_from_dp(&worst, &wm, &err), 0);
    sl_acct with = acct;
    ck_assert_int_eq(sl_acct_add_mech(&with, &wm, &err), 0);
    sl_acct_eps ew;
    ck_assert_int_eq(sl_acct_epsilon(&with, 1e-5, &ew, &err), 0);
    ck_assert(ew.epsilon > eps2);

    sl_auditlog *log;
    ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, 0, &err), 0);
    start_planned_round(log, 2, 1);
    sl_auditlog_free(log); /* crash mid-round */

    /* In flight at the end of the log: counted with its worst case. */
    sl_audit_report rep;
    check(&fx, 1, &rep);
    ck_assert_uint_eq(rep.abandoned, 1);
    ck_assert_uint_eq(rep.nrounds, 3);
    ck_assert_int_eq(rep.rounds[2].abandoned, 2);
    ck_assert_str_eq(sl_audit_round_status(&rep.rounds[2]), "in flight");
    ck_assert(rep.final.epsilon == ew.epsilon);
    sl_audit_report_fini(&rep);

    /* The restarted server charges it, then runs round 3. */
    ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, 0, &err), 0);
    ck_assert_int_eq(sl_auditlog_round_abandoned(log, 2, ew.epsilon, "crash", &err), 0);
    run_round(log, &fx, &with, 3, 5, 1.0, 1);
    ck_assert_int_eq(sl_auditlog_close(log, &err), 0);
    check(&fx, 1, &rep);
    if (rep.findings.errors)
        dump_findings(&rep);
    ck_assert_uint_eq(rep.findings.errors, 0);
    ck_assert(sl_audit_ok(&rep));
    ck_assert_uint_eq(rep.nrounds, 4);
    ck_assert_uint_eq(rep.released, 3);
    ck_assert_uint_eq(rep.abandoned, 1);
    ck_assert_str_eq(sl_audit_round_status(&rep.rounds[2]), "abandoned");
    ck_assert(rep.rounds[2].epsilon == ew.epsilon);
    ck_assert(rep.final.epsilon == fx.eps); /* the server's accountant, abandoned round included */
    sl_audit_report_fini(&rep);
}
END_TEST

/* An abandoned round whose charge cannot be recomputed, or is understated. */
START_TEST(test_abandoned_round_refused)
{
    for (int k = 0; k < 2; k++) {
        fixture fx;
        make_log(&fx, 2, 10.0);
        sl_err err = {0};
        sl_auditlog *log;
        ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, 0, &err), 0);
        start_planned_round(log, 2, k == 1);
        sl_auditlog_free(log);
        ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, 0, &err), 0);
        /* k 0: no plan; k 1: claims the epsilon before the charge. */
        ck_assert_int_eq(sl_auditlog_round_abandoned(log, 2, fx.eps, "crash", &err), 0);
        ck_assert_int_eq(sl_auditlog_close(log, &err), 0);
        sl_audit_report rep;
        check(&fx, 1, &rep);
        if (k == 0) {
            EXPECT(&rep, "log", "without a mechanism_planned record");
            ck_assert(isinf(rep.final.epsilon));
        } else {
            EXPECT(&rep, "claim", "the log claims epsilon");
            ck_assert(rep.final.epsilon > fx.eps);
        }
        sl_audit_report_fini(&rep);
    }
}
END_TEST

/* A torn last line is refused; with the repair flag it is moved aside and
 * recorded, and the log verifies. */
START_TEST(test_torn_tail_repair)
{
    fixture fx;
    make_log(&fx, 1, 10.0);
    lines L;
    read_lines(&fx, &L);
    L.tail = strdup("{\"prev\":\"00\",\"seq\":99,\"ty");
    write_lines(&fx, &L);
    sl_err err = {0};
    sl_auditlog *log = NULL;
    ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, 0, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "incomplete"));
    ck_assert_ptr_nonnull(strstr(err.msg, "repair"));
    sl_audit_report rep;
    check(&fx, 0, &rep);
    EXPECT(&rep, "truncated", "incomplete");
    sl_audit_report_fini(&rep);
    ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, SL_AUDITLOG_REPAIR_TORN, &err), 0);
    ck_assert_int_eq(sl_auditlog_close(log, &err), 0);
    char side[400];
    size_t off = 0;
    for (size_t i = 0; i < L.n; i++)
        off += strlen(L.v[i]) + 1;
    snprintf(side, sizeof side, "%s/%s.torn.%zu", fx.dir, SL_AUDITLOG_FILE, off);
    ck_assert(sl_fs_exists(side));
    free_lines(&L);
    read_lines(&fx, &L);
    size_t i = find(&L, "log_resume", -1);
    ck_assert_ptr_nonnull(strstr(L.v[i], "\"torn_bytes\":25"));
    free_lines(&L);
    check(&fx, 1, &rep);
    ck_assert_uint_eq(rep.findings.errors, 0);
    sl_audit_report_fini(&rep);
}
END_TEST

/* ---- tampering ---- */

START_TEST(test_edited_unsigned_record)
{
    fixture fx;
    make_log(&fx, 3, 10.0);
    lines L;
    read_lines(&fx, &L);
    size_t i = find(&L, "mechanism", 1);
    json_t *o = parse(L.v[i]);
    json_object_set_new(json_object_get(o, "dp"), "survivors", json_integer(5)); /* more noise */
    free(L.v[i]);
    L.v[i] = dump(o);
    write_lines(&fx, &L);
    sl_audit_report rep;
    check(&fx, 0, &rep);
    char want[64];
    snprintf(want, sizeof want, "record seq %zu (line %zu, mechanism) was edited", i, i + 1);
    EXPECT(&rep, "edited", want);
    sl_audit_report_fini(&rep);
    free_lines(&L);
}
END_TEST

START_TEST(test_edited_signed_record)
{
    fixture fx;
    make_log(&fx, 3, 10.0);
    lines L;
    read_lines(&fx, &L);
    size_t i = find(&L, "round_close", 2);
    json_t *o = parse(L.v[i]);
    json_object_set_new(o, "epsilon", json_real(0.001));
    free(L.v[i]);
    L.v[i] = dump(o);
    write_lines(&fx, &L);
    sl_audit_report rep;
    check(&fx, 0, &rep);
    char want[64];
    snprintf(want, sizeof want, "record seq %zu (line %zu, round_close): signature", i, i + 1);
    EXPECT(&rep, "edited", want);
    sl_audit_report_fini(&rep);
    free_lines(&L);
}
END_TEST

/* An editor who recomputes the hash chain is stopped by the next signature. */
START_TEST(test_edited_with_rechain)
{
    fixture fx;
    make_log(&fx, 3, 10.0);
    lines L;
    read_lines(&fx, &L);
    size_t i = find(&L, "mechanism", 1), j = find(&L, "round_close", 1);
    json_t *o = parse(L.v[i]);
    json_object_set_new(json_object_get(o, "dp"), "sampling_rate", json_real(0.01));
    free(L.v[i]);
    L.v[i] = dump(o);
    rechain(&L, i + 1, NULL);
    write_lines(&fx, &L);
    sl_audit_report rep;
    check(&fx, 0, &rep);
    char want[64];
    snprintf(want, sizeof want, "record seq %zu (line %zu, round_close): signature", j, j + 1);
    EXPECT(&rep, "edited", want);
    sl_audit_report_fini(&rep);
    free_lines(&L);
}
END_TEST

START_TEST(test_deleted_record)
{
    fixture fx;
    make_log(&fx, 3, 10.0);
    lines L;
    read_lines(&fx, &L);
    size_t i = find(&L, "sampled", 1);
    free(L.v[i]);
    memmove(&L.v[i], &L.v[i + 1], (L.n - i - 1) * sizeof L.v[0]);
    L.n--;
    write_lines(&fx, &L);
    sl_audit_report rep;
    check(&fx, 0, &rep);
    char want[64];
    snprintf(want, sizeof want, "record seq %zu is missing", i);
    EXPECT(&rep, "deleted", want);
    sl_audit_report_fini(&rep);
    free_lines(&L);
}
END_TEST

START_TEST(test_inserted_record)
{
    fixture fx;
    make_log(&fx, 3, 10.0);
    lines L;
    read_lines(&fx, &L);
    size_t i = find(&L, "phase", 2);
    /* A forged copy of the phase record, chained to its predecessor. */
    json_t *o = parse(L.v[i]);
    json_object_set_new(o, "received", json_integer(99));
    memmove(&L.v[i + 1], &L.v[i], (L.n - i) * sizeof L.v[0]);
    L.n++;
    L.v[i] = dump(o);
    write_lines(&fx, &L);
    sl_audit_report rep;
    check(&fx, 0, &rep);
    char want[64];
    snprintf(want, sizeof want, "line %zu (seq %zu, phase) was inserted", i + 1, i);
    EXPECT(&rep, "inserted", want);
    sl_audit_report_fini(&rep);
    free_lines(&L);
}
END_TEST

START_TEST(test_reordered_records)
{
    fixture fx;
    make_log(&fx, 3, 10.0);
    lines L;
    read_lines(&fx, &L);
    size_t i = find(&L, "sampled", 0);
    char *t = L.v[i];
    L.v[i] = L.v[i + 1];
    L.v[i + 1] = t;
    write_lines(&fx, &L);
    sl_audit_report rep;
    check(&fx, 0, &rep);
    char want[64];
    snprintf(want, sizeof want, "record seq %zu (line %zu) comes after seq %zu", i, i + 2, i + 1);
    EXPECT(&rep, "reordered", want);
    sl_audit_report_fini(&rep);
    free_lines(&L);
}
END_TEST

START_TEST(test_truncated)
{
    fixture fx;
    make_log(&fx, 4, 10.0);
    lines L, K;
    read_lines(&fx, &L);
    sl_audit_report rep;
    /* Cut mid-round: the last record is unsigned. */
    read_lines(&fx, &K);
    size_t i = find(&K, "mechanism", 3);
    for (size_t k = i + 1; k < K.n; k++)
        free(K.v[k]);
    K.n = i + 1;
    write_lines(&fx, &K);
    check(&fx, 0, &rep);
    char want[80];
    snprintf(want, sizeof want, "the last record (seq %zu, line %zu, mechanism) is not signed", i,
             i + 1);
    EXPECT(&rep, "truncated", want);
    sl_audit_report_fini(&rep);
    /* Cut at a round boundary: only the receipts prove it. */
    size_t j = find(&K, "round_close", 1);
    for (size_t k = j + 1; k < K.n; k++)
        free(K.v[k]);
    K.n = j + 1;
    write_lines(&fx, &K);
    check(&fx, 0, &rep);
    ck_assert_uint_eq(rep.findings.errors, 0); /* without receipts: looks like a running log */
    ck_assert_uint_eq(rep.findings.warnings, 1);
    ck_assert_str_eq(rep.findings.v[0].kind, "truncated");
    sl_audit_report_fini(&rep);
    sl_audit_opts o = opts(&fx, 0);
    o.require_closed = 1;
    sl_err err = {0};
    ck_assert_int_eq(sl_audit_check(fx.dir, &o, &rep, &err), 0);
    EXPECT(&rep, "truncated", "does not end with log_close");
    sl_audit_report_fini(&rep);
    check(&fx, 1, &rep);
    snprintf(want, sizeof want, "but the log ends at seq %zu: records were cut off", j);
    EXPECT(&rep, "truncated", want);
    EXPECT(&rep, "truncated", "the log does not show this round at all");
    sl_audit_report_fini(&rep);
    free_lines(&K);
    free_lines(&L);
}
END_TEST

/* The server rewrites its log (fresh chain, valid signatures, one round
 * fewer): the sites' receipts expose it. */
START_TEST(test_rewritten_log_and_receipts)
{
    fixture fx;
    make_log(&fx, 3, 10.0);
    lines L;
    read_lines(&fx, &L);
    /* Remove site-03 from round 1's contributors, re-sign, rechain, re-sign. */
    size_t i = find(&L, "round_close", 1);
    json_t *o = parse(L.v[i]);
    json_array_remove(json_object_get(o, "contributors"), 3);
    json_object_del(o, "sig");
    free(L.v[i]);
    L.v[i] = dump(o);
    resign(&L, i, fx.sk);
    rechain(&L, i + 1, fx.sk);
    write_lines(&fx, &L);
    sl_audit_report rep;
    check(&fx, 0, &rep);
    if (rep.findings.errors != 1)
        dump_findings(&rep);
    ck_assert_uint_eq(rep.findings.errors, 1); /* 4 contributors, 5 received */
    EXPECT(&rep, "log", "lists 4 contributors");
    sl_audit_report_fini(&rep);
    check(&fx, 1, &rep);
    EXPECT(&rep, "receipt", "differs from the one the server signed");
    sl_audit_report_fini(&rep);
    free_lines(&L);
}
END_TEST

/* A receipt the server signed for a site its log leaves out, and a receipt
 * for a round the log does not show. */
static void forge_receipt(const fixture *fx, const char *dir, const char *site, int round,
                          const char *log_hash_line, size_t seq)
{
    lines L;
    read_lines(fx, &L);
    uint8_t h[32], id[32], in[32];
    crypto_hash_sha256(h, (const uint8_t *)log_hash_line, strlen(log_hash_line));
    crypto_hash_sha256(id, (const uint8_t *)L.v[0], strlen(L.v[0]));
    memset(in, 7, 32);
    char hh[65], ih[65], nh[65];
    sodium_bin2hex(hh, 65, h, 32);
    sodium_bin2hex(ih, 65, id, 32);
    sodium_bin2hex(nh, 65, in, 32);
    json_t *o = json_pack("{s:i, s:s, s:i, s:s, s:s, s:I, s:s, s:s}", "v", 1, "type", "receipt",
                          "round", round, "site", site, "input", nh, "log_seq", (json_int_t)seq,
                          "log_hash", hh, "log_id", ih);
    char *body = json_dumps(o, CANON);
    const char *dom = "sealora audit receipt v1\n";
    size_t n = strlen(dom) + strlen(body);
    uint8_t *msg = malloc(n), sig[64];
    memcpy(msg, dom, strlen(dom));
    memcpy(msg + strlen(dom), body, strlen(body));
    crypto_sign_detached(sig, NULL, msg, n, fx->sk);
    char sh[129];
    sodium_bin2hex(sh, sizeof sh, sig, 64);
    json_object_set_new(o, "sig", json_string(sh));
    char *text = dump(o);
    sl_err err = {0};
    ck_assert_msg(sl_auditlog_receipt_store(dir, (uint8_t *)text, strlen(text), fx->pk, &err) == 0,
                  "%s", err.msg);
    free(text);
    free(msg);
    free(body);
    free_lines(&L);
}

START_TEST(test_receipt_reconciliation)
{
    fixture fx;
    make_log(&fx, 3, 10.0);
    lines L;
    read_lines(&fx, &L);
    size_t i = find(&L, "round_close", 2);
    const char *extra = sl_test_tmpdir();
    /* site-77 holds a receipt for round 2 that the log does not list. */
    forge_receipt(&fx, extra, "site-77", 2, L.v[i], i);
    const char *dirs[NSITES + 1];
    for (int k = 0; k < NSITES; k++)
        dirs[k] = fx.rdirs[k];
    dirs[NSITES] = extra;
    sl_audit_opts o = opts(&fx, 1);
    o.receipt_dirs = dirs;
    o.nreceipt_dirs = NSITES + 1;
    sl_audit_report rep;
    sl_err err = {0};
    ck_assert_int_eq(sl_audit_check(fx.dir, &o, &rep, &err), 0);
    EXPECT(&rep, "receipt", "site site-77 is missing from round 2's contributors");
    sl_audit_report_fini(&rep);
    /* A receipt for round 9, which the log does not show (pointing at a
     * real record so only the round is wrong). */
    const char *extra2 = sl_test_tmpdir();
    forge_receipt(&fx, extra2, "site-01", 9, L.v[i], i);
    dirs[NSITES] = extra2;
    ck_assert_int_eq(sl_audit_check(fx.dir, &o, &rep, &err), 0);
    EXPECT(&rep, "receipt", "is for round 9, which the log does not show");
    sl_audit_report_fini(&rep);
    /* A site that keeps receipts but lost one: a warning, not an error. */
    char p[400];
    snprintf(p, sizeof p, "%s/receipt-000001.json", fx.rdir[4]);
    ck_assert_int_eq(unlink(p), 0);
    check(&fx, 1, &rep);
    ck_assert_uint_eq(rep.findings.errors, 0);
    ck_assert_uint_eq(rep.findings.warnings, 1);
    ck_assert_ptr_nonnull(strstr(rep.findings.v[0].msg, "site-04 contributed to round 1"));
    sl_audit_report_fini(&rep);
    free_lines(&L);
}
END_TEST

START_TEST(test_wrong_key)
{
    fixture fx;
    make_log(&fx, 2, 10.0);
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    memcpy(fx.pk, pk2, 32);
    sl_audit_report rep;
    check(&fx, 0, &rep);
    EXPECT(&rep, "key", "the log was opened with server key");
    EXPECT(&rep, "edited", "signature does not verify");
    sl_audit_report_fini(&rep);
}
END_TEST

/* Semantics: a round released with fewer survivors than the threshold
 * (noise below the configured level), an understated epsilon, a budget
 * overspent. */
START_TEST(test_noise_claim_budget)
{
    fixture fx;
    make_log(&fx, 0, 10.0);
    sl_err err = {0};
    sl_auditlog *log;
    ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, 0, &err), 0);
    static sl_acct acct;
    sl_acct_init(&acct);
    run_round(log, &fx, &acct, 0, 3, 1.0, 0);
    run_round(log, &fx, &acct, 1, 2, 1.0, 0);  /* 2 survivors < t = 3 */
    run_round(log, &fx, &acct, 2, 4, 0.5, 0);  /* claims half the epsilon */
    ck_assert_int_eq(sl_auditlog_close(log, &err), 0);
    sl_audit_report rep;
    check(&fx, 0, &rep);
    EXPECT(&rep, "noise", "round 1: the noise present was 0.8164");
    EXPECT(&rep, "noise", "below the configured noise multiplier 1 (2 of 5 sampled sites");
    EXPECT(&rep, "log", "round 1 was released with 2 survivors, below the threshold 3");
    EXPECT(&rep, "claim", "round 2: the log claims epsilon");
    ck_assert(rep.budget_held);
    sl_audit_report_fini(&rep);
    /* The same log against a smaller budget. */
    sl_audit_opts o = opts(&fx, 0);
    o.budget = fx.eps / 2;
    ck_assert_int_eq(sl_audit_check(fx.dir, &o, &rep, &err), 0);
    EXPECT(&rep, "budget", "budget exceeded at round");
    ck_assert(!rep.budget_held);
    sl_audit_report_fini(&rep);
}
END_TEST

/* Any single byte changed anywhere in the log is detected. */
START_TEST(test_random_flips_detected)
{
    fixture fx;
    make_log(&fx, 2, 10.0);
    char p[400];
    log_path(&fx, p, sizeof p);
    uint8_t *buf;
    size_t len;
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_read_all(p, SL_AUDITLOG_MAX_BYTES, &buf, &len, &err), 0);
    sl_test_rng rng = {99};
    sl_audit_opts o = opts(&fx, 0);
    for (int it = 0; it < 150; it++) {
        size_t at = sl_test_rand(&rng) % len;
        uint8_t x = (uint8_t)(1 + sl_test_rand(&rng) % 255);
        buf[at] ^= x;
        sl_audit_report rep;
        ck_assert_int_eq(sl_audit_check_buf(buf, len, &o, &rep, &err), 0);
        ck_assert_msg(rep.findings.errors > 0, "flip of byte %zu by %02x went unnoticed", at, x);
        sl_audit_report_fini(&rep);
        buf[at] ^= x;
    }
    /* Every prefix is either flagged or ends exactly after a signed record. */
    for (size_t cut = 0; cut < len; cut += 13) {
        sl_audit_report rep;
        ck_assert_int_eq(sl_audit_check_buf(buf, cut, &o, &rep, &err), 0);
        ck_assert(rep.findings.errors + rep.findings.warnings > 0);
        sl_audit_report_fini(&rep);
    }
    free(buf);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_writer_limits)
{
    fixture fx;
    make_log(&fx, 1, 10.0);
    sl_err err = {0};
    sl_auditlog *log;
    ck_assert_int_eq(sl_auditlog_open(&log, fx.dir, fx.sk, 0, &err), 0);
    uint64_t at = sl_auditlog_next_seq(log);
    char *big = malloc(SL_AUDITLOG_MAX_RECORD + 1);
    memset(big, 'a', SL_AUDITLOG_MAX_RECORD);
    big[SL_AUDITLOG_MAX_RECORD] = 0;
    json_t *o = json_pack("{s:s}", "note", big);
    ck_assert_int_eq(sl_auditlog_append(log, "note", o, NULL, &err), SL_ELIMIT);
    json_decref(o);
    free(big);
    o = json_pack("{s:i}", "seq", 3);
    ck_assert_int_eq(sl_auditlog_append(log, "note", o, NULL, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "'seq' is reserved"));
    json_decref(o);
    ck_assert_int_eq(sl_auditlog_append(log, "round_close", NULL, NULL, &err), SL_EINVAL);
    ck_assert_int_eq(sl_auditlog_append(log, "Bad Type", NULL, NULL, &err), SL_EINVAL);
    sl_auditlog_contrib c[2] = {{"site-01", {0}}, {"site-01", {0}}};
    ck_assert_int_eq(sl_auditlog_close_round(log, 5, 1, c, 2, 0.1, NULL, NULL, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "listed twice"));
    c[1].site = "../etc";
    ck_assert_int_eq(sl_auditlog_close_round(log, 5, 1, c, 2, 0.1, NULL, NULL, &err), SL_EINVAL);
    ck_assert_int_eq(sl_auditlog_close_round(log, 5, 1, c, SL_AUDITLOG_MAX_CONTRIB + 1, 0.1, NULL,
                                             NULL, &err), SL_ELIMIT);
    ck_assert_int_eq(sl_auditlog_close_round(log, 5, 1, c, 1, NAN, NULL, NULL, &err), SL_EINVAL);
    sl_dp_round_record rec = round_rec(5, 3);
    rec.clip = -1;
    ck_assert_int_eq(sl_auditlog_mechanism(log, &rec, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "dp record of round 5: mechanism field clip"));
    ck_assert_uint_eq(sl_auditlog_next_seq(log), at); /* nothing written */
    ck_assert_int_eq(sl_auditlog_close(log, &err), 0);
    /* Create refuses an existing log. */
    sl_auditlog_config cfg = {"server", 1, 1e-5, 1, SL_ACCT_DISTRIBUTED};
    ck_assert_int_eq(sl_auditlog_create(&log, fx.dir, fx.sk, &cfg, &err), SL_ESTATE);
    cfg.delta = 0;
    ck_assert_int_eq(sl_auditlog_create(&log, sl_test_tmpdir(), fx.sk, &cfg, &err), SL_EINVAL);
    sl_audit_report rep;
    check(&fx, 0, &rep);
    ck_assert_uint_eq(rep.findings.errors, 0);
    sl_audit_report_fini(&rep);
}
END_TEST

START_TEST(test_reader_limits)
{
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    sl_auditlog_scan s;
    sl_err err = {0};
    ck_assert_int_eq(sl_auditlog_scan_buf((const uint8_t *)"", 0, pk, &s, &err), 0);
    ck_assert_uint_eq(s.findings.errors, 1);
    ck_assert_ptr_nonnull(strstr(s.findings.v[0].msg, "empty"));
    sl_auditlog_scan_fini(&s);
    size_t n = SL_AUDITLOG_MAX_RECORD + 10;
    uint8_t *big = malloc(n);
    memset(big, ' ', n);
    big[n - 1] = '\n';
    ck_assert_int_eq(sl_auditlog_scan_buf(big, n, pk, &s, &err), 0);
    ck_assert_ptr_nonnull(strstr(s.findings.v[0].msg, "above the"));
    sl_auditlog_scan_fini(&s);
    free(big);
    /* Thousands of broken lines: every one counted, the first 1000 kept. */
    size_t nl = 3 * SL_AUDIT_MAX_FINDINGS;
    uint8_t *junk = malloc(2 * nl);
    for (size_t i = 0; i < nl; i++) {
        junk[2 * i] = 'x';
        junk[2 * i + 1] = '\n';
    }
    ck_assert_int_eq(sl_auditlog_scan_buf(junk, 2 * nl, pk, &s, &err), 0);
    ck_assert_uint_eq(s.findings.n, SL_AUDIT_MAX_FINDINGS);
    ck_assert_uint_ge(s.findings.errors, nl);
    sl_auditlog_scan_fini(&s);
    free(junk);
    uint8_t rbig[SL_AUDITLOG_MAX_RECEIPT + 2];
    memset(rbig, ' ', sizeof rbig);
    sl_receipt r;
    ck_assert_int_eq(sl_auditlog_receipt_verify(rbig, sizeof rbig, pk, &r, &err), SL_ELIMIT);
}
END_TEST

/* Malformed lines: each is named by line with the right kind. */
START_TEST(test_malformed_lines)
{
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    static const struct { const char *text; const char *kind; const char *msg; } bad[] = {
        {"not json\n", "format", "line 1 is not a JSON object"},
        {"[1,2]\n", "format", "line 1 is not a JSON object"},
        {"{\"seq\":0,\"seq\":1}\n", "format", "line 1 is not a JSON object"},
        {"{\"seq\": 0}\n", "edited", "not in canonical form"},
        {"{\"seq\":-1}\n", "format", "member seq"},
        {"{\"prev\":\"zz\",\"seq\":0}\n", "format", "member prev"},
        {"{\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"seq\":0,"
         "\"type\":\"Bad\"}\n", "format", "member type"},
        {"{\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"seq\":0,"
         "\"type\":\"note\"}\n", "format", "not log_open"},
        {"{\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"seq\":0,"
         "\"type\":\"log_open\"}\n", "unsigned", "carries no signature"},
        {"{\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"seq\":0,"
         "\"sig\":\"00\",\"type\":\"log_open\"}\n", "edited", "signature does not verify"},
        {"{\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"seq\":9999,"
         "\"type\":\"note\"}\n", "inserted", "far past"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_auditlog_scan s;
        sl_err err = {0};
        ck_assert_int_eq(sl_auditlog_scan_buf((const uint8_t *)bad[i].text, strlen(bad[i].text),
                                              pk, &s, &err), 0);
        int found = 0;
        for (size_t k = 0; k < s.findings.n; k++)
            found |= strcmp(s.findings.v[k].kind, bad[i].kind) == 0 &&
                     strstr(s.findings.v[k].msg, bad[i].msg) != NULL;
        if (!found)
            for (size_t k = 0; k < s.findings.n; k++)
                fprintf(stderr, "  %s: %s\n", s.findings.v[k].kind, s.findings.v[k].msg);
        ck_assert_msg(found, "case %zu: no %s finding with '%s'", i, bad[i].kind, bad[i].msg);
        sl_auditlog_scan_fini(&s);
    }
    /* Mechanism records: a missing dp object, a dp record the secure
     * aggregation's decoder refuses, a round that differs, parameters the
     * accountant refuses. */
    sl_acct_mech m;
    sl_err err = {0};
    json_t *o = json_pack("{s:i}", "round", 1);
    ck_assert_int_eq(sl_auditlog_mech_decode(o, &m, NULL, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "no dp object"));
    json_decref(o);
    sl_dp_round_record rec = round_rec(4, 3);
    json_t *dp;
    ck_assert_int_eq(sl_dp_record_to_json(&rec, &dp, &err), 0);
    o = json_pack("{s:i, s:O}", "round", 3, "dp", dp);
    ck_assert_int_eq(sl_auditlog_mech_decode(o, &m, NULL, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "round differs"));
    json_object_set_new(o, "round", json_integer(4));
    ck_assert_int_eq(sl_auditlog_mech_decode(o, &m, NULL, &err), 0);
    json_object_set_new(dp, "unknown", json_integer(1));
    ck_assert_int_eq(sl_auditlog_mech_decode(o, &m, NULL, &err), SL_EFORMAT);
    json_object_del(dp, "unknown");
    json_object_set_new(dp, "grid_scale", json_real(0));
    ck_assert_int_ne(sl_auditlog_mech_decode(o, &m, NULL, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "scale"));
    json_decref(dp);
    json_decref(o);
}
END_TEST

Suite *auditlog_suite(void)
{
    Suite *s = suite_create("auditlog");
    TCase *core = tcase_create("core");
    tcase_set_timeout(core, 60);
    tcase_add_test(core, test_clean_log_verifies);
    tcase_add_test(core, test_receipt_round_trip);
    tcase_add_test(core, test_resume_after_crash);
    tcase_add_test(core, test_torn_tail_repair);
    tcase_add_test(core, test_abandoned_round_charged);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_writer_limits);
    tcase_add_test(lim, test_reader_limits);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_set_timeout(bad, 120);
    tcase_add_test(bad, test_edited_unsigned_record);
    tcase_add_test(bad, test_edited_signed_record);
    tcase_add_test(bad, test_edited_with_rechain);
    tcase_add_test(bad, test_deleted_record);
    tcase_add_test(bad, test_inserted_record);
    tcase_add_test(bad, test_reordered_records);
    tcase_add_test(bad, test_truncated);
    tcase_add_test(bad, test_rewritten_log_and_receipts);
    tcase_add_test(bad, test_receipt_reconciliation);
    tcase_add_test(bad, test_wrong_key);
    tcase_add_test(bad, test_noise_claim_budget);
    tcase_add_test(bad, test_random_flips_detected);
    tcase_add_test(bad, test_malformed_lines);
    tcase_add_test(bad, test_abandoned_round_refused);
    suite_add_tcase(s, bad);
    return s;
}
