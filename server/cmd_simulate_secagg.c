#include "server/cmd_simulate_secagg.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/dp.h"
#include "crypto/dp_record.h"
#include "crypto/secagg_sim.h"
#include "shared/cli.h"

static const char usage[] =
    "usage: %s simulate-secagg --sites N --dim D [--dropout F] [options]\n"
    "\n"
    "Runs one secure-aggregation round (key advertisement, share keys, masked input,\n"
    "unmasking) with N simulated sites in this process and checks that the unmasked\n"
    "sum equals the plain modular sum of the contributors' vectors bit for bit.\n"
    "\n"
    "  --sites N          sites in the cohort (2..10000)\n"
    "  --dim D            length of each site's update\n"
    "  --dropout F        fraction of sites that drop out, and the tolerance the round\n"
    "                     is configured for (default 0)\n"
    "  --drop-phase P     when they drop: mixed (default), shares, input, unmask, late\n"
    "  --bits B           modulus 2^B: 32 (default) or 64\n"
    "  --degree K         neighbours per site (default: by cohort and dropout)\n"
    "  --no-dp            aggregate random words instead of DP-encoded updates\n"
    "  --sigma S          noise multiplier for the threshold (default 1)\n"
    "  --clip C           L2 clip norm (default 1)\n"
    "  --central          the server adds the noise (central mode)\n"
    "  --seed N           seed of every random choice (default 1)\n"
    "  --json             print one JSON object\n"
    "\n"
    "Exit status 0 when the sum is exact, 1 when it is not or the round aborted.\n";

static int bad(const char *flag, const char *v, const char *why)
{
    fprintf(stderr, "%s simulate-secagg: %s: '%s' %s\n", sl_cli_prog(), flag, v, why);
    return 2;
}

static int parse_u64(const char *flag, const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!v || !*v || *v == '-')
        return bad(flag, v ? v : "", "is not a non-negative integer");
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || x > max) {
        char why[64];
        snprintf(why, sizeof why, "is not an integer in 0..%llu", (unsigned long long)max);
        return bad(flag, v, why);
    }
    *out = x;
    return 0;
}

static int parse_double(const char *flag, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    if (!v || !*v)
        return bad(flag, "", "is not a number");
    double x = strtod(v, &end);
    if (errno || *end || !isfinite(x) || x < lo || x > hi) {
        char why[96];
        snprintf(why, sizeof why, "is not a number in [%g, %g]", lo, hi);
        return bad(flag, v, why);
    }
    *out = x;
    return 0;
}

/* Each site's update: seeded random floats, every third site far above the
 * clip norm so that clipping matters. */
typedef struct dp_ctx {
    const sl_dp_plan *plan;
    uint64_t seed;
    float *delta; /* dim floats of scratch */
} dp_ctx;

static void site_delta(const dp_ctx *c, uint32_t i, float *x)
{
    uint8_t key[32] = {0}, buf[4096];
    memcpy(key, &c->seed, sizeof c->seed);
    memcpy(key + 8, &i, sizeof i);
    key[12] = 0xd1;
    sl_dp_rng r;
    sl_dp_rng_init_seeded(&r, key);
    float scale = (float)(i % 3 == 0 ? 10.0 : 0.5) * (float)c->plan->p.clip /
                  (float)sqrt((double)c->plan->p.dim);
    for (uint32_t j = 0; j < c->plan->p.dim; j += sizeof buf / 4) {
        uint32_t m = c->plan->p.dim - j < sizeof buf / 4 ? c->plan->p.dim - j : sizeof buf / 4;
        sl_dp_rng_bytes(&r, buf, (size_t)m * 4);
        for (uint32_t k = 0; k < m; k++) {
            uint32_t w;
            memcpy(&w, buf + 4 * k, 4);
            x[j + k] = scale * (float)((double)(w >> 8) / (1 << 23) - 1.0) * 1.7f;
        }
    }
    sl_dp_rng_fini(&r);
}

static int dp_input(void *ctx, uint32_t i, void *out, sl_err *err)
{
    dp_ctx *c = ctx;
    site_delta(c, i, c->delta);
    uint8_t key[32] = {0};
    memcpy(key, &c->seed, sizeof c->seed);
    memcpy(key + 8, &i, sizeof i);
    key[12] = 0xd2;
    sl_dp_rng r; /* seeded, so the same words come out every call */
    sl_dp_rng_init_seeded(&r, key);
    int rc = sl_dp_encode(c->plan, c->delta, out, &r, NULL, err);
    sl_dp_rng_fini(&r);
    return rc;
}

static const char *const phase_names[] = {"advertise", "share_keys", "masked_input", "unmask"};

int sl_cmd_simulate_secagg(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        printf(usage, sl_cli_prog());
        return 0;
    }
    uint64_t sites = 0, dim = 0, bits = 32, degree = 0, seed = 1;
    double dropout = 0, sigma = 1, clip = 1;
    int json = 0, use_dp = 1, central = 0, rc;
    const char *phase = "mixed";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        const char *eq = strchr(a, '=');
        char flag[32];
        size_t fl = eq ? (size_t)(eq - a) : strlen(a);
        if (fl >= sizeof flag)
            fl = sizeof flag - 1;
        memcpy(flag, a, fl);
        flag[fl] = 0;
        int takes = !strcmp(flag, "--sites") || !strcmp(flag, "--dim") ||
                    !strcmp(flag, "--dropout") || !strcmp(flag, "--bits") ||
                    !strcmp(flag, "--degree") || !strcmp(flag, "--seed") ||
                    !strcmp(flag, "--sigma") || !strcmp(flag, "--clip") ||
                    !strcmp(flag, "--drop-phase");
        if (takes) {
            v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) {
                fprintf(stderr, "%s simulate-secagg: %s needs a value\n", sl_cli_prog(), flag);
                return 2;
            }
        }
        if (!strcmp(flag, "--sites"))
            rc = parse_u64(flag, v, SL_SECAGG_MAX_SITES, &sites);
        else if (!strcmp(flag, "--dim"))
            rc = parse_u64(flag, v, SL_DP_MAX_DIM, &dim);
        else if (!strcmp(flag, "--dropout"))
            rc = parse_double(flag, v, 0, 0.99, &dropout);
        else if (!strcmp(flag, "--bits"))
            rc = parse_u64(flag, v, 64, &bits);
        else if (!strcmp(flag, "--degree"))
            rc = parse_u64(flag, v, SL_SECAGG_MAX_SITES, &degree);
        else if (!strcmp(flag, "--seed"))
            rc = parse_u64(flag, v, UINT64_MAX, &seed);
        else if (!strcmp(flag, "--sigma"))
            rc = parse_double(flag, v, 0, 1e6, &sigma);
        else if (!strcmp(flag, "--clip"))
            rc = parse_double(flag, v, 1e-30, 1e30, &clip);
        else if (!strcmp(flag, "--drop-phase"))
            rc = (phase = v, 0);
        else if (!strcmp(a, "--json"))
            rc = (json = 1, 0);
        else if (!strcmp(a, "--no-dp"))
            rc = (use_dp = 0, 0);
        else if (!strcmp(a, "--central"))
            rc = (central = 1, 0);
        else {
            fprintf(stderr, "%s simulate-secagg: unknown option '%s' (see --help)\n",
                    sl_cli_prog(), a);
            return 2;
        }
        if (rc)
            return rc;
    }
    if (sites < 2 || dim < 1) {
        fprintf(stderr, "%s simulate-secagg: --sites (>= 2) and --dim (>= 1) are required\n",
                sl_cli_prog());
        return 2;
    }
    if (bits != 32 && bits != 64)
        return bad("--bits", bits == 0 ? "0" : "that", "must be 32 or 64");
    int when;
    if (!strcmp(phase, "mixed"))
        when = -1;
    else if (!strcmp(phase, "shares"))
        when = SL_SECAGG_SIM_BEFORE_SHARES;
    else if (!strcmp(phase, "input"))
        when = SL_SECAGG_SIM_BEFORE_INPUT;
    else if (!strcmp(phase, "unmask"))
        when = SL_SECAGG_SIM_BEFORE_UNMASK;
    else if (!strcmp(phase, "late"))
        when = SL_SECAGG_SIM_LATE_UNMASK;
    else
        return bad("--drop-phase", phase, "is not mixed, shares, input, unmask or late");
    if (sodium_init() < 0)
        return sl_cli_fail(NULL, "simulate-secagg: libsodium failed to initialise");

    sl_err err = {0};
    sl_secagg_sim_opts o;
    memset(&o, 0, sizeof o);
    sl_dp_plan plan;
    sl_dp_params p;
    memset(&p, 0, sizeof p);
    uint32_t words = (uint32_t)dim;
    if (use_dp) {
        p.dim = (uint32_t)dim;
        p.clip = clip;
        p.sigma = sigma;
        p.beta = SL_DP_DEFAULT_BETA;
        p.mode = central ? SL_DP_CENTRAL : SL_DP_DISTRIBUTED;
        p.bits = (unsigned)bits;
        p.scale = 1;
        for (int i = 0; i < 32; i++)
            p.rotation_seed[i] = (uint8_t)(seed >> (8 * (i % 8))) ^ (uint8_t)(0x3c + i);
        uint32_t block;
        words = sl_dp_layout((uint32_t)dim, &block); /* the DP plan's padded length */
    }
    if (sl_secagg_config_default(&o.cfg, (uint32_t)sites, words, dropout, (unsigned)bits, &err)) {
        fprintf(stderr, "%s simulate-secagg: %s\n", sl_cli_prog(), err.msg);
        return 2;
    }
    if (degree) {
        o.cfg.degree = (uint32_t)degree;
        uint32_t k = sl_secagg_config_degree(&o.cfg, (uint32_t)sites);
        o.cfg.share_threshold = (k + 1) / 2 + 1;
        if (sl_secagg_config_validate(&o.cfg, &err)) {
            fprintf(stderr, "%s simulate-secagg: %s\n", sl_cli_prog(), err.msg);
            return 2;
        }
    }
    dp_ctx dctx = {&plan, seed, NULL};
    if (use_dp) {
        p.threshold = o.cfg.threshold;
        if (sl_dp_choose_scale(&p, (uint32_t)sites, SL_DP_MAX_OVERFLOW_PROB, &p.scale, &err) ||
            sl_dp_plan_init(&plan, &p, &err) ||
            sl_secagg_config_check_dp(&o.cfg, &plan, SL_DP_MAX_OVERFLOW_PROB, &err)) {
            fprintf(stderr, "%s simulate-secagg: %s\n", sl_cli_prog(), err.msg);
            return 2;
        }
        if (!(dctx.delta = malloc(dim * sizeof *dctx.delta)))
            return sl_cli_fail(NULL, "simulate-secagg: out of memory for dim %llu",
                               (unsigned long long)dim);
        o.input = dp_input;
        o.input_ctx = &dctx;
    }
    o.round = 1;
    o.seed = seed;
    o.first_id = 1;
    uint8_t *drop = calloc(sites, 1);
    void *sum = malloc((size_t)words * (bits / 8));
    float *out = use_dp ? malloc(dim * sizeof *out) : NULL;
    double *truth = use_dp ? calloc(dim, sizeof *truth) : NULL;
    int status = 1;
    json_t *js = NULL;
    if (!drop || !sum || (use_dp && (!out || !truth))) {
        sl_cli_fail(NULL, "simulate-secagg: out of memory");
        goto done;
    }
    uint32_t ndrop = (uint32_t)llround(dropout * (double)sites);
    sl_dp_rng pick;
    sl_dp_rng_init_u64(&pick, seed ^ 0xd509u);
    for (uint32_t d = 0; d < ndrop;) {
        uint32_t i = (uint32_t)sl_dp_rng_below(&pick, sites);
        if (drop[i])
            continue;
        drop[i] = (uint8_t)(when > 0 ? when : SL_SECAGG_SIM_BEFORE_SHARES + (int)(d % 4));
        d++;
    }
    sl_dp_rng_fini(&pick);
    o.drop = drop;
    sl_secagg_sim_result r;
    if (sl_secagg_sim_run(&o, sum, &r, &err)) {
        sl_cli_fail(NULL, "simulate-secagg: %s", err.msg);
        goto done;
    }
    /* DP: decode and compare with the true sum of the clipped updates. */
    double rms = 0, expect_sd = 0;
    sl_dp_round_record rec;
    if (use_dp && !r.aborted) {
        if (plan.central_noise) {
            sl_dp_rng nr;
            sl_dp_rng_init_system(&nr);
            rc = sl_dp_add_central_noise(&plan, sum, &nr, &err);
            sl_dp_rng_fini(&nr);
            if (rc) {
                sl_cli_fail(NULL, "simulate-secagg: %s", err.msg);
                goto done;
            }
        }
        if (sl_dp_decode(&plan, sum, out, &err)) {
            sl_cli_fail(NULL, "simulate-secagg: %s", err.msg);
            goto done;
        }
        for (uint32_t i = 0; i < sites; i++) {
            if (drop[i] == SL_SECAGG_SIM_BEFORE_SHARES || drop[i] == SL_SECAGG_SIM_BEFORE_INPUT)
                continue;
            double pre;
            site_delta(&dctx, i, dctx.delta);
            if (sl_dp_clip(dctx.delta, dim, clip, &pre, &err)) {
                sl_cli_fail(NULL, "simulate-secagg: %s", err.msg);
                goto done;
            }
            for (uint64_t j = 0; j < dim; j++)
                truth[j] += dctx.delta[j];
        }
        for (uint64_t j = 0; j < dim; j++)
            rms += (out[j] - truth[j]) * (out[j] - truth[j]);
        rms = sqrt(rms / (double)dim);
        double var = plan.site_noise ? r.contributors * sl_dp_dgauss_variance(&plan.site_dg)
                                     : plan.central_noise ? sl_dp_dgauss_variance(&plan.central_dg)
                                                          : 0;
        expect_sd = sqrt(var) / p.scale;
        sl_dp_record_fill(&rec, &plan, o.round, -1, (uint32_t)sites, r.contributors, r.answered);
    }
    if (json) {
        js = json_pack("{s:b, s:b, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:{},"
                       " s:f, s:f, s:f, s:f, s:f}",
                       "exact", !r.aborted && r.exact, "aborted", r.aborted,
                       "sites", (json_int_t)sites, "dim", (json_int_t)dim,
                       "words", (json_int_t)words, "bits", (json_int_t)bits, "dropout", dropout,
                       "dropped", (json_int_t)ndrop, "survivors", (json_int_t)r.contributors,
                       "answered", (json_int_t)r.answered, "degree", (json_int_t)o.cfg.degree,
                       "share_threshold", (json_int_t)o.cfg.share_threshold,
                       "threshold", (json_int_t)o.cfg.threshold, "seconds",
                       "client_mask_seconds", r.client_mask_seconds,
                       "server_unmask_seconds", r.server_finish_seconds,
                       "bytes_per_site", r.bytes_sent_per_site + r.bytes_received_per_site,
                       "bytes_sent_per_site", r.bytes_sent_per_site,
                       "bytes_received_per_site", r.bytes_received_per_site);
        if (!js) {
            sl_cli_fail(NULL, "simulate-secagg: cannot build the JSON output");
            goto done;
        }
        json_t *secs = json_object_get(js, "seconds");
        for (int i = 0; i < SL_SECAGG_SIM_PHASES; i++)
            json_object_set_new(secs, phase_names[i], json_real(r.seconds[i]));
        json_object_set_new(secs, "total", json_real(r.seconds_total));
        if (r.aborted)
            json_object_set_new(js, "abort_reason", json_string(r.abort_msg));
        if (use_dp && !r.aborted) {
            json_t *dp = NULL;
            if (sl_dp_record_to_json(&rec, &dp, &err)) {
                sl_cli_fail(NULL, "simulate-secagg: %s", err.msg);
                goto done;
            }
            json_object_set_new(dp, "rms_error", json_real(rms));
            json_object_set_new(dp, "noise_sd", json_real(expect_sd));
            json_object_set_new(js, "dp", dp);
        } else {
            json_object_set_new(js, "dp", json_null());
        }
        char *text = json_dumps(js, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        if (!text) {
            sl_cli_fail(NULL, "simulate-secagg: cannot print the JSON output");
            goto done;
        }
        puts(text);
        free(text);
    } else {
        printf("simulate-secagg: %llu sites, dim %llu (%u words mod 2^%llu), dropout %g "
               "(%u sites, %s)\n", (unsigned long long)sites, (unsigned long long)dim, words,
               (unsigned long long)bits, dropout, ndrop, phase);
        printf("graph: degree %u, share threshold %u of %u; threshold %u, min cohort %u\n",
               o.cfg.degree < sites - 1 ? o.cfg.degree : (uint32_t)sites - 1,
               o.cfg.share_threshold,
               (o.cfg.degree < sites - 1 ? o.cfg.degree : (uint32_t)sites - 1) + 1,
               o.cfg.threshold, o.cfg.min_cohort);
        static const char *const label[] = {"advertise keys", "share keys", "masked input",
                                            "unmasking"};
        for (int i = 0; i < SL_SECAGG_SIM_PHASES; i++)
            printf("  %-16s %10.4f s\n", label[i], r.seconds[i]);
        printf("  %-16s %10.4f s\n", "total", r.seconds_total);
        printf("client masking: %.4f s per site; server unmasking: %.4f s\n",
               r.client_mask_seconds, r.server_finish_seconds);
        printf("bytes per site: %.0f sent, %.0f received\n", r.bytes_sent_per_site,
               r.bytes_received_per_site);
        if (r.aborted) {
            printf("round aborted: %s\n", r.abort_msg);
        } else {
            printf("survivors: %u masked inputs in the sum, %u answered unmasking, %u messages "
                   "refused\n", r.contributors, r.answered, r.refused);
            printf("sum exact: %s\n", r.exact ? "yes" : "NO");
            if (use_dp)
                printf("dp: %s mode, grid scale %g, noise multiplier %g (effective %.4g), rms error "
                       "%.4g per coordinate (noise sd %.4g)\n",
                       central ? "central" : "distributed", p.scale, sigma,
                       rec.noise_multiplier_effective, rms, expect_sd);
        }
    }
    status = !r.aborted && r.exact ? 0 : 1;
    if (status && !json)
        fprintf(stderr, "%s simulate-secagg: %s\n", sl_cli_prog(),
                r.aborted ? "the round aborted" : "the sum is not exact");
done:
    json_decref(js);
    free(drop);
    free(sum);
    free(out);
    free(truth);
    free(dctx.delta);
    return status;
}
