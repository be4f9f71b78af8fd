/* crypto/auditcheck.h - the auditor's decision: from the server's log, the
 * sites' receipts and the server's public key alone, whether the log is
 * intact and the promised privacy budget held (docs/audit.md, "What the
 * auditor checks").
 *
 * It scans the chain (crypto/auditlog), replays the rounds, recomputes
 * epsilon from the logged raw mechanism parameters with the accountant
 * (never trusting a logged epsilon), flags rounds whose effective noise was
 * below the configured one or whose claimed epsilon is too low, compares
 * with the budget, and reconciles every receipt with the log. Every problem
 * is a finding naming the line, seq or round.
 *
 * Ownership: a report owns its rounds and findings until
 * sl_audit_report_fini. Reentrant; nothing global. */
#ifndef SL_AUDITCHECK_H
#define SL_AUDITCHECK_H
#include <stddef.h>
#include <stdint.h>

#include "crypto/accountant.h"
#include "crypto/auditlog.h"
#include "shared/err.h"

/* Most receipt folders and receipts per folder read. */
#define SL_AUDIT_MAX_RECEIPT_DIRS 4096u
#define SL_AUDIT_MAX_RECEIPTS_PER_DIR 1000000u

typedef struct sl_audit_opts {
    const uint8_t *pk;                /* server Ed25519 public key, 32 bytes */
    const char *const *receipt_dirs;  /* borrowed; folders of receipt-*.json */
    size_t nreceipt_dirs;
    double budget;      /* > 0: the budget to check against; 0: the log's promise */
    double delta;       /* > 0: the delta to use; 0: the log's */
    int require_closed; /* a log not ending with log_close is an error (else a warning) */
} sl_audit_opts;

/* One round as the log shows it, with the auditor's own numbers. */
typedef struct sl_audit_round {
    int64_t round;
    int released;          /* round_close status */
    int abandoned;         /* charged without a round_close: 1 abandoned at a
                            * restart (round_abandoned), 2 in flight at the
                            * end of the log; mech is then the planned worst
                            * case */
    int has_mech;          /* a valid mechanism record was logged */
    sl_acct_mech mech;
    size_t ncontrib;
    int64_t close_seq;      /* seq of its round_close / round_abandoned; -1 if none */
    double z_eff;           /* Gaussian-equivalent noise multiplier against the
                             * rounded sensitivity (accounting); NAN without mechanism */
    double z_clip;          /* noise present relative to the clip norm (what a
                             * configured multiplier means); NAN without mechanism */
    double z_target;        /* the round's own planned multiplier; NAN if none */
    double epsilon;         /* recomputed, all released rounds up to this one */
    double order;           /* order achieving it */
    double epsilon_classic; /* classic conversion */
    double epsilon_claimed; /* what the log says; NAN if absent */
} sl_audit_round;

typedef struct sl_audit_report {
    char server[64];          /* from log_open */
    uint8_t log_id[32];       /* SHA-256 of the first line */
    int mode;                 /* configured mode, -1 if unknown */
    double budget, delta;     /* in effect (options or log) */
    double noise_multiplier;  /* configured z from the log, NAN if unknown */
    size_t nrecords;
    int closed;               /* ends with log_close */
    sl_audit_round *rounds;   /* owned; every round_close and round_abandoned in
                               * log order, then a planned round still in flight */
    size_t nrounds, released, abandoned;
    sl_acct_eps final;        /* over all released and abandoned rounds */
    size_t receipts;          /* receipts read */
    int budget_held;
    sl_audit_findings findings;
} sl_audit_report;

/* Checks LOGDIR/audit.jsonl. Returns an error only when the check cannot
 * run (no log, unreadable, over the limits, bad options); otherwise 0 and a
 * report whose findings say what is wrong. rep is valid (and must be
 * finalised) whenever 0 is returned. */
int sl_audit_check(const char *logdir, const sl_audit_opts *o, sl_audit_report *rep, sl_err *err);
/* The same on a log already in memory (receipts still come from folders). */
int sl_audit_check_buf(const uint8_t *buf, size_t len, const sl_audit_opts *o,
                       sl_audit_report *rep, sl_err *err);
void sl_audit_report_fini(sl_audit_report *rep);
/* "released", "aborted", "abandoned" or "in flight". */
const char *sl_audit_round_status(const sl_audit_round *r);
/* 1 when no finding is an error and the budget held. */
int sl_audit_ok(const sl_audit_report *rep);

#endif
