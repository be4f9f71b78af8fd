/* crypto/auditlog.h - the server's tamper-evident audit log and the
 * receipts it gives the sites (format: docs/audit.md).
 *
 * The log is DIR/audit.jsonl: JSON Lines, one record per event, each line
 * the canonical JSON of its record (compact, sorted keys, ASCII). Every
 * record carries its position `seq` and `prev`, the SHA-256 of the previous
 * line; the log_open, log_resume, log_close, round_close, mechanism_planned
 * and round_abandoned records carry `sig`, an Ed25519 signature by the
 * server key. A round's closing record is fsync'd before sl_auditlog_close_round returns, so a result is never
 * released before the budget it spends is on disk. Records never hold
 * secrets, updates or data: the API takes counts, names and digests.
 *
 * After each round the server gives every contributing site a signed
 * receipt (round, site, digest of its masked input, seq and hash of the
 * round's closing record); sites store them and an auditor reconciles them
 * with the log (crypto/auditcheck).
 *
 * The reading side (sl_auditlog_scan_buf) parses a log and diagnoses its
 * chain: edited, deleted, inserted, reordered or truncated records and bad
 * signatures become findings naming the line and seq.
 *
 * Ownership: an sl_auditlog is a heap object owned by its caller until
 * sl_auditlog_close / sl_auditlog_free; it keeps a copy of the secret key in
 * locked memory (sodium_malloc) wiped on free. Scans own their records.
 * Thread-safety: one thread per sl_auditlog; the log file is locked
 * (flock) against a second writer process. Scans are reentrant. */
#ifndef SL_AUDITLOG_H
#define SL_AUDITLOG_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/accountant.h"
#include "crypto/dp_record.h"
#include "shared/err.h"

#define SL_AUDITLOG_FILE "audit.jsonl"
#define SL_AUDITLOG_VERSION 1
/* Largest record (one line, newline excluded), largest log read, most
 * records: a log over the limits is refused, never read in part. */
#define SL_AUDITLOG_MAX_RECORD (64u * 1024u)
#define SL_AUDITLOG_MAX_BYTES (1u << 30)
#define SL_AUDITLOG_MAX_RECORDS (1u << 24)
#define SL_AUDITLOG_MAX_RECEIPT (16u * 1024u)
/* Most contributors listed in one round_close. */
#define SL_AUDITLOG_MAX_CONTRIB 4096u
/* sl_auditlog_open flag: move a torn last line aside (to
 * audit.jsonl.torn.<offset>) and record it in the log_resume record,
 * instead of refusing to append. */
#define SL_AUDITLOG_REPAIR_TORN 1u

typedef struct sl_auditlog sl_auditlog;

/* What the log promises, written into its signed first record. */
typedef struct sl_auditlog_config {
    const char *server;      /* name shown in reports (e.g. "server") */
    double epsilon_budget;   /* promised epsilon, > 0 */
    double delta;            /* its delta, in (0, 1) */
    double noise_multiplier; /* configured Gaussian-equivalent z, > 0 */
    int mode;                /* SL_ACCT_DISTRIBUTED or SL_ACCT_CENTRAL */
} sl_auditlog_config;

/* A position in the log: the record's seq and the SHA-256 of its line. */
typedef struct sl_auditlog_pos {
    uint64_t seq;
    uint8_t hash[32];
} sl_auditlog_pos;

/* A site whose masked input is in a round's sum. */
typedef struct sl_auditlog_contrib {
    const char *site;  /* borrowed; a site name ([a-z0-9][a-z0-9_-]{0,62}) */
    uint8_t input[32]; /* SHA-256 of the site's masked input as received */
} sl_auditlog_contrib;

/* ---- writing ---------------------------------------------------------- */

/* Creates DIR/audit.jsonl (refused if it exists; DIR is created) and
 * writes the signed log_open record. sk is the libsodium Ed25519 secret
 * key (seed || public key); it is copied. */
int sl_auditlog_create(sl_auditlog **out, const char *dir, const uint8_t sk[64],
                       const sl_auditlog_config *cfg, sl_err *err);
/* Reopens DIR/audit.jsonl after a restart or crash: verifies the whole
 * chain and every signature against sk's public key and refuses, naming the
 * record, anything but an unsigned tail (what a crash mid-round leaves) or,
 * with SL_AUDITLOG_REPAIR_TORN, a torn last line. Nothing is truncated
 * silently: a repaired torn line is kept in a side file and described in
 * the signed log_resume record appended here. */
int sl_auditlog_open(sl_auditlog **out, const char *dir, const uint8_t sk[64], unsigned flags,
                     sl_err *err);
/* Appends an event record of `type` ([a-z][a-z0-9_]{0,31}, not one of the
 * types with their own call below) with the members of `fields` (an object,
 * borrowed; may be NULL; must not use seq, prev, type, time, sig). A member
 * "round" (integer) ties it to a round. Written but not fsync'd; pos (may be
 * NULL) receives its position. On failure nothing is written, unless the
 * write itself failed: then the log refuses further appends (reopen it). */
int sl_auditlog_append(sl_auditlog *log, const char *type, const json_t *fields,
                       sl_auditlog_pos *pos, sl_err *err);
/* The same, signed and fsync'd (key events, refusals that must not be
 * lost). */
int sl_auditlog_append_signed(sl_auditlog *log, const char *type, const json_t *fields,
                              sl_auditlog_pos *pos, sl_err *err);
/* Appends the round's mechanism record: the secure aggregation's
 * parameter record (crypto/dp_record, embedded as member "dp") after
 * checking that the accountant can read it. */
int sl_auditlog_mechanism(sl_auditlog *log, const sl_dp_round_record *r, sl_err *err);
/* Appends the signed, fsync'd mechanism_planned record of a round about to
 * run: its worst case (no more survivors or inputs than the threshold), the
 * mechanism a round abandoned at a crash is charged with. Written before
 * anything of the round leaves the server. */
int sl_auditlog_mechanism_planned(sl_auditlog *log, const sl_dp_round_record *r, sl_err *err);
/* Appends the signed, fsync'd round_abandoned record: the round in flight at
 * a crash, charged with its planned mechanism; epsilon is the server's
 * cumulative epsilon after charging it. */
int sl_auditlog_round_abandoned(sl_auditlog *log, int64_t round, double epsilon,
                                const char *reason, sl_err *err);
/* Appends the signed round_close record and fsyncs the log: released
 * (1) or aborted (0), the contributors (sites whose inputs are in the sum),
 * the epsilon spent so far as the server computed it, and extra members
 * (borrowed, may be NULL). Receipts for this round can then be made. */
int sl_auditlog_close_round(sl_auditlog *log, int64_t round, int released,
                            const sl_auditlog_contrib *c, size_t nc, double epsilon,
                            const json_t *extra, sl_auditlog_pos *pos, sl_err *err);
/* A signed receipt for `site` in the last closed round: canonical JSON in a
 * malloc'd, NUL-terminated buffer (free()). SL_ENOTFOUND if the site did not
 * contribute to it. */
int sl_auditlog_receipt(sl_auditlog *log, const char *site, char **text, size_t *len,
                        sl_err *err);
int sl_auditlog_sync(sl_auditlog *log, sl_err *err);
/* Appends the signed log_close record, fsyncs and frees log (also on
 * failure). */
int sl_auditlog_close(sl_auditlog *log, sl_err *err);
/* Frees without a close record, as a crash would leave the log. NULL ok. */
void sl_auditlog_free(sl_auditlog *log);
/* Position the next record will take. */
uint64_t sl_auditlog_next_seq(const sl_auditlog *log);
/* Last closed round, -1 if none; the round left open by a crash (a
 * round_start without round_close before the last reopen), -1 if none. */
int64_t sl_auditlog_last_round(const sl_auditlog *log);
int64_t sl_auditlog_open_round(const sl_auditlog *log);

/* ---- receipts (site side) -------------------------------------------- */

typedef struct sl_receipt {
    int64_t round;
    char site[64];
    uint8_t input[32];    /* digest of the site's masked input */
    uint64_t log_seq;     /* seq of the round_close record */
    uint8_t log_hash[32]; /* SHA-256 of that record's line */
    uint8_t log_id[32];   /* SHA-256 of the log's first line */
} sl_receipt;

/* Parses and verifies a receipt against the server's public key. out is
 * untouched on failure. */
int sl_auditlog_receipt_verify(const uint8_t *text, size_t len, const uint8_t pk[32],
                               sl_receipt *out, sl_err *err);
/* Verifies then stores a receipt as DIR/receipt-<round>.json (atomic,
 * durable). */
int sl_auditlog_receipt_store(const char *dir, const uint8_t *text, size_t len,
                              const uint8_t pk[32], sl_err *err);

/* ---- reading and diagnosis -------------------------------------------- */

enum { SL_AUDIT_WARNING = 1, SL_AUDIT_ERROR = 2 };

/* Finding codes; `kind` is the word reports show. */
enum {
    SL_AF_FORMAT = 1,   /* "format": not a record of this format */
    SL_AF_EDITED,       /* "edited": content, hash link or signature broken */
    SL_AF_DELETED,      /* "deleted": seqs missing */
    SL_AF_INSERTED,     /* "inserted": a record no other refers to */
    SL_AF_REORDERED,    /* "reordered": seqs out of order */
    SL_AF_TORN,         /* "truncated": last line incomplete */
    SL_AF_UNSIGNED_TAIL,/* "truncated": last record unsigned */
    SL_AF_UNSIGNED,     /* "unsigned": a record that must be signed is not */
    SL_AF_KEY,          /* "key": log opened with another key */
    SL_AF_SEMANTIC,     /* "log": records inconsistent with each other */
    SL_AF_RECEIPT,      /* "receipt": receipt and log disagree */
    SL_AF_NOISE,        /* "noise": effective noise below configured */
    SL_AF_CLAIM,        /* "claim": logged epsilon below recomputed */
    SL_AF_BUDGET,       /* "budget": budget exceeded */
    SL_AF_OPEN,         /* "truncated": no log_close at the end */
    SL_AF_CUT,          /* "truncated": a receipt points past the end */
};

typedef struct sl_audit_finding {
    int severity;     /* SL_AUDIT_ERROR or SL_AUDIT_WARNING */
    int code;         /* SL_AF_* */
    const char *kind; /* static word for the code */
    int64_t line;     /* 1-based line of audit.jsonl, 0 if none */
    int64_t seq;      /* record seq, -1 if none */
    int64_t round;    /* round, -1 if none */
    char msg[320];
} sl_audit_finding;

/* Findings kept in full; beyond this only the counts grow (a log of
 * millions of forged lines must not take gigabytes to report). */
#define SL_AUDIT_MAX_FINDINGS 1000u

typedef struct sl_audit_findings {
    sl_audit_finding *v; /* owned, n <= SL_AUDIT_MAX_FINDINGS */
    size_t n, cap;
    size_t errors, warnings;
} sl_audit_findings;

/* Adds a finding. Past SL_AUDIT_MAX_FINDINGS, or when memory runs out, it
 * is counted in errors / warnings but not kept: errors + warnings - n were
 * omitted. */
void sl_audit_add(sl_audit_findings *f, int severity, int code, int64_t line, int64_t seq,
                  int64_t round, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
void sl_audit_findings_fini(sl_audit_findings *f);

/* One line of a scanned log. */
typedef struct sl_auditlog_rec {
    size_t off, len;  /* the line in the buffer, newline excluded */
    uint8_t hash[32]; /* SHA-256 of the line */
    json_t *obj;      /* owned; NULL if the line is not a record object */
    int64_t seq;      /* -1 if missing or invalid */
    int has_prev;
    uint8_t prev[32];
    const char *type; /* borrowed from obj; NULL if missing */
    int signed_;      /* carries a sig member */
    int sig_ok;       /* its signature verifies */
} sl_auditlog_rec;

typedef struct sl_auditlog_scan {
    sl_auditlog_rec *recs; /* owned, n complete lines */
    size_t n;
    size_t torn_off, torn_len; /* bytes after the last newline */
    int tail_unsigned;         /* the last record carries no signature */
    sl_audit_findings findings;
} sl_auditlog_scan;

/* Parses the log in buf and diagnoses it against the server key pk: every
 * problem becomes a finding. Returns an error only when it cannot run
 * (limits, memory); the findings say whether the log is sound. */
int sl_auditlog_scan_buf(const uint8_t *buf, size_t len, const uint8_t pk[32],
                         sl_auditlog_scan *out, sl_err *err);
void sl_auditlog_scan_fini(sl_auditlog_scan *s);

/* The accountant's view of a parameter record: its raw fields only (the
 * derived l2_sensitivity_grid, tau and noise_multiplier_effective are
 * recomputed, never read). An unknown sampling rate counts as q = 1. */
int sl_auditlog_mech_from_dp(const sl_dp_round_record *r, sl_acct_mech *m, sl_err *err);
/* Decodes a mechanism record: its "dp" member (sl_dp_record_from_json,
 * whose round must equal the record's) into raw (may be NULL) and m. */
int sl_auditlog_mech_decode(const json_t *rec, sl_acct_mech *m, sl_dp_round_record *raw,
                            sl_err *err);
/* Hex helpers: 2n lowercase hex characters <-> n bytes. */
int sl_auditlog_unhex(const char *hex, uint8_t *out, size_t n);
void sl_auditlog_hex(const uint8_t *in, size_t n, char *out);

#endif
