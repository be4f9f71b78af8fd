/* `sealora-audit verify` and `report` as a user runs them: the real binary
 * ($SEALORA_TEST_BIN) on a log, receipts and a server certificate generated
 * here. Exit status 0 only for an intact log within budget; findings name
 * the record; --json parses and agrees with the library; the SVG is a
 * well-formed document holding no non-finite coordinate; key options and
 * usage errors behave. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "audit/cmd_check.h"
#include "audit/svgplot.h"
#include "crypto/auditcheck.h"
#include "crypto/auditlog.h"
#include "crypto/identity.h"
#include "shared/fsutil.h"
#include "tests/fixtures.h"

typedef struct cli_fx {
    char base[256], log[300], rcp[3][320], cert[320], ca[320], pkhex[65];
    uint8_t pk[32];
    double eps;
} cli_fx;

static void build(cli_fx *fx, int rounds, int weak_round)
{
    memset(fx, 0, sizeof *fx);
    ck_assert_int_ge(sodium_init(), 0);
    char base[256]; /* a local copy: gcc -Wrestrict dislikes fx->base as a source into fx */
    snprintf(base, sizeof base, "%s", sl_test_tmpdir());
    snprintf(fx->base, sizeof fx->base, "%s", base);
    snprintf(fx->log, sizeof fx->log, "%s/log", base);
    sl_err err = {0};
    /* A CA and a server certificate for a fresh server key. */
    char cac[320], cak[320], sk_path[320];
    snprintf(cac, sizeof cac, "%s/ca.crt", base);
    snprintf(fx->ca, sizeof fx->ca, "%s/ca.crt", base);
    snprintf(cak, sizeof cak, "%s/ca.key", base);
    snprintf(sk_path, sizeof sk_path, "%s/server.key", base);
    snprintf(fx->cert, sizeof fx->cert, "%s/server.crt", base);
    ck_assert_msg(sl_identity_ca_create(cac, cak, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(sl_identity_keygen(sk_path, fx->pk, &err), 0);
    ck_assert_msg(sl_identity_issue(cac, cak, SL_IDENTITY_SERVER_NAME, SL_IDENTITY_ROLE_SERVER,
                                    fx->pk, NULL, fx->cert, NULL, &err) == 0, "%s", err.msg);
    uint8_t *sk = sodium_malloc(64);
    ck_assert_int_eq(sl_identity_load_secret(sk_path, sk, &err), 0);
    sodium_bin2hex(fx->pkhex, sizeof fx->pkhex, fx->pk, 32);

    sl_auditlog_config cfg = {"server", 5.0, 1e-5, 1.0, SL_ACCT_DISTRIBUTED};
    sl_auditlog *log;
    ck_assert_int_eq(sl_auditlog_create(&log, fx->log, sk, &cfg, &err), 0);
    static sl_acct acct;
    sl_acct_init(&acct);
    const char *sites[3] = {"alpha", "bravo", "charlie"};
    for (int i = 0; i < 3; i++)
        snprintf(fx->rcp[i], sizeof fx->rcp[i], "%s/receipts-%s", base, sites[i]);
    for (int r = 0; r < rounds; r++) {
        json_t *o = json_pack("{s:i}", "round", r);
        ck_assert_int_eq(sl_auditlog_append(log, "round_start", o, NULL, &err), 0);
        json_decref(o);
        sl_dp_params p;
        memset(&p, 0, sizeof p);
        p.dim = 3000;
        p.clip = 1;
        p.scale = 1024;
        p.sigma = 1.0;
        p.threshold = 2;
        p.beta = SL_DP_DEFAULT_BETA;
        p.mode = SL_DP_DISTRIBUTED;
        p.bits = 32;
        sl_dp_plan pl;
        ck_assert_msg(sl_dp_plan_init(&pl, &p, &err) == 0, "%s", err.msg);
        sl_dp_round_record rec;
        sl_dp_record_fill(&rec, &pl, (uint64_t)r, 0.05, 3, 3, r == weak_round ? 1 : 3);
        ck_assert_int_eq(sl_auditlog_mechanism(log, &rec, &err), 0);
        sl_acct_mech m;
        ck_assert_int_eq(sl_auditlog_mech_from_dp(&rec, &m, &err), 0);
        ck_assert_int_eq(sl_acct_add_mech(&acct, &m, &err), 0);
        sl_acct_eps e;
        ck_assert_int_eq(sl_acct_epsilon(&acct, 1e-5, &e, &err), 0);
        sl_auditlog_contrib c[3];
        for (int i = 0; i < 3; i++) {
            c[i].site = sites[i];
            memset(c[i].input, r * 3 + i, 32);
        }
        ck_assert_int_eq(sl_auditlog_close_round(log, r, 1, c, 3, e.epsilon, NULL, NULL, &err), 0);
        for (int i = 0; i < 3; i++) {
            char *t;
            size_t n;
            ck_assert_int_eq(sl_auditlog_receipt(log, sites[i], &t, &n, &err), 0);
            ck_assert_int_eq(sl_auditlog_receipt_store(fx->rcp[i], (uint8_t *)t, n, fx->pk, &err),
                             0);
            free(t);
        }
        fx->eps = e.epsilon;
    }
    ck_assert_int_eq(sl_auditlog_close(log, &err), 0);
    sodium_free(sk);
}

/* Runs the binary with a shell command line; returns the exit status and
 * the combined output in a malloc'd string. */
static int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **out, const char *fmt, ...)
{
    const char *bin = getenv("SEALORA_TEST_BIN");
    ck_assert_msg(bin != NULL, "SEALORA_TEST_BIN is not set (run through make test)");
    char args[2048], cmd[2600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s/sealora-audit' %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_verify_clean_with_cert)
{
    cli_fx fx;
    build(&fx, 4, -1);
    char *out;
    int st = run(&out, "verify '%s' --cert '%s' --receipts '%s' --receipts '%s' --receipts '%s'",
                 fx.log, fx.cert, fx.rcp[0], fx.rcp[1], fx.rcp[2]);
    ck_assert_msg(st == 0, "status %d:\n%s", st, out);
    ck_assert_ptr_nonnull(strstr(out, "result     OK"));
    ck_assert_ptr_nonnull(strstr(out, "receipts   12 checked"));
    ck_assert_ptr_nonnull(strstr(out, "budget     5: held"));
    ck_assert_ptr_nonnull(strstr(out, "findings   none"));
    free(out);
    /* The certificate chains to the deployment CA; another CA is refused. */
    st = run(&out, "verify '%s' --cert '%s' --ca '%s'", fx.log, fx.cert, fx.ca);
    ck_assert_msg(st == 0, "status %d:\n%s", st, out);
    free(out);
    char ca2[400], ca2k[400];
    snprintf(ca2, sizeof ca2, "%s/other-ca.crt", fx.base);
    snprintf(ca2k, sizeof ca2k, "%s/other-ca.key", fx.base);
    sl_err err = {0};
    ck_assert_int_eq(sl_identity_ca_create(ca2, ca2k, NULL, &err), 0);
    st = run(&out, "verify '%s' --cert '%s' --ca '%s'", fx.log, fx.cert, ca2);
    ck_assert_msg(st == 1, "status %d:\n%s", st, out);
    ck_assert_ptr_nonnull(strstr(out, "server.crt"));
    free(out);
    ck_assert_int_eq(run(&out, "verify '%s' --pubkey %s --ca '%s'", fx.log, fx.pkhex, fx.ca), 2);
    ck_assert_ptr_nonnull(strstr(out, "--ca needs --cert"));
    free(out);
    /* Raw key forms give the same verdict. */
    st = run(&out, "verify '%s' --pubkey %s", fx.log, fx.pkhex);
    ck_assert_msg(st == 0, "%s", out);
    free(out);
    const char *kf = sl_test_write(fx.base, "server.pub", fx.pkhex, 64);
    st = run(&out, "verify '%s' --pubkey-file '%s' --json", fx.log, kf);
    ck_assert_msg(st == 0, "%s", out);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    ck_assert_msg(j != NULL, "not JSON: %s\n%s", je.text, out);
    ck_assert(json_is_true(json_object_get(j, "ok")));
    /* 15 significant digits in the output */
    ck_assert(fabs(json_number_value(json_object_get(j, "epsilon")) / fx.eps - 1) < 1e-14);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "rounds_released")), 4);
    ck_assert_ptr_null(json_object_get(j, "rounds")); /* verify leaves the table to report */
    json_decref(j);
    free(out);
}
END_TEST

START_TEST(test_report_table_json_svg)
{
    cli_fx fx;
    build(&fx, 5, 3); /* round 3 released with one survivor: too little noise */
    char svg[400], *out;
    snprintf(svg, sizeof svg, "%s/eps.svg", fx.base);
    int st = run(&out, "report '%s' --cert '%s' --svg '%s'", fx.log, fx.cert, svg);
    ck_assert_msg(st == 1, "status %d:\n%s", st, out);
    ck_assert_ptr_nonnull(strstr(out, "result     FAILED"));
    ck_assert_ptr_nonnull(strstr(out, "round 3: the noise present was"));
    ck_assert_ptr_nonnull(strstr(out, "round 3 was released with 1 survivors, below the threshold 2"));
    ck_assert_ptr_nonnull(strstr(out, "     3  released   distributed"));
    free(out);
    uint8_t *s;
    size_t n;
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_read_all(svg, 1 << 20, &s, &n, &err), 0);
    ck_assert(strncmp((char *)s, "<?xml", 5) == 0);
    ck_assert_ptr_nonnull(strstr((char *)s, "<polyline"));
    ck_assert_ptr_nonnull(strstr((char *)s, "budget 5"));
    ck_assert_ptr_nonnull(strstr((char *)s, "</svg>"));
    ck_assert_ptr_null(strstr((char *)s, "nan"));
    ck_assert_ptr_null(strstr((char *)s, "inf\""));
    free(s);

    st = run(&out, "report '%s' --cert '%s' --json --budget 0.0001", fx.log, fx.cert);
    ck_assert_int_eq(st, 1);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert(json_is_false(json_object_get(j, "budget_held")));
    json_t *rounds = json_object_get(j, "rounds");
    ck_assert_uint_eq(json_array_size(rounds), 5);
    json_t *r3 = json_array_get(rounds, 3);
    ck_assert_int_eq(json_integer_value(json_object_get(r3, "survivors")), 1);
    ck_assert(json_number_value(json_object_get(r3, "noise_vs_clip")) < 1.0);
    int budget = 0, noise = 0;
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(j, "findings"), i, f)
    {
        const char *k = json_string_value(json_object_get(f, "kind"));
        budget |= strcmp(k, "budget") == 0;
        noise |= strcmp(k, "noise") == 0 && json_integer_value(json_object_get(f, "round")) == 3;
    }
    ck_assert(budget && noise);
    json_decref(j);
    free(out);
}
END_TEST

START_TEST(test_tampered_log_exit_status)
{
    cli_fx fx;
    build(&fx, 3, -1);
    char path[400];
    snprintf(path, sizeof path, "%s/%s", fx.log, SL_AUDITLOG_FILE);
    uint8_t *b;
    size_t n;
    sl_err err = {0};
    ck_assert_int_eq(sl_fs_read_all(path, 1 << 20, &b, &n, &err), 0);
    char *at = strstr((char *)b, "\"survivors\":3");
    ck_assert_ptr_nonnull(at);
    at[12] = '9';
    FILE *w = fopen(path, "wb");
    fwrite(b, 1, n, w);
    fclose(w);
    free(b);
    char *out;
    int st = run(&out, "verify '%s' --cert '%s'", fx.log, fx.cert);
    ck_assert_msg(st == 1, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "error    edited"));
    ck_assert_ptr_nonnull(strstr(out, "(line 3, mechanism) was edited"));
    free(out);
}
END_TEST

START_TEST(test_usage_errors)
{
    cli_fx fx;
    build(&fx, 1, -1);
    char *out;
    ck_assert_int_eq(run(&out, "verify '%s'", fx.log), 2);
    ck_assert_ptr_nonnull(strstr(out, "exactly one of --cert"));
    free(out);
    ck_assert_int_eq(run(&out, "verify --pubkey %s", fx.pkhex), 2);
    ck_assert_ptr_nonnull(strstr(out, "give LOGDIR"));
    free(out);
    ck_assert_int_eq(run(&out, "verify '%s' --pubkey XYZ", fx.log), 2);
    ck_assert_ptr_nonnull(strstr(out, "64 lowercase hex"));
    free(out);
    ck_assert_int_eq(run(&out, "verify '%s' --pubkey %s --budget -1", fx.log, fx.pkhex), 2);
    free(out);
    ck_assert_int_eq(run(&out, "verify '%s' --pubkey %s --svg x.svg", fx.log, fx.pkhex), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown option '--svg'"));
    free(out);
    ck_assert_int_eq(run(&out, "verify '%s/nowhere' --pubkey %s", fx.base, fx.pkhex), 1);
    ck_assert_ptr_nonnull(strstr(out, "nowhere/audit.jsonl: no such file"));
    free(out);
    ck_assert_int_eq(run(&out, "verify '%s' --cert '%s/missing.crt'", fx.log, fx.base), 1);
    ck_assert_ptr_nonnull(strstr(out, "missing.crt"));
    free(out);
    ck_assert_int_eq(run(&out, "report --help"), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: sealora-audit report"));
    free(out);
}
END_TEST

/* The plot never writes a non-finite coordinate and escapes its title. */
START_TEST(test_svg_edge_cases)
{
    double x[3] = {0, 1, 2}, y[3] = {0.5, INFINITY, NAN};
    sl_svgplot_series e = {x, y, 3}, c = {x, y, 0};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(sl_svgplot_epsilon(f, &e, &c, 0, 1e-5, "a<b & \"c\""), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "a&lt;b &amp; &quot;c&quot;"));
    ck_assert_ptr_null(strstr(buf, "nan"));
    ck_assert_ptr_nonnull(strstr(buf, ">inf<"));
    free(buf);
    sl_svgplot_series none = {x, y, 0};
    f = open_memstream(&buf, &len);
    ck_assert_int_eq(sl_svgplot_epsilon(f, &none, &none, 3, 1e-5, "t"), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "no released round"));
    free(buf);
}
END_TEST

START_TEST(test_key_loading)
{
    uint8_t pk[32];
    sl_err err = {0};
    ck_assert_int_eq(sl_cmd_check_key(NULL, NULL, NULL, pk, &err), SL_EINVAL);
    ck_assert_int_eq(sl_cmd_check_key("a", "b", NULL, pk, &err), SL_EINVAL);
    char hex[65];
    memset(hex, 'a', 64);
    hex[64] = 0;
    ck_assert_int_eq(sl_cmd_check_key(NULL, hex, NULL, pk, &err), 0);
    ck_assert_uint_eq(pk[0], 0xaa);
    hex[10] = 'A';
    ck_assert_int_eq(sl_cmd_check_key(NULL, hex, NULL, pk, &err), SL_EINVAL);
    const char *d = sl_test_tmpdir();
    const char *p = sl_test_write(d, "k", "0123\n", 5);
    ck_assert_int_eq(sl_cmd_check_key(NULL, NULL, p, pk, &err), SL_EINVAL);
}
END_TEST

Suite *auditcli_suite(void)
{
    Suite *s = suite_create("auditcli");
    TCase *core = tcase_create("core");
    tcase_set_timeout(core, 120);
    tcase_add_test(core, test_verify_clean_with_cert);
    tcase_add_test(core, test_report_table_json_svg);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_svg_edge_cases);
    tcase_add_test(lim, test_key_loading);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_set_timeout(bad, 120);
    tcase_add_test(bad, test_tampered_log_exit_status);
    tcase_add_test(bad, test_usage_errors);
    suite_add_tcase(s, bad);
    return s;
}
