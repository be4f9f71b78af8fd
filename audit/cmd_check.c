#include "audit/cmd_check.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/args.h"
#include "audit/svgplot.h"
#include "crypto/auditcheck.h"
#include "crypto/identity.h"
#include "shared/cli.h"
#include "shared/fsutil.h"

static const char *usage_verify =
    "usage: sealora-audit verify LOGDIR (--cert FILE [--ca FILE [--crl FILE]] | --pubkey HEX |\n"
    "                            --pubkey-file FILE)\n"
    "                            [--receipts DIR]... [--budget EPS] [--delta D]\n"
    "                            [--require-closed] [--json]\n"
    "\n"
    "Verifies LOGDIR/audit.jsonl: the hash chain and the server's signatures,\n"
    "recomputes epsilon from the logged mechanism parameters, compares it with the\n"
    "budget (the log's promise unless --budget), flags rounds with less noise than\n"
    "configured, and reconciles the receipts in each DIR with the log. Exit status\n"
    "0 only when everything verifies and the budget held.\n"
    "\n"
    "  --cert FILE        the server's certificate (PEM, Ed25519)\n"
    "  --ca FILE          with --cert: check that the deployment CA issued it to the\n"
    "                     server and that it is valid now\n"
    "  --crl FILE         with --ca: and that the CA has not revoked it\n"
    "  --pubkey HEX       or its raw Ed25519 public key (64 hex digits)\n"
    "  --pubkey-file F    or a file holding those 64 hex digits\n"
    "  --receipts DIR     a site's receipt folder (repeatable)\n"
    "  --budget EPS       check against this epsilon instead of the logged promise\n"
    "  --delta D          compute epsilon at this delta instead of the logged one\n"
    "  --require-closed   a log that does not end with log_close is an error\n"
    "  --json             print one JSON object instead of text\n";

static const char *usage_report =
    "usage: sealora-audit report LOGDIR (--cert FILE [--ca FILE [--crl FILE]] | --pubkey HEX |\n"
    "                            --pubkey-file FILE)\n"
    "                            [--receipts DIR]... [--budget EPS] [--delta D]\n"
    "                            [--require-closed] [--json] [--svg FILE]\n"
    "\n"
    "Everything `verify` checks, with a table of the rounds (status, sampling\n"
    "probability, survivors, effective noise multiplier, recomputed and claimed\n"
    "epsilon). --json prints it as one object; --svg FILE writes a plot of epsilon\n"
    "against rounds with the budget line. Exit status as for verify.\n";

int sl_cmd_check_key(const char *cert, const char *hex, const char *hexfile, uint8_t pk[32],
                     sl_err *err)
{
    int given = !!cert + !!hex + !!hexfile;
    if (given != 1)
        return sl_err_set(err, SL_EINVAL,
                          "give the server key with exactly one of --cert, --pubkey, --pubkey-file");
    if (cert)
        return sl_identity_cert_pubkey(cert, pk, err);
    char buf[80];
    const char *h = hex;
    if (hexfile) {
        uint8_t *b = NULL;
        size_t n = 0;
        int rc = sl_fs_read_all(hexfile, 4096, &b, &n, err);
        if (rc)
            return rc;
        while (n && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' '))
            n--;
        if (n >= sizeof buf) {
            free(b);
            return sl_err_set(err, SL_EFORMAT, "%s: expected 64 hex digits", hexfile);
        }
        memcpy(buf, b, n);
        buf[n] = 0;
        free(b);
        h = buf;
    }
    uint8_t tmp[32];
    if (sl_auditlog_unhex(h, tmp, 32))
        return sl_err_set(err, SL_EINVAL, "%s: the server key must be 64 lowercase hex digits",
                          hexfile ? hexfile : "--pubkey");
    memcpy(pk, tmp, 32);
    return 0;
}

/* The server certificate was issued by the deployment CA for the server
 * role, is valid now and (with a CRL) not revoked. */
static int check_issuer(const char *cert, const char *ca, const char *crl, sl_err *err)
{
    sl_trust *t = NULL;
    sl_cert *c = NULL;
    int rc = sl_identity_trust_load(ca, crl, &t, err);
    if (!rc)
        rc = sl_identity_cert_read(cert, &c, err);
    if (!rc)
        rc = sl_identity_verify(t, c, SL_IDENTITY_ROLE_SERVER, 0, NULL, err);
    if (rc)
        sl_err_prefix(err, "%s", cert);
    sl_identity_cert_free(c);
    sl_identity_trust_free(t);
    return rc;
}

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static const char *mode_str(int m)
{
    return m == SL_ACCT_DISTRIBUTED ? "distributed" : m == SL_ACCT_CENTRAL ? "central" : "unknown";
}

static json_t *report_json(const char *path, const sl_audit_report *rep, const uint8_t pk[32],
                           int rounds)
{
    char fpr[SL_IDENTITY_FPR_CHARS + 1], id[65];
    sl_identity_fingerprint(pk, fpr);
    sl_auditlog_hex(rep->log_id, 32, id);
    json_t *o = json_object();
    json_object_set_new(o, "log", json_string(path));
    json_object_set_new(o, "records", json_integer((json_int_t)rep->nrecords));
    json_object_set_new(o, "closed", json_boolean(rep->closed));
    json_object_set_new(o, "server", json_string(rep->server));
    json_object_set_new(o, "server_key", json_string(fpr));
    json_object_set_new(o, "log_id", json_string(id));
    json_object_set_new(o, "mode", json_string(mode_str(rep->mode)));
    json_object_set_new(o, "budget", num(rep->budget));
    json_object_set_new(o, "delta", num(rep->delta));
    json_object_set_new(o, "noise_multiplier", num(rep->noise_multiplier));
    json_object_set_new(o, "rounds_closed", json_integer((json_int_t)(rep->nrounds - rep->abandoned)));
    json_object_set_new(o, "rounds_released", json_integer((json_int_t)rep->released));
    json_object_set_new(o, "rounds_abandoned", json_integer((json_int_t)rep->abandoned));
    json_object_set_new(o, "epsilon", num(rep->final.epsilon));
    json_object_set_new(o, "order", num(isfinite(rep->final.epsilon) ? rep->final.order : NAN));
    json_object_set_new(o, "epsilon_classic", num(rep->final.epsilon_classic));
    json_object_set_new(o, "order_classic",
                        num(isfinite(rep->final.epsilon_classic) ? rep->final.order_classic : NAN));
    json_object_set_new(o, "budget_held", json_boolean(rep->budget_held));
    json_object_set_new(o, "receipts", json_integer((json_int_t)rep->receipts));
    json_object_set_new(o, "errors", json_integer((json_int_t)rep->findings.errors));
    json_object_set_new(o, "warnings", json_integer((json_int_t)rep->findings.warnings));
    json_object_set_new(o, "ok", json_boolean(sl_audit_ok(rep)));
    json_t *fa = json_array();
    for (size_t i = 0; i < rep->findings.n; i++) {
        const sl_audit_finding *x = &rep->findings.v[i];
        json_t *e = json_object();
        json_object_set_new(e, "severity",
                            json_string(x->severity == SL_AUDIT_ERROR ? "error" : "warning"));
        json_object_set_new(e, "kind", json_string(x->kind));
        json_object_set_new(e, "line", x->line > 0 ? json_integer(x->line) : json_null());
        json_object_set_new(e, "seq", x->seq >= 0 ? json_integer(x->seq) : json_null());
        json_object_set_new(e, "round", x->round >= 0 ? json_integer(x->round) : json_null());
        json_object_set_new(e, "message", json_string(x->msg));
        json_array_append_new(fa, e);
    }
    json_object_set_new(o, "findings", fa);
    json_object_set_new(o, "findings_omitted",
                        json_integer((json_int_t)(rep->findings.errors + rep->findings.warnings -
                                                  rep->findings.n)));
    if (rounds) {
        json_t *ra = json_array();
        for (size_t i = 0; i < rep->nrounds; i++) {
            const sl_audit_round *r = &rep->rounds[i];
            json_t *e = json_object();
            json_object_set_new(e, "round", json_integer(r->round));
            json_object_set_new(e, "status", json_string(sl_audit_round_status(r)));
            json_object_set_new(e, "contributors", json_integer((json_int_t)r->ncontrib));
            if (r->has_mech) {
                json_object_set_new(e, "mode", json_string(mode_str(r->mech.mode)));
                json_object_set_new(e, "q", num(r->mech.q));
                json_object_set_new(e, "sampled", json_integer(r->mech.sampled));
                json_object_set_new(e, "survivors", json_integer(r->mech.survivors));
                json_object_set_new(e, "threshold", json_integer(r->mech.threshold));
                json_object_set_new(e, "noise_vs_clip", num(r->z_clip));
                json_object_set_new(e, "noise_multiplier_effective", num(r->z_eff));
                json_object_set_new(e, "noise_multiplier_planned", num(r->z_target));
            }
            json_object_set_new(e, "epsilon", num(r->epsilon));
            json_object_set_new(e, "order", num(isfinite(r->epsilon) ? r->order : NAN));
            json_object_set_new(e, "epsilon_classic", num(r->epsilon_classic));
            json_object_set_new(e, "epsilon_claimed", num(r->epsilon_claimed));
            json_array_append_new(ra, e);
        }
        json_object_set_new(o, "rounds", ra);
    }
    return o;
}

static void print_text(const char *path, const sl_audit_report *rep, const uint8_t pk[32],
                       int rounds)
{
    char fpr[SL_IDENTITY_FPR_CHARS + 1];
    sl_identity_fingerprint(pk, fpr);
    printf("log        %s (%zu records, %s)\n", path, rep->nrecords,
           rep->closed ? "closed" : "not closed");
    printf("server     %s, key %s, %s mode, configured noise multiplier %g\n", rep->server, fpr,
           mode_str(rep->mode), rep->noise_multiplier);
    printf("rounds     %zu closed, %zu released, %zu abandoned (charged, nothing released)\n",
           rep->nrounds - rep->abandoned, rep->released, rep->abandoned);
    printf("epsilon    %.6g at delta %g (order %g); classic conversion %.6g (order %g)\n",
           rep->final.epsilon, rep->delta, rep->final.order, rep->final.epsilon_classic,
           rep->final.order_classic);
    printf("budget     %g: %s\n", rep->budget, rep->budget_held ? "held" : "EXCEEDED");
    printf("receipts   %zu checked\n", rep->receipts);
    if (rounds && rep->nrounds) {
        printf("\n%6s  %-9s  %-11s  %8s  %9s  %7s  %7s  %10s  %10s\n", "round", "status", "mode",
               "q", "survivors", "noise", "z_eff", "epsilon", "claimed");
        for (size_t i = 0; i < rep->nrounds; i++) {
            const sl_audit_round *r = &rep->rounds[i];
            char surv[24] = "-", z[16] = "-", zc[16] = "-", q[16] = "-";
            if (r->has_mech) {
                snprintf(surv, sizeof surv, "%u/%u", r->mech.survivors, r->mech.sampled);
                snprintf(z, sizeof z, "%.4g", r->z_eff);
                snprintf(zc, sizeof zc, "%.4g", r->z_clip);
                snprintf(q, sizeof q, "%.4g", r->mech.q);
            }
            printf("%6lld  %-9s  %-11s  %8s  %9s  %7s  %7s  %10.6g  %10.6g\n", (long long)r->round,
                   sl_audit_round_status(r),
                   r->has_mech ? mode_str(r->mech.mode) : "-", q, surv, zc, z, r->epsilon,
                   r->epsilon_claimed);
        }
        printf("\n");
    }
    if (rep->findings.n == 0) {
        printf("findings   none\n");
    } else {
        printf("findings   %zu error%s, %zu warning%s\n", rep->findings.errors,
               rep->findings.errors == 1 ? "" : "s", rep->findings.warnings,
               rep->findings.warnings == 1 ? "" : "s");
        for (size_t i = 0; i < rep->findings.n; i++) {
            const sl_audit_finding *x = &rep->findings.v[i];
            printf("  %-7s  %-9s  %s\n", x->severity == SL_AUDIT_ERROR ? "error" : "warning",
                   x->kind, x->msg);
        }
        size_t omitted = rep->findings.errors + rep->findings.warnings - rep->findings.n;
        if (omitted)
            printf("  ... and %zu more not listed\n", omitted);
    }
    printf("result     %s\n", sl_audit_ok(rep) ? "OK" : "FAILED");
}

static int write_svg(const char *path, const sl_audit_report *rep, sl_err *err)
{
    size_t n = rep->nrounds;
    double *v = calloc(4 * (n ? n : 1), sizeof *v);
    if (!v)
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    double *ex = v, *ey = v + n, *cx = v + 2 * n, *cy = v + 3 * n;
    size_t ne = 0, nc = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_audit_round *r = &rep->rounds[i];
        if (!r->released && !r->abandoned)
            continue;
        ex[ne] = (double)r->round;
        ey[ne++] = r->epsilon;
        if (isfinite(r->epsilon_claimed)) {
            cx[nc] = (double)r->round;
            cy[nc++] = r->epsilon_claimed;
        }
    }
    sl_svgplot_series es = {ex, ey, ne}, cs = {cx, cy, nc};
    char title[160];
    snprintf(title, sizeof title, "sealora privacy budget: %s (%s)", rep->server,
             sl_audit_ok(rep) ? "verified" : "NOT verified");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc = 0;
    if (!f) {
        rc = sl_err_errno(err, "%s: memory stream", path);
    } else {
        int bad = sl_svgplot_epsilon(f, &es, &cs, rep->budget, rep->delta, title);
        if (fclose(f) != 0 || bad)
            rc = sl_err_set(err, SL_EIO, "%s: cannot render the plot", path);
        else
            rc = sl_fs_write_atomic(path, buf, len, 0644, err);
    }
    free(buf);
    free(v);
    return rc;
}

static int run(int argc, char **argv, int is_report)
{
    if (sl_cli_wants_help(argc, argv)) {
        fputs(is_report ? usage_report : usage_verify, stdout);
        return 0;
    }
    sl_args a;
    sl_args_init(&a, argc, argv);
    const char *logdir = NULL, *cert = NULL, *hex = NULL, *hexfile = NULL, *budget_s = NULL,
               *delta_s = NULL, *svg = NULL, *dir = NULL, *ca = NULL, *crl = NULL;
    static const char *dirs[SL_CMD_CHECK_MAX_DIRS];
    size_t ndirs = 0;
    int json = 0, closed = 0;
    while (a.i < a.argc) {
        int r;
        if ((r = sl_args_value(&a, "--receipts", &dir))) {
            if (r < 0)
                return 2;
            if (ndirs == SL_CMD_CHECK_MAX_DIRS) {
                sl_cli_fail(NULL, "%s: more than %d --receipts folders", a.cmd,
                            SL_CMD_CHECK_MAX_DIRS);
                return 2;
            }
            dirs[ndirs++] = dir;
            continue;
        }
        if ((r = sl_args_value(&a, "--cert", &cert)) || (r = sl_args_value(&a, "--pubkey", &hex)) ||
            (r = sl_args_value(&a, "--ca", &ca)) || (r = sl_args_value(&a, "--crl", &crl)) ||
            (r = sl_args_value(&a, "--pubkey-file", &hexfile)) ||
            (r = sl_args_value(&a, "--budget", &budget_s)) ||
            (r = sl_args_value(&a, "--delta", &delta_s)) ||
            (is_report && (r = sl_args_value(&a, "--svg", &svg)))) {
            if (r < 0)
                return 2;
            continue;
        }
        if (sl_args_switch(&a, "--json")) {
            json = 1;
            continue;
        }
        if (sl_args_switch(&a, "--require-closed")) {
            closed = 1;
            continue;
        }
        if (a.argv[a.i][0] != '-' && !logdir) {
            logdir = a.argv[a.i++];
            continue;
        }
        return sl_args_unknown(&a);
    }
    if (!logdir) {
        sl_cli_fail(NULL, "%s: which log? give LOGDIR", a.cmd);
        fputs(is_report ? usage_report : usage_verify, stderr);
        return 2;
    }
    sl_audit_opts o;
    memset(&o, 0, sizeof o);
    if (budget_s && (sl_args_double(&a, "--budget", budget_s, &o.budget) || !(o.budget > 0))) {
        if (o.budget <= 0)
            sl_cli_fail(NULL, "%s: --budget must be above 0", a.cmd);
        return 2;
    }
    if (delta_s &&
        (sl_args_double(&a, "--delta", delta_s, &o.delta) || !(o.delta > 0 && o.delta < 1))) {
        if (!(o.delta > 0 && o.delta < 1))
            sl_cli_fail(NULL, "%s: --delta must be in (0, 1)", a.cmd);
        return 2;
    }
    if ((ca && !cert) || (crl && !ca)) {
        sl_cli_fail(NULL, "%s: --ca needs --cert, and --crl needs --ca", a.cmd);
        return 2;
    }
    uint8_t pk[32];
    sl_err err = {0};
    if (ca && check_issuer(cert, ca, crl, &err))
        return sl_cli_fail(NULL, "%s: %s", a.cmd, err.msg);
    if (sl_cmd_check_key(cert, hex, hexfile, pk, &err)) {
        sl_cli_fail(NULL, "%s: %s", a.cmd, err.msg);
        return err.code == SL_EINVAL && !cert && !hexfile ? 2 : 1;
    }
    o.pk = pk;
    o.receipt_dirs = dirs;
    o.nreceipt_dirs = ndirs;
    o.require_closed = closed;
    char path[PATH_MAX];
    if (sl_fs_join(path, sizeof path, logdir, SL_AUDITLOG_FILE, &err))
        return sl_cli_fail(NULL, "%s: %s", a.cmd, err.msg);
    sl_audit_report rep;
    if (sl_audit_check(logdir, &o, &rep, &err))
        return sl_cli_fail(NULL, "%s: %s", a.cmd, err.msg);
    int status = sl_audit_ok(&rep) ? 0 : 1;
    if (svg && write_svg(svg, &rep, &err)) {
        sl_cli_fail(NULL, "%s: %s", a.cmd, err.msg);
        status = 1;
    }
    if (json) {
        json_t *j = report_json(path, &rep, pk, is_report);
        char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15))
                    : NULL;
        json_decref(j);
        if (!s) {
            sl_audit_report_fini(&rep);
            return sl_cli_fail(NULL, "%s: out of memory", a.cmd);
        }
        printf("%s\n", s);
        free(s);
    } else {
        print_text(path, &rep, pk, is_report);
    }
    sl_audit_report_fini(&rep);
    return status;
}

int sl_cmd_check_verify(int argc, char **argv)
{
    return run(argc, argv, 0);
}

int sl_cmd_check_report(int argc, char **argv)
{
    return run(argc, argv, 1);
}
