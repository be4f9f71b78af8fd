#include "crypto/auditcheck.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fsutil.h"

#define E SL_AUDIT_ERROR
#define W SL_AUDIT_WARNING

/* A round_close as the replay sees it: its round entry and record. */
typedef struct closing {
    size_t ri;           /* index in rep->rounds */
    const json_t *rec;   /* borrowed from the scan */
} closing;

typedef struct rkey {
    char site[64];
    int64_t round;
} rkey;

static int rkey_cmp(const void *a, const void *b)
{
    const rkey *x = a, *y = b;
    int c = strcmp(x->site, y->site);
    if (c)
        return c;
    return (x->round > y->round) - (x->round < y->round);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int same_mech(const sl_acct_mech *a, const sl_acct_mech *b)
{
    return a->mode == b->mode && a->q == b->q && a->clip == b->clip && a->scale == b->scale &&
           a->sigma2_grid == b->sigma2_grid && a->central_var_grid == b->central_var_grid &&
           a->dim == b->dim && a->sampled == b->sampled && a->received == b->received &&
           a->survivors == b->survivors && a->threshold == b->threshold &&
           a->modulus_bits == b->modulus_bits && a->rounding_beta == b->rounding_beta;
}

static int64_t rec_round(const json_t *o)
{
    json_t *r = json_object_get(o, "round");
    return json_is_integer(r) && json_integer_value(r) >= 0 ? json_integer_value(r) : -1;
}

static const sl_auditlog_rec *rec_at_seq(const sl_auditlog_scan *s, uint64_t seq)
{
    if (seq < s->n && s->recs[seq].seq == (int64_t)seq)
        return &s->recs[seq];
    const sl_auditlog_rec *hit = NULL;
    for (size_t i = 0; i < s->n; i++)
        if (s->recs[i].seq == (int64_t)seq) {
            if (hit)
                return NULL; /* ambiguous: the chain findings say why */
            hit = &s->recs[i];
        }
    return hit;
}

static int round_push(sl_audit_report *rep, size_t *cap, const sl_audit_round *r)
{
    if (rep->nrounds == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        sl_audit_round *v = realloc(rep->rounds, nc * sizeof *v);
        if (!v)
            return -1;
        rep->rounds = v;
        *cap = nc;
    }
    rep->rounds[rep->nrounds++] = *r;
    return 0;
}

/* Charges mechanisms to the replayed accountant, remembering the RDP of the
 * last MEMO distinct ones: rounds tend to repeat a few parameter sets (the
 * same plan, a few survivor counts). */
enum { MEMO = 8 };
typedef struct charger {
    sl_acct *acct;
    double *rdp; /* SL_ACCT_MAX_ORDERS scratch, then MEMO memorised */
    sl_acct_mech memo[MEMO];
    size_t nmemo, next;
} charger;

/* m NULL: a cost that cannot be computed, counted as infinite. */
static void charge(charger *c, const sl_acct_mech *m, sl_err *err)
{
    double *rdp = c->rdp, *memo_rdp = c->rdp + SL_ACCT_MAX_ORDERS;
    size_t n = c->acct->n, hit = MEMO;
    for (size_t k = 0; m && k < c->nmemo && hit == MEMO; k++)
        if (same_mech(&c->memo[k], m))
            hit = k;
    if (!m) {
        for (size_t k = 0; k < n; k++)
            rdp[k] = INFINITY;
    } else if (hit < MEMO) {
        memcpy(rdp, memo_rdp + hit * SL_ACCT_MAX_ORDERS, n * sizeof *rdp);
    } else if (sl_acct_mech_rdp(m, c->acct->orders, n, rdp, err)) {
        for (size_t k = 0; k < n; k++)
            rdp[k] = INFINITY;
    } else {
        c->memo[c->next] = *m;
        memcpy(memo_rdp + c->next * SL_ACCT_MAX_ORDERS, rdp, n * sizeof *rdp);
        c->next = (c->next + 1) % MEMO;
        if (c->nmemo < MEMO)
            c->nmemo++;
    }
    sl_acct_add_rdp(c->acct, rdp, err);
}

/* The derived noise figures of a round whose mechanism is known. */
static void round_mech(sl_audit_round *ar, const sl_acct_mech *m, double target)
{
    sl_err e2;
    ar->has_mech = 1;
    ar->mech = *m;
    ar->z_target = target;
    if (sl_acct_mech_noise_multiplier(m, &ar->z_eff, &e2))
        ar->z_eff = NAN;
    if (sl_acct_mech_noise_vs_clip(m, &ar->z_clip, &e2))
        ar->z_clip = NAN;
}

/* After a round was charged (or not): the cumulative epsilon, the check of
 * the claim the log makes about it, the budget, and the round's entry in the
 * report. -1 when out of memory. */
static int account_round(sl_audit_report *rep, size_t *cap, const sl_acct *acct,
                         sl_audit_round *ar, int64_t line, int64_t seq, int *budget_reported,
                         sl_err *err)
{
    sl_audit_findings *f = &rep->findings;
    sl_acct_eps e;
    sl_acct_epsilon(acct, rep->delta, &e, err);
    ar->epsilon = e.epsilon;
    ar->order = e.order;
    ar->epsilon_classic = e.epsilon_classic;
    if ((ar->released || ar->abandoned) && !isnan(ar->epsilon_claimed) &&
        ar->epsilon_claimed < e.epsilon * (1 - 1e-9) - 1e-12)
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_CLAIM, line, seq, ar->round,
                     "round %lld: the log claims epsilon %.6g after this round; its logged "
                     "parameters give %.6g",
                     (long long)ar->round, ar->epsilon_claimed, e.epsilon);
    if (!*budget_reported && rep->budget > 0 && e.epsilon > rep->budget * (1 + 1e-12)) {
        *budget_reported = 1;
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_BUDGET, line, seq, ar->round,
                     "budget exceeded at round %lld: epsilon %.6g > %.6g at delta %g",
                     (long long)ar->round, e.epsilon, rep->budget, rep->delta);
    }
    return round_push(rep, cap, ar);
}

static int differs(double logged, double mine)
{
    return !(fabs(logged - mine) <= 1e-9 * fabs(mine) + 1e-12);
}

/* The record's derived values are never used; a mismatch with the
 * auditor's own is still worth saying (a bug, or an edited record). */
static void cross_check(sl_audit_findings *f, const sl_dp_round_record *raw,
                        const sl_acct_mech *m, int64_t line, int64_t seq, int64_t round)
{
    double l2, l1;
    sl_err e;
    if (sl_acct_ddg_sensitivity(m->clip, m->scale, m->dim, m->rounding_beta, &l2, &l1, &e))
        return;
    if (differs(raw->l2_sensitivity, l2))
        sl_audit_add(f, W, SL_AF_SEMANTIC, line, seq, round,
                     "round %lld: the logged l2_sensitivity_grid %.10g differs from the "
                     "recomputed %.10g (the logged value is not used)",
                     (long long)round, raw->l2_sensitivity, l2);
    if (m->mode == SL_ACCT_DISTRIBUTED && m->sigma2_grid > 0 && m->received > 0) {
        double tau = sl_acct_ddg_tau(sqrt(m->sigma2_grid), m->received);
        if (differs(raw->tau, tau))
            sl_audit_add(f, W, SL_AF_SEMANTIC, line, seq, round,
                         "round %lld: the logged tau %.10g differs from the recomputed %.10g "
                         "(the logged value is not used)",
                         (long long)round, raw->tau, tau);
    }
}

/* Replays the records: configuration, rounds, mechanisms, epsilon. */
static int replay(const sl_auditlog_scan *s, const sl_audit_opts *o, sl_audit_report *rep,
                  closing **closings_out, size_t *nclosings_out, sl_err *err)
{
    sl_audit_findings *f = &rep->findings;
    const sl_auditlog_rec *R = s->recs;
    size_t cap = 0;
    closing *cl = calloc(s->n ? s->n : 1, sizeof *cl);
    sl_acct *acct = malloc(sizeof *acct);
    double *rdp = malloc(9 * SL_ACCT_MAX_ORDERS * sizeof *rdp); /* current + 8 memorised */
    if (!cl || !acct || !rdp) {
        free(cl);
        free(acct);
        free(rdp);
        return sl_err_set(err, SL_ENOMEM, "audit: out of memory");
    }
    sl_acct_init(acct);
    rep->mode = -1;
    rep->noise_multiplier = NAN;
    double log_budget = NAN, log_delta = NAN;
    if (s->n > 0 && R[0].obj && R[0].type && strcmp(R[0].type, "log_open") == 0) {
        json_t *b = json_object_get(R[0].obj, "budget");
        log_budget = json_number_value(json_object_get(b, "epsilon"));
        log_delta = json_number_value(json_object_get(b, "delta"));
        json_t *z = json_object_get(R[0].obj, "noise_multiplier");
        if (json_is_number(z))
            rep->noise_multiplier = json_number_value(z);
        const char *name = json_string_value(json_object_get(R[0].obj, "server"));
        snprintf(rep->server, sizeof rep->server, "%s", name ? name : "?");
        const char *mode = json_string_value(json_object_get(R[0].obj, "mode"));
        rep->mode = mode && strcmp(mode, "distributed") == 0 ? SL_ACCT_DISTRIBUTED
                    : mode && strcmp(mode, "central") == 0  ? SL_ACCT_CENTRAL
                                                            : -1;
        const char *grid = json_string_value(json_object_get(R[0].obj, "orders"));
        if (!grid || strcmp(grid, SL_ACCT_GRID_NAME) != 0)
            sl_audit_add(f, W, SL_AF_SEMANTIC, 1, 0, -1,
                         "the server accounted on grid '%.40s'; the auditor recomputes on %s",
                         grid ? grid : "(none)", SL_ACCT_GRID_NAME);
        if (!(log_budget > 0) || !(log_delta > 0 && log_delta < 1) ||
            !(rep->noise_multiplier > 0))
            sl_audit_add(f, E, SL_AF_FORMAT, 1, 0, -1,
                         "the log_open record lacks a valid budget (epsilon, delta) or "
                         "noise_multiplier");
    } else {
        sl_audit_add(f, E, SL_AF_FORMAT, 1, -1, -1,
                     "the log does not start with a log_open record: its promise is unknown");
    }
    rep->budget = o->budget > 0 ? o->budget : log_budget;
    rep->delta = o->delta > 0 ? o->delta : log_delta;
    if (!(rep->delta > 0 && rep->delta < 1))
        rep->delta = 1e-5; /* reported above; keep computing something */
    if (o->budget > 0 && log_budget > 0 && o->budget != log_budget)
        sl_audit_add(f, W, SL_AF_SEMANTIC, 1, 0, -1,
                     "checking against budget %g, while the log promised %g", o->budget,
                     log_budget);

    int64_t last_closed = -1, open = -1;
    int64_t open_line = 0;
    int budget_reported = 0;
    /* Mechanisms seen per round, until its round_close. */
    int64_t mech_round = -1;
    sl_acct_mech mech;
    memset(&mech, 0, sizeof mech);
    double mech_target = NAN;
    int have_mech = 0;
    /* The worst case the server planned for the round in flight; it is what
     * a round abandoned at a restart costs. Kept across log_resume. */
    int64_t plan_round = -1;
    sl_acct_mech plan;
    memset(&plan, 0, sizeof plan);
    double plan_target = NAN;
    charger ch;
    memset(&ch, 0, sizeof ch);
    ch.acct = acct;
    ch.rdp = rdp;
    size_t nclosing = 0;
    for (size_t i = 0; i < s->n; i++) {
        const sl_auditlog_rec *r = &R[i];
        if (!r->obj || !r->type)
            continue;
        int64_t line = (int64_t)i + 1, round = rec_round(r->obj);
        const char *t = r->type;
        if (strcmp(t, "log_open") == 0 && i > 0) {
            sl_audit_add(f, E, SL_AF_SEMANTIC, line, r->seq, -1,
                         "a second log_open record at line %lld", (long long)line);
        } else if (strcmp(t, "round_start") == 0) {
            if (round < 0)
                sl_audit_add(f, E, SL_AF_FORMAT, line, r->seq, -1,
                             "round_start at line %lld has no valid round", (long long)line);
            else if (round <= last_closed)
                sl_audit_add(f, E, SL_AF_SEMANTIC, line, r->seq, round,
                             "round %lld starts again at line %lld after round %lld closed",
                             (long long)round, (long long)line, (long long)last_closed);
            if (open >= 0 && open != round)
                sl_audit_add(f, W, SL_AF_SEMANTIC, open_line, -1, open,
                             "round %lld started (line %lld) and never closed (interrupted)",
                             (long long)open, (long long)open_line);
            open = round;
            open_line = line;
            have_mech = 0; /* a retried round logs its parameters again */
            plan_round = -1;
        } else if (strcmp(t, "log_resume") == 0) {
            /* Nothing of an interrupted round was released (the round_close
             * comes first). If the server had planned it, it charges it with
             * a round_abandoned record next; otherwise nothing was sent. */
            if (open >= 0)
                sl_audit_add(f, W, SL_AF_SEMANTIC, open_line, -1, open,
                             "round %lld started (line %lld) and was interrupted by a restart",
                             (long long)open, (long long)open_line);
            open = -1;
            have_mech = 0;
        } else if (strcmp(t, "mechanism_planned") == 0) {
            sl_acct_mech m;
            sl_dp_round_record raw;
            if (round < 0 || round != open) {
                sl_audit_add(f, E, SL_AF_FORMAT, line, r->seq, round,
                             "mechanism_planned record at line %lld is not inside its round",
                             (long long)line);
            } else if (sl_auditlog_mech_decode(r->obj, &m, &raw, err)) {
                sl_audit_add(f, E, SL_AF_FORMAT, line, r->seq, round,
                             "mechanism_planned record of round %lld (line %lld): %s",
                             (long long)round, (long long)line, err->msg);
            } else {
                if (m.survivors > m.threshold || m.received > m.threshold)
                    sl_audit_add(f, E, SL_AF_SEMANTIC, line, r->seq, round,
                                 "round %lld: the planned mechanism counts %u survivors and %u "
                                 "inputs, more than the threshold %u: not the worst case",
                                 (long long)round, m.survivors, m.received, m.threshold);
                cross_check(f, &raw, &m, line, r->seq, round);
                plan = m;
                plan_round = round;
                plan_target = raw.sigma;
            }
        } else if (strcmp(t, "round_abandoned") == 0) {
            if (round < 0) {
                sl_audit_add(f, E, SL_AF_FORMAT, line, r->seq, -1,
                             "round_abandoned at line %lld has no valid round", (long long)line);
                continue;
            }
            if (round <= last_closed)
                sl_audit_add(f, E, SL_AF_SEMANTIC, line, r->seq, round,
                             "round %lld is abandoned at line %lld after round %lld closed",
                             (long long)round, (long long)line, (long long)last_closed);
            if (open == round)
                open = -1;
            last_closed = round > last_closed ? round : last_closed;
            sl_audit_round ar;
            memset(&ar, 0, sizeof ar);
            ar.round = round;
            ar.abandoned = 1;
            ar.close_seq = r->seq;
            ar.z_eff = ar.z_clip = ar.z_target = NAN;
            json_t *claimed = json_object_get(r->obj, "epsilon_charged");
            ar.epsilon_claimed = json_is_number(claimed) ? json_number_value(claimed) : NAN;
            if (plan_round == round) {
                round_mech(&ar, &plan, plan_target);
                charge(&ch, &plan, err);
            } else {
                sl_audit_add(f, E, SL_AF_SEMANTIC, line, r->seq, round,
                             "round %lld was abandoned without a mechanism_planned record: its "
                             "privacy cost cannot be computed (counted as infinite)",
                             (long long)round);
                charge(&ch, NULL, err);
            }
            plan_round = -1;
            rep->abandoned++;
            if (account_round(rep, &cap, acct, &ar, line, r->seq, &budget_reported, err)) {
                free(cl);
                free(acct);
                free(rdp);
                return sl_err_set(err, SL_ENOMEM, "audit: out of memory");
            }
        } else if (strcmp(t, "mechanism") == 0) {
            sl_acct_mech m;
            sl_dp_round_record raw;
            if (round < 0) {
                sl_audit_add(f, E, SL_AF_FORMAT, line, r->seq, -1,
                             "mechanism record at line %lld has no valid round", (long long)line);
            } else if (sl_auditlog_mech_decode(r->obj, &m, &raw, err)) {
                sl_audit_add(f, E, SL_AF_FORMAT, line, r->seq, round,
                             "mechanism record of round %lld (line %lld): %s", (long long)round,
                             (long long)line, err->msg);
            } else if (have_mech && mech_round == round) {
                sl_audit_add(f, E, SL_AF_SEMANTIC, line, r->seq, round,
                             "a second mechanism record for round %lld at line %lld",
                             (long long)round, (long long)line);
            } else {
                mech = m;
                mech_round = round;
                have_mech = 1;
                mech_target = raw.sigma;
                cross_check(f, &raw, &m, line, r->seq, round);
                if (rep->mode >= 0 && m.mode != rep->mode)
                    sl_audit_add(f, W, SL_AF_SEMANTIC, line, r->seq, round,
                                 "round %lld ran in %s mode; the log was opened for %s mode",
                                 (long long)round,
                                 m.mode == SL_ACCT_DISTRIBUTED ? "distributed" : "central",
                                 rep->mode == SL_ACCT_DISTRIBUTED ? "distributed" : "central");
            }
        } else if (strcmp(t, "round_close") == 0) {
            if (round < 0) {
                sl_audit_add(f, E, SL_AF_FORMAT, line, r->seq, -1,
                             "round_close at line %lld has no valid round", (long long)line);
                continue;
            }
            if (round <= last_closed)
                sl_audit_add(f, E, SL_AF_SEMANTIC, line, r->seq, round,
                             "round %lld closes again at line %lld (after round %lld)",
                             (long long)round, (long long)line, (long long)last_closed);
            if (open >= 0 && open != round)
                sl_audit_add(f, W, SL_AF_SEMANTIC, open_line, -1, open,
                             "round %lld started (line %lld) and never closed (interrupted)",
                             (long long)open, (long long)open_line);
            open = -1;
            last_closed = round > last_closed ? round : last_closed;
            sl_audit_round ar;
            memset(&ar, 0, sizeof ar);
            ar.round = round;
            ar.close_seq = r->seq;
            ar.z_eff = ar.z_clip = ar.z_target = NAN;
            ar.epsilon_claimed = NAN;
            const char *status = json_string_value(json_object_get(r->obj, "status"));
            json_t *contrib = json_object_get(r->obj, "contributors");
            ar.released = status && strcmp(status, "released") == 0;
            if (!status || (!ar.released && strcmp(status, "aborted") != 0))
                sl_audit_add(f, E, SL_AF_FORMAT, line, r->seq, round,
                             "round_close of round %lld: status is neither released nor aborted",
                             (long long)round);
            if (!json_is_array(contrib))
                sl_audit_add(f, E, SL_AF_FORMAT, line, r->seq, round,
                             "round_close of round %lld: contributors is not a list",
                             (long long)round);
            ar.ncontrib = json_array_size(contrib);
            json_t *claimed = json_object_get(r->obj, "epsilon");
            if (json_is_number(claimed))
                ar.epsilon_claimed = json_number_value(claimed);
            if (have_mech && mech_round == round)
                round_mech(&ar, &mech, mech_target);
            if (ar.released) {
                rep->released++;
                if (!ar.has_mech) {
                    sl_audit_add(f, E, SL_AF_SEMANTIC, line, r->seq, round,
                                 "round %lld was released without a mechanism record: its "
                                 "privacy cost cannot be computed (counted as infinite)",
                                 (long long)round);
                } else {
                    if (ar.ncontrib != mech.received)
                        sl_audit_add(f, E, SL_AF_SEMANTIC, line, r->seq, round,
                                     "round %lld: the mechanism record says %u masked inputs were "
                                     "received, round_close lists %zu contributors",
                                     (long long)round, mech.received, ar.ncontrib);
                    if (mech.survivors < mech.threshold)
                        sl_audit_add(f, E, SL_AF_SEMANTIC, line, r->seq, round,
                                     "round %lld was released with %u survivors, below the "
                                     "threshold %u",
                                     (long long)round, mech.survivors, mech.threshold);
                    if (rep->noise_multiplier > 0 &&
                        !(ar.z_clip >= rep->noise_multiplier * (1 - 1e-9)))
                        sl_audit_add(f, E, SL_AF_NOISE, line, r->seq, round,
                                     "round %lld: the noise present was %.6g times the clip norm, "
                                     "below the configured noise multiplier %.6g (%u of %u "
                                     "sampled sites survived)",
                                     (long long)round, ar.z_clip, rep->noise_multiplier,
                                     mech.survivors, mech.sampled);
                    if (rep->noise_multiplier > 0 &&
                        !(mech_target >= rep->noise_multiplier * (1 - 1e-9)))
                        sl_audit_add(f, E, SL_AF_NOISE, line, r->seq, round,
                                     "round %lld was planned with noise multiplier %.6g, below "
                                     "the configured %.6g",
                                     (long long)round, mech_target, rep->noise_multiplier);
                }
                charge(&ch, ar.has_mech ? &mech : NULL, err);
            }
            plan_round = -1;
            if (account_round(rep, &cap, acct, &ar, line, r->seq, &budget_reported, err)) {
                free(cl);
                free(acct);
                free(rdp);
                return sl_err_set(err, SL_ENOMEM, "audit: out of memory");
            }
            cl[nclosing].ri = rep->nrounds - 1;
            cl[nclosing].rec = r->obj;
            nclosing++;
        }
    }
    if (open >= 0 && plan_round == open) {
        /* In flight when the log ends: the server charges it at its next
         * start unless it closes first; never count less than that. */
        sl_audit_add(f, W, SL_AF_SEMANTIC, open_line, -1, open,
                     "round %lld started (line %lld) and is in flight at the end of the log: "
                     "counted as spent with its planned worst case",
                     (long long)open, (long long)open_line);
        sl_audit_round ar;
        memset(&ar, 0, sizeof ar);
        ar.round = open;
        ar.abandoned = 2;
        ar.close_seq = -1;
        ar.z_eff = ar.z_clip = ar.z_target = ar.epsilon_claimed = NAN;
        round_mech(&ar, &plan, plan_target);
        charge(&ch, &plan, err);
        rep->abandoned++;
        if (account_round(rep, &cap, acct, &ar, open_line, -1, &budget_reported, err)) {
            free(cl);
            free(acct);
            free(rdp);
            return sl_err_set(err, SL_ENOMEM, "audit: out of memory");
        }
    } else if (open >= 0) {
        sl_audit_add(f, W, SL_AF_SEMANTIC, open_line, -1, open,
                     "round %lld started (line %lld) and never closed (interrupted)",
                     (long long)open, (long long)open_line);
    }
    sl_acct_epsilon(acct, rep->delta, &rep->final, err);
    rep->budget_held = rep->budget > 0 && rep->final.epsilon <= rep->budget * (1 + 1e-12);
    const sl_auditlog_rec *last = s->n ? &R[s->n - 1] : NULL;
    rep->closed = last && last->type && strcmp(last->type, "log_close") == 0;
    if (!rep->closed && s->n)
        sl_audit_add(f, o->require_closed ? E : W, SL_AF_OPEN, (int64_t)s->n, last->seq, -1,
                     "the log does not end with log_close: the server is still running or "
                     "stopped, or records after seq %lld were cut off (receipts would tell)",
                     (long long)last->seq);
    free(acct);
    free(rdp);
    sl_err_clear(err);
    *closings_out = cl;
    *nclosings_out = nclosing;
    return 0;
}

static const closing *find_round(const closing *cl, size_t n, const sl_audit_report *rep,
                                 int64_t round)
{
    for (size_t i = 0; i < n; i++)
        if (rep->rounds[cl[i].ri].round == round)
            return &cl[i];
    return NULL;
}

/* Reads every *.json of one folder. */
static int list_json(const char *dir, char ***names, size_t *n, sl_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return sl_err_errno(err, "%s: open receipt folder", dir);
    char **v = NULL;
    size_t k = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0 || e->d_name[0] == '.')
            continue;
        if (k == SL_AUDIT_MAX_RECEIPTS_PER_DIR) {
            rc = sl_err_set(err, SL_ELIMIT, "%s: more than %u receipts", dir,
                            SL_AUDIT_MAX_RECEIPTS_PER_DIR);
            break;
        }
        if (k == cap) {
            cap = cap ? 2 * cap : 64;
            char **nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", dir);
                break;
            }
            v = nv;
        }
        if (!(v[k] = strdup(e->d_name))) {
            rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", dir);
            break;
        }
        k++;
    }
    closedir(d);
    if (rc) {
        for (size_t i = 0; i < k; i++)
            free(v[i]);
        free(v);
        return rc;
    }
    if (k)
        qsort(v, k, sizeof *v, name_cmp);
    *names = v;
    *n = k;
    return 0;
}

static void check_receipts(const sl_auditlog_scan *s, const sl_audit_opts *o,
                           sl_audit_report *rep, const closing *cl, size_t ncl, sl_err *err)
{
    sl_audit_findings *f = &rep->findings;
    rkey *seen = NULL;
    size_t nseen = 0, capseen = 0;
    for (size_t d = 0; d < o->nreceipt_dirs; d++) {
        const char *dir = o->receipt_dirs[d];
        char **names = NULL;
        size_t nn = 0;
        if (list_json(dir, &names, &nn, err)) {
            sl_audit_add(f, E, SL_AF_RECEIPT, 0, -1, -1, "%s", err->msg);
            continue;
        }
        for (size_t i = 0; i < nn; i++) {
            char path[PATH_MAX];
            int fits = snprintf(path, sizeof path, "%s/%s", dir, names[i]) < (int)sizeof path;
            free(names[i]);
            if (!fits)
                continue;
            uint8_t *buf = NULL;
            size_t len = 0;
            sl_receipt r;
            rep->receipts++;
            if (sl_fs_read_all(path, SL_AUDITLOG_MAX_RECEIPT, &buf, &len, err) ||
                sl_auditlog_receipt_verify(buf, len, o->pk, &r, err)) {
                sl_audit_add(f, E, SL_AF_RECEIPT, 0, -1, -1, "receipt %s: %s", path, err->msg);
                free(buf);
                continue;
            }
            free(buf);
            if (nseen == capseen) {
                capseen = capseen ? 2 * capseen : 64;
                rkey *nv = realloc(seen, capseen * sizeof *nv);
                if (!nv) {
                    sl_audit_add(f, E, SL_AF_RECEIPT, 0, -1, -1, "out of memory reading receipts");
                    break;
                }
                seen = nv;
            }
            snprintf(seen[nseen].site, sizeof seen[nseen].site, "%s", r.site);
            seen[nseen].round = r.round;
            nseen++;
            if (s->n == 0 || sodium_memcmp(r.log_id, s->recs[0].hash, 32) != 0) {
                sl_audit_add(f, E, SL_AF_RECEIPT, 0, -1, r.round,
                             "receipt %s (round %lld, site %s) belongs to another log (its log_id "
                             "is not the hash of this log's first record)",
                             path, (long long)r.round, r.site);
                continue;
            }
            const closing *c = find_round(cl, ncl, rep, r.round);
            int64_t lastseq = s->n ? s->recs[s->n - 1].seq : -1;
            if (r.log_seq >= s->n && (int64_t)r.log_seq > lastseq) {
                sl_audit_add(f, E, SL_AF_CUT, (int64_t)s->n, (int64_t)r.log_seq, r.round,
                             "receipt %s (round %lld, site %s) was given for record seq %llu, but "
                             "the log ends at seq %lld: records were cut off%s",
                             path, (long long)r.round, r.site, (unsigned long long)r.log_seq,
                             (long long)lastseq,
                             c ? "" : "; the log does not show this round at all");
                continue;
            }
            const sl_auditlog_rec *x = rec_at_seq(s, r.log_seq);
            if (!x || sodium_memcmp(x->hash, r.log_hash, 32) != 0) {
                sl_audit_add(f, E, SL_AF_RECEIPT, x ? (int64_t)(x - s->recs) + 1 : 0,
                             (int64_t)r.log_seq, r.round,
                             "receipt %s (round %lld, site %s): log record seq %llu differs from "
                             "the one the server signed in the receipt: the log was rewritten",
                             path, (long long)r.round, r.site, (unsigned long long)r.log_seq);
                continue;
            }
            if (!c) {
                sl_audit_add(f, E, SL_AF_RECEIPT, (int64_t)(x - s->recs) + 1, x->seq, r.round,
                             "receipt %s is for round %lld, which the log does not show", path,
                             (long long)r.round);
                continue;
            }
            if (x->obj != c->rec)
                sl_audit_add(f, E, SL_AF_RECEIPT, (int64_t)(x - s->recs) + 1, x->seq, r.round,
                             "receipt %s (round %lld) points at seq %llu, which is not round "
                             "%lld's closing record",
                             path, (long long)r.round, (unsigned long long)r.log_seq,
                             (long long)r.round);
            /* The site among the round's contributors, with the same input. */
            json_t *contrib = json_object_get(c->rec, "contributors");
            size_t k;
            json_t *e;
            int found = 0, same = 0;
            char hex[65];
            sl_auditlog_hex(r.input, 32, hex);
            json_array_foreach(contrib, k, e)
            {
                const char *site = json_string_value(json_object_get(e, "site"));
                if (site && strcmp(site, r.site) == 0) {
                    found = 1;
                    const char *in = json_string_value(json_object_get(e, "input"));
                    same = in && strcmp(in, hex) == 0;
                }
            }
            if (!found)
                sl_audit_add(f, E, SL_AF_RECEIPT, (int64_t)(x - s->recs) + 1, x->seq, r.round,
                             "site %s is missing from round %lld's contributors, though it holds "
                             "receipt %s",
                             r.site, (long long)r.round, path);
            else if (!same)
                sl_audit_add(f, E, SL_AF_RECEIPT, (int64_t)(x - s->recs) + 1, x->seq, r.round,
                             "round %lld lists site %s with another input digest than its "
                             "receipt %s",
                             (long long)r.round, r.site, path);
        }
        free(names);
    }
    /* Contributors whose site keeps receipts but has none for the round. */
    if (nseen) {
        qsort(seen, nseen, sizeof *seen, rkey_cmp);
        for (size_t i = 0; i < ncl; i++) {
            const sl_audit_round *ar = &rep->rounds[cl[i].ri];
            if (!ar->released)
                continue;
            size_t k;
            json_t *e;
            json_array_foreach(json_object_get(cl[i].rec, "contributors"), k, e)
            {
                rkey key;
                memset(&key, 0, sizeof key);
                const char *site = json_string_value(json_object_get(e, "site"));
                if (!site)
                    continue;
                snprintf(key.site, sizeof key.site, "%s", site);
                key.round = -1;
                /* Does this site keep receipts at all? */
                size_t lo = 0, hi = nseen;
                while (lo < hi) {
                    size_t mid = (lo + hi) / 2;
                    if (rkey_cmp(&seen[mid], &key) < 0)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                if (lo == nseen || strcmp(seen[lo].site, key.site) != 0)
                    continue;
                key.round = ar->round;
                if (!bsearch(&key, seen, nseen, sizeof *seen, rkey_cmp))
                    sl_audit_add(f, W, SL_AF_RECEIPT, 0, ar->close_seq, ar->round,
                                 "site %s contributed to round %lld but holds no receipt for it",
                                 key.site, (long long)ar->round);
            }
        }
    }
    free(seen);
    sl_err_clear(err);
}

int sl_audit_check_buf(const uint8_t *buf, size_t len, const sl_audit_opts *o,
                       sl_audit_report *rep, sl_err *err)
{
    memset(rep, 0, sizeof *rep);
    if (!o->pk)
        return sl_err_set(err, SL_EINVAL, "audit: no server key given");
    if (o->nreceipt_dirs > SL_AUDIT_MAX_RECEIPT_DIRS)
        return sl_err_set(err, SL_ELIMIT, "audit: %zu receipt folders exceed %u",
                          o->nreceipt_dirs, SL_AUDIT_MAX_RECEIPT_DIRS);
    sl_auditlog_scan s;
    int rc = sl_auditlog_scan_buf(buf, len, o->pk, &s, err);
    if (rc)
        return rc;
    rep->findings = s.findings; /* take the chain findings */
    memset(&s.findings, 0, sizeof s.findings);
    rep->nrecords = s.n;
    if (s.n)
        memcpy(rep->log_id, s.recs[0].hash, 32);
    closing *cl = NULL;
    size_t ncl = 0;
    rc = replay(&s, o, rep, &cl, &ncl, err);
    if (!rc)
        check_receipts(&s, o, rep, cl, ncl, err);
    free(cl);
    sl_auditlog_scan_fini(&s);
    if (rc) {
        sl_audit_report_fini(rep);
        return rc;
    }
    return 0;
}

int sl_audit_check(const char *logdir, const sl_audit_opts *o, sl_audit_report *rep, sl_err *err)
{
    char path[PATH_MAX];
    int rc = sl_fs_join(path, sizeof path, logdir, SL_AUDITLOG_FILE, err);
    if (rc)
        return rc;
    uint8_t *buf = NULL;
    size_t len = 0;
    if ((rc = sl_fs_read_all(path, SL_AUDITLOG_MAX_BYTES, &buf, &len, err)))
        return rc;
    rc = sl_audit_check_buf(buf, len, o, rep, err);
    free(buf);
    return rc;
}

void sl_audit_report_fini(sl_audit_report *rep)
{
    if (!rep)
        return;
    free(rep->rounds);
    sl_audit_findings_fini(&rep->findings);
    memset(rep, 0, sizeof *rep);
}

const char *sl_audit_round_status(const sl_audit_round *r)
{
    return r->released       ? "released"
           : r->abandoned == 1 ? "abandoned"
           : r->abandoned == 2 ? "in flight"
                               : "aborted";
}

int sl_audit_ok(const sl_audit_report *rep)
{
    return rep->findings.errors == 0 && rep->budget_held;
}
