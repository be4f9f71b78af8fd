#include "audit/cmd_epsilon.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/args.h"
#include "shared/cli.h"
#include "shared/fsutil.h"

static const char *usage_text =
    "usage: sealora-audit epsilon --q Q --sigma S --steps T [--delta D] [--orders GRID] [--json]\n"
    "       sealora-audit epsilon --schedule FILE [--delta D] [--orders GRID] [--json]\n"
    "\n"
    "Epsilon at delta of the Poisson-subsampled Gaussian mechanism (sampling\n"
    "probability Q, noise multiplier S = noise stddev / L2 sensitivity) run T\n"
    "times, or of the heterogeneous rounds listed in FILE (one 'q sigma [steps]'\n"
    "per line, '#' comments). Renyi DP over a grid of orders, converted with the\n"
    "improved conversion (Balle et al. 2020; Canonne, Kamath, Steinke 2020) and\n"
    "the classic one (Mironov 2017).\n"
    "\n"
    "  --delta D      target delta (default 1e-5)\n"
    "  --orders GRID  fine (default, " SL_ACCT_GRID_NAME "), opacus, tf, or a\n"
    "                 comma-separated list of orders > 1\n"
    "  --json         one JSON object: epsilon, delta, order, epsilon_classic,\n"
    "                 order_classic, steps, rounds, orders\n";

int sl_cmd_epsilon_grid(const char *spec, sl_acct *a, sl_err *err)
{
    double o[SL_ACCT_MAX_ORDERS];
    size_t n = 0;
    if (!spec || strcmp(spec, "fine") == 0) {
        sl_acct_init(a);
        return 0;
    }
    if (strcmp(spec, "opacus") == 0) {
        /* Opacus RDPAccountant.DEFAULT_ALPHAS */
        for (int x = 1; x < 100; x++)
            o[n++] = 1 + x / 10.0;
        for (int x = 12; x < 64; x++)
            o[n++] = x;
    } else if (strcmp(spec, "tf") == 0) {
        /* TF Privacy DEFAULT_RDP_ORDERS */
        static const double head[] = {1.25, 1.5, 1.75, 2., 2.25, 2.5, 3., 3.5, 4., 4.5};
        for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
            o[n++] = head[i];
        for (int x = 5; x < 64; x++)
            o[n++] = x;
        o[n++] = 128;
        o[n++] = 256;
        o[n++] = 512;
    } else {
        const char *p = spec;
        while (*p) {
            if (n == SL_ACCT_MAX_ORDERS)
                return sl_err_set(err, SL_ELIMIT, "--orders: more than %d orders",
                                  SL_ACCT_MAX_ORDERS);
            char *end = NULL;
            errno = 0;
            double v = strtod(p, &end);
            if (end == p || errno || (*end && *end != ','))
                return sl_err_set(err, SL_EINVAL,
                                  "--orders: '%.40s' is not fine, opacus, tf or a list of numbers",
                                  spec);
            o[n++] = v;
            p = *end ? end + 1 : end;
        }
    }
    return sl_acct_init_orders(a, o, n, err);
}

int sl_cmd_epsilon_schedule(const char *text, size_t len, const char *name, sl_acct *a,
                            uint64_t *rounds, sl_err *err)
{
    sl_acct tmp = *a;
    uint64_t nr = 0;
    size_t line = 0, off = 0;
    while (off < len) {
        line++;
        size_t end = off;
        while (end < len && text[end] != '\n')
            end++;
        size_t n = end - off;
        const char *s = text + off;
        off = end + (end < len);
        if (memchr(s, '\0', n))
            return sl_err_set(err, SL_EFORMAT, "%s:%zu: NUL byte in a text file", name, line);
        char buf[256];
        if (n >= sizeof buf)
            return sl_err_set(err, SL_EFORMAT, "%s:%zu: line longer than %zu bytes", name, line,
                              sizeof buf - 1);
        memcpy(buf, s, n);
        buf[n] = 0;
        char *hash = strchr(buf, '#');
        if (hash)
            *hash = 0;
        for (char *c = buf; *c; c++)
            if (*c == ',' || *c == '\t' || *c == '\r')
                *c = ' ';
        double v[3];
        int k = 0;
        char *p = buf;
        for (;;) {
            while (*p == ' ')
                p++;
            if (!*p)
                break;
            if (k == 3)
                return sl_err_set(err, SL_EFORMAT, "%s:%zu: more than 3 fields (q sigma [steps])",
                                  name, line);
            char *e = NULL;
            errno = 0;
            v[k] = strtod(p, &e);
            if (e == p || errno || (*e && *e != ' ') || !isfinite(v[k]))
                return sl_err_set(err, SL_EFORMAT, "%s:%zu: field %d '%.20s' is not a number",
                                  name, line, k + 1, p);
            k++;
            p = e;
        }
        if (k == 0)
            continue;
        if (k == 1)
            return sl_err_set(err, SL_EFORMAT, "%s:%zu: expected 'q sigma [steps]'", name, line);
        uint64_t steps = 1;
        if (k == 3) {
            if (!(v[2] >= 0 && v[2] <= 1e15) || floor(v[2]) != v[2])
                return sl_err_set(err, SL_EFORMAT, "%s:%zu: steps %g is not an integer >= 0",
                                  name, line, v[2]);
            steps = (uint64_t)v[2];
        }
        if (++nr > SL_CMD_EPSILON_MAX_ROUNDS)
            return sl_err_set(err, SL_ELIMIT, "%s: more than %u rounds", name,
                              SL_CMD_EPSILON_MAX_ROUNDS);
        int rc = sl_acct_add_sgm(&tmp, v[0], v[1], steps, err);
        if (rc)
            return sl_err_prefix(err, "%s:%zu", name, line);
    }
    if (nr == 0)
        return sl_err_set(err, SL_EFORMAT, "%s: no rounds (expected 'q sigma [steps]' lines)",
                          name);
    *a = tmp;
    *rounds = nr;
    return 0;
}

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

int sl_cmd_epsilon_run(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    sl_args a;
    sl_args_init(&a, argc, argv);
    const char *q_s = NULL, *sigma_s = NULL, *steps_s = NULL, *delta_s = NULL, *grid = NULL,
               *sched = NULL;
    int json = 0;
    while (a.i < a.argc) {
        int r;
        if ((r = sl_args_value(&a, "--q", &q_s)) || (r = sl_args_value(&a, "--sigma", &sigma_s)) ||
            (r = sl_args_value(&a, "--steps", &steps_s)) ||
            (r = sl_args_value(&a, "--delta", &delta_s)) ||
            (r = sl_args_value(&a, "--orders", &grid)) ||
            (r = sl_args_value(&a, "--schedule", &sched))) {
            if (r < 0)
                return 2;
            continue;
        }
        if (sl_args_switch(&a, "--json")) {
            json = 1;
            continue;
        }
        return sl_args_unknown(&a);
    }
    double delta = 1e-5;
    if (delta_s && sl_args_double(&a, "--delta", delta_s, &delta))
        return 2;
    sl_err err = {0};
    static sl_acct acct; /* 8 KiB: keep it off the stack */
    if (sl_cmd_epsilon_grid(grid, &acct, &err)) {
        sl_cli_fail(NULL, "epsilon: %s", err.msg);
        return 2;
    }
    uint64_t rounds = 0;
    if (sched) {
        if (q_s || sigma_s || steps_s) {
            sl_cli_fail(NULL, "epsilon: --schedule replaces --q, --sigma and --steps");
            return 2;
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        if (sl_fs_read_all(sched, SL_CMD_EPSILON_MAX_SCHEDULE, &buf, &len, &err))
            return sl_cli_fail(NULL, "epsilon: %s", err.msg);
        int rc = sl_cmd_epsilon_schedule((const char *)buf, len, sched, &acct, &rounds, &err);
        free(buf);
        if (rc)
            return sl_cli_fail(NULL, "epsilon: %s", err.msg);
    } else {
        if (!q_s || !sigma_s || !steps_s) {
            sl_cli_fail(NULL, "epsilon: give --q, --sigma and --steps, or --schedule FILE");
            fputs(usage_text, stderr);
            return 2;
        }
        double q, sigma;
        uint64_t steps;
        if (sl_args_double(&a, "--q", q_s, &q) || sl_args_double(&a, "--sigma", sigma_s, &sigma) ||
            sl_args_u64(&a, "--steps", steps_s, &steps))
            return 2;
        if (sl_acct_add_sgm(&acct, q, sigma, steps, &err)) {
            sl_cli_fail(NULL, "epsilon: %s", err.msg);
            return 2;
        }
        rounds = 1;
    }
    sl_acct_eps e;
    if (sl_acct_epsilon(&acct, delta, &e, &err)) {
        sl_cli_fail(NULL, "epsilon: --delta: %s", err.msg);
        return 2;
    }
    const char *grid_name = !grid ? SL_ACCT_GRID_NAME : grid;
    if (json) {
        json_t *o = json_pack("{s:o, s:f, s:o, s:o, s:o, s:I, s:I, s:s}", "epsilon",
                              num_or_null(e.epsilon), "delta", e.delta, "order",
                              num_or_null(isfinite(e.epsilon) ? e.order : NAN),
                              "epsilon_classic", num_or_null(e.epsilon_classic),
                              "order_classic",
                              num_or_null(isfinite(e.epsilon_classic) ? e.order_classic : NAN), "steps", (json_int_t)acct.steps,
                              "rounds", (json_int_t)rounds, "orders", grid_name);
        char *s = o ? json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
        json_decref(o);
        if (!s)
            return sl_cli_fail(NULL, "epsilon: out of memory");
        printf("%s\n", s);
        free(s);
    } else {
        printf("epsilon %.6g at delta %g (order %g)\n", e.epsilon, e.delta, e.order);
        printf("classic conversion: epsilon %.6g (order %g)\n", e.epsilon_classic,
               e.order_classic);
        printf("%llu round%s, %llu steps, orders %s (%zu)\n", (unsigned long long)rounds,
               rounds == 1 ? "" : "s", (unsigned long long)acct.steps, grid_name, acct.n);
    }
    return 0;
}
