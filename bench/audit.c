/* bench/audit - cost of privacy accounting and of auditing a log.
 *
 * Accountant: time to charge one round on the default 286-order grid for
 * the subsampled Gaussian (q 0.01, sigma 1.1) and for a distributed
 * discrete Gaussian round as secure aggregation records it (2^20 noised
 * coordinates, 16 of 20 sites surviving), and to convert to epsilon.
 * Log: writes a log of R rounds (round_start, sampled, mechanism, signed
 * and fsync'd round_close; seven survivor counts in turn, as dropouts
 * vary) into $TMPDIR, then times sl_audit_check over it
 * (chain, signatures, replay, epsilon after every round). Medians of 3
 * runs; nothing is asserted.
 *
 * Usage: bench/audit [--rounds R]
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto/auditcheck.h"
#include "crypto/auditlog.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double median3(double a, double b, double c)
{
    if (a > b) { double t = a; a = b; b = t; }
    if (b > c) { double t = b; b = c; c = t; }
    return a > b ? a : b;
}

static sl_dp_round_record ddg_record(uint64_t round, uint32_t survivors, sl_err *err, int *ok)
{
    sl_dp_params p;
    memset(&p, 0, sizeof p);
    p.dim = 1u << 20;
    p.clip = 1.0;
    p.scale = 4096;
    p.sigma = 1.0;
    p.threshold = 12;
    p.beta = SL_DP_DEFAULT_BETA;
    p.mode = SL_DP_DISTRIBUTED;
    p.bits = 32;
    sl_dp_plan pl;
    sl_dp_round_record r;
    memset(&r, 0, sizeof r);
    *ok = sl_dp_plan_init(&pl, &p, err) == 0;
    if (*ok)
        sl_dp_record_fill(&r, &pl, round, 0.05, 20, 18, survivors);
    return r;
}

int main(int argc, char **argv)
{
    int rounds = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--rounds R]\n", argv[0]);
            return 2;
        }
    }
    if (sodium_init() < 0 || rounds < 1)
        return 1;
    sl_err err = {0};
    int ok;
    static sl_acct a;
    double t[3];

    for (int k = 0; k < 3; k++) {
        sl_acct_init(&a);
        double t0 = now();
        for (int i = 0; i < 20; i++)
            sl_acct_add_sgm(&a, 0.01, 1.1 + 1e-6 * i, 1, &err);
        t[k] = (now() - t0) / 20;
    }
    printf("accountant: subsampled Gaussian round (q 0.01, sigma 1.1): %.2f ms\n",
           1e3 * median3(t[0], t[1], t[2]));
    sl_dp_round_record rec = ddg_record(0, 16, &err, &ok);
    if (!ok) {
        fprintf(stderr, "plan: %s\n", err.msg);
        return 1;
    }
    sl_acct_mech m;
    if (sl_auditlog_mech_from_dp(&rec, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (int k = 0; k < 3; k++) {
        sl_acct_init(&a);
        double t0 = now();
        for (int i = 0; i < 20; i++)
            sl_acct_add_mech(&a, &m, &err);
        t[k] = (now() - t0) / 20;
    }
    printf("accountant: distributed discrete Gaussian round (d 2^20, 16/18 of 20): %.3f ms\n",
           1e3 * median3(t[0], t[1], t[2]));
    for (int k = 0; k < 3; k++) {
        sl_acct_eps e;
        double t0 = now();
        for (int i = 0; i < 1000; i++)
            sl_acct_epsilon(&a, 1e-5, &e, &err);
        t[k] = (now() - t0) / 1000;
    }
    printf("accountant: RDP -> (epsilon, delta), both conversions: %.1f us\n",
           1e6 * median3(t[0], t[1], t[2]));

    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sealora-bench-audit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    sl_auditlog_config cfg = {"server", 1e6, 1e-5, 1.0, SL_ACCT_DISTRIBUTED};
    sl_auditlog *log;
    char logdir[600];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    double t0 = now();
    if (sl_auditlog_create(&log, logdir, sk, &cfg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    sl_auditlog_contrib c[18];
    char names[18][16];
    for (int i = 0; i < 18; i++) {
        snprintf(names[i], sizeof names[i], "site-%02d", i);
        c[i].site = names[i];
        memset(c[i].input, i, 32);
    }
    for (int r = 0; r < rounds && ok; r++) {
        json_t *o = json_pack("{s:i}", "round", r);
        json_t *s = json_pack("{s:i, s:i}", "round", r, "sites", 20);
        rec = ddg_record((uint64_t)r, 12 + (uint32_t)(r % 7), &err, &ok);
        ok = ok && sl_auditlog_append(log, "round_start", o, NULL, &err) == 0 &&
             sl_auditlog_append(log, "sampled", s, NULL, &err) == 0 &&
             sl_auditlog_mechanism(log, &rec, &err) == 0 &&
             sl_auditlog_close_round(log, r, 1, c, 18, 1e3, NULL, NULL, &err) == 0;
        json_decref(o);
        json_decref(s);
    }
    if (!ok || sl_auditlog_close(log, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double tw = now() - t0;
    char path[700];
    snprintf(path, sizeof path, "%s/%s", logdir, SL_AUDITLOG_FILE);
    struct stat st;
    stat(path, &st);
    printf("log: %d rounds, %d records, %.1f MB written in %.2f s (%.0f rounds/s, one fsync per "
           "round)\n",
           rounds, 4 * rounds + 2, st.st_size / 1e6, tw, rounds / tw);
    sl_audit_opts o;
    memset(&o, 0, sizeof o);
    o.pk = pk;
    for (int k = 0; k < 3; k++) {
        sl_audit_report rep;
        double t1 = now();
        if (sl_audit_check(logdir, &o, &rep, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        t[k] = now() - t1;
        if (k == 2)
            printf("audit: %zu findings, epsilon %.4g after %zu rounds\n", rep.findings.n,
                   rep.final.epsilon, rep.released);
        sl_audit_report_fini(&rep);
    }
    double tv = median3(t[0], t[1], t[2]);
    printf("audit: verify + replay + epsilon per round: %.2f s (%.0f records/s, %.1f MB/s)\n", tv,
           (4 * rounds + 2) / tv, st.st_size / 1e6 / tv);
    unlink(path);
    rmdir(logdir);
    rmdir(dir);
    return 0;
}
