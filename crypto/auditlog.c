#include "crypto/auditlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto/identity.h"
#include "shared/fsutil.h"

/* Canonical form: what the writer emits and the reader demands. */
#define CANON (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17))
/* Domain separation of the two kinds of signed messages. */
static const char DOMAIN_LOG[] = "sealora audit log v1\n";
static const char DOMAIN_RECEIPT[] = "sealora audit receipt v1\n";

struct sl_auditlog {
    int fd;
    char dir[PATH_MAX];
    char path[PATH_MAX];
    uint8_t *sk; /* sodium_malloc'd, 64 bytes */
    uint8_t pk[32];
    uint8_t log_id[32];
    uint64_t next_seq;
    uint8_t last_hash[32];
    int failed; /* a write failed half-way: refuse further appends */
    double delta;
    int64_t last_round, open_round;
    uint64_t close_seq;
    uint8_t close_hash[32];
    json_t *close_contrib; /* owned: contributors of the last round_close */
};

/* ---- small helpers ------------------------------------------------------ */

void sl_auditlog_hex(const uint8_t *in, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, in, n);
}

int sl_auditlog_unhex(const char *hex, uint8_t *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return -1;
    size_t got = 0;
    if (sodium_hex2bin(out, n, hex, 2 * n, NULL, &got, NULL) != 0 || got != n)
        return -1;
    return 0;
}

static char *canon(const json_t *o, size_t *len)
{
    char *s = json_dumps(o, CANON);
    if (s && len)
        *len = strlen(s);
    return s;
}

static int type_ok(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n > 32 || t[0] < 'a' || t[0] > 'z')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '_'))
            return 0;
    return 1;
}

static int reserved_type(const char *t)
{
    static const char *const r[] = {"log_open",  "log_resume",        "log_close",
                                    "round_close", "mechanism",       "mechanism_planned",
                                    "round_abandoned"};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (strcmp(t, r[i]) == 0)
            return 1;
    return 0;
}

static int must_be_signed(const char *t)
{
    return t && (strcmp(t, "log_open") == 0 || strcmp(t, "log_resume") == 0 ||
                 strcmp(t, "log_close") == 0 || strcmp(t, "round_close") == 0 ||
                 strcmp(t, "mechanism_planned") == 0 || strcmp(t, "round_abandoned") == 0);
}

static void now_rfc3339(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Signs DOMAIN || canonical(o) (o must not hold "sig" yet) and adds "sig". */
static int sign_obj(json_t *o, const char *domain, const uint8_t *sk, sl_err *err)
{
    size_t n = 0, dl = strlen(domain);
    char *s = canon(o, &n);
    if (!s)
        return sl_err_set(err, SL_ENOMEM, "audit log: cannot serialise a record");
    uint8_t *msg = malloc(dl + n);
    if (!msg) {
        free(s);
        return sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
    }
    memcpy(msg, domain, dl);
    memcpy(msg + dl, s, n);
    free(s);
    uint8_t sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, msg, dl + n, sk);
    free(msg);
    char hex[2 * crypto_sign_BYTES + 1];
    sl_auditlog_hex(sig, sizeof sig, hex);
    if (json_object_set_new(o, "sig", json_string(hex)))
        return sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
    return 0;
}

/* 1 if o's "sig" verifies over DOMAIN || canonical(o without sig). */
static int verify_obj(const json_t *o, const char *domain, const uint8_t pk[32])
{
    const char *hex = json_string_value(json_object_get(o, "sig"));
    uint8_t sig[crypto_sign_BYTES];
    if (sl_auditlog_unhex(hex, sig, sizeof sig))
        return 0;
    json_t *c = json_copy((json_t *)o);
    if (!c)
        return 0;
    json_object_del(c, "sig");
    size_t n = 0, dl = strlen(domain);
    char *s = canon(c, &n);
    json_decref(c);
    uint8_t *msg = s ? malloc(dl + n) : NULL;
    int ok = 0;
    if (msg) {
        memcpy(msg, domain, dl);
        memcpy(msg + dl, s, n);
        ok = crypto_sign_verify_detached(sig, msg, dl + n, pk) == 0;
    }
    free(msg);
    free(s);
    return ok;
}

static const char *mode_name(int mode)
{
    return mode == SL_ACCT_CENTRAL ? "central" : "distributed";
}

/* ---- findings ----------------------------------------------------------- */

static const char *kind_of(int code)
{
    switch (code) {
    case SL_AF_FORMAT: return "format";
    case SL_AF_EDITED: return "edited";
    case SL_AF_DELETED: return "deleted";
    case SL_AF_INSERTED: return "inserted";
    case SL_AF_REORDERED: return "reordered";
    case SL_AF_TORN:
    case SL_AF_UNSIGNED_TAIL:
    case SL_AF_OPEN:
    case SL_AF_CUT: return "truncated";
    case SL_AF_UNSIGNED: return "unsigned";
    case SL_AF_KEY: return "key";
    case SL_AF_SEMANTIC: return "log";
    case SL_AF_RECEIPT: return "receipt";
    case SL_AF_NOISE: return "noise";
    case SL_AF_CLAIM: return "claim";
    case SL_AF_BUDGET: return "budget";
    default: return "other";
    }
}

void sl_audit_add(sl_audit_findings *f, int severity, int code, int64_t line, int64_t seq,
                  int64_t round, const char *fmt, ...)
{
    if (severity == SL_AUDIT_ERROR)
        f->errors++;
    else
        f->warnings++;
    if (f->n >= SL_AUDIT_MAX_FINDINGS)
        return;
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        sl_audit_finding *v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return;
        f->v = v;
        f->cap = cap;
    }
    sl_audit_finding *x = &f->v[f->n++];
    x->severity = severity;
    x->code = code;
    x->kind = kind_of(code);
    x->line = line;
    x->seq = seq;
    x->round = round;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->msg, sizeof x->msg, fmt, ap);
    va_end(ap);
}

void sl_audit_findings_fini(sl_audit_findings *f)
{
    free(f->v);
    memset(f, 0, sizeof *f);
}

/* ---- scanning ----------------------------------------------------------- */

static const char *tname(const sl_auditlog_rec *r)
{
    return r->type ? r->type : "?";
}

static void parse_rec(const uint8_t *buf, sl_auditlog_rec *r, size_t idx, const uint8_t pk[32],
                      sl_audit_findings *f)
{
    int64_t line = (int64_t)idx + 1;
    r->seq = -1;
    crypto_hash_sha256(r->hash, buf + r->off, r->len);
    if (r->len > SL_AUDITLOG_MAX_RECORD) {
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_FORMAT, line, -1, -1,
                     "line %lld is %zu bytes, above the %u-byte record limit", (long long)line,
                     r->len, SL_AUDITLOG_MAX_RECORD);
        return;
    }
    json_error_t je;
    json_t *o = json_loadb((const char *)buf + r->off, r->len, JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_FORMAT, line, -1, -1,
                     "line %lld is not a JSON object (%s at column %d)", (long long)line,
                     o ? "not an object" : je.text, o ? 1 : je.column);
        json_decref(o);
        return;
    }
    r->obj = o;
    json_t *v = json_object_get(o, "seq");
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        r->seq = json_integer_value(v);
    else
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_FORMAT, line, -1, -1,
                     "line %lld: member seq is missing or not a non-negative integer",
                     (long long)line);
    size_t n = 0;
    char *s = canon(o, &n);
    if (!s || n != r->len || memcmp(s, buf + r->off, n) != 0)
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_EDITED, line, r->seq, -1,
                     "record seq %lld (line %lld) is not in canonical form (spacing, key order or "
                     "number spelling differs from what the server writes): it was edited",
                     (long long)r->seq, (long long)line);
    free(s);
    r->has_prev = sl_auditlog_unhex(json_string_value(json_object_get(o, "prev")), r->prev, 32) == 0;
    if (!r->has_prev)
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_FORMAT, line, r->seq, -1,
                     "line %lld: member prev is missing or not 64 lowercase hex characters",
                     (long long)line);
    const char *t = json_string_value(json_object_get(o, "type"));
    if (type_ok(t))
        r->type = t;
    else
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_FORMAT, line, r->seq, -1,
                     "line %lld: member type is missing or not a record type", (long long)line);
    json_t *sig = json_object_get(o, "sig");
    if (sig) {
        r->signed_ = 1;
        r->sig_ok = verify_obj(o, DOMAIN_LOG, pk);
    }
}

static void diagnose(sl_auditlog_scan *s, const uint8_t *buf, const uint8_t pk[32])
{
    (void)buf;
    sl_audit_findings *f = &s->findings;
    size_t n = s->n;
    sl_auditlog_rec *R = s->recs;
    if (n == 0 && s->torn_len == 0) {
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_FORMAT, 0, -1, -1, "the log is empty");
        return;
    }
    /* The key the log says it was opened with. */
    if (n > 0 && R[0].type && strcmp(R[0].type, "log_open") == 0) {
        uint8_t lpk[32];
        const char *h = json_string_value(json_object_get(R[0].obj, "server_pk"));
        if (sl_auditlog_unhex(h, lpk, 32) == 0 && sodium_memcmp(lpk, pk, 32) != 0) {
            char a[SL_IDENTITY_FPR_CHARS + 1], b[SL_IDENTITY_FPR_CHARS + 1];
            sl_identity_fingerprint(lpk, a);
            sl_identity_fingerprint(pk, b);
            sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_KEY, 1, R[0].seq, -1,
                         "the log was opened with server key %s, not the given key %s", a, b);
        }
    }
    /* Signatures. */
    int64_t last_good = -1;
    for (size_t i = 0; i < n; i++) {
        sl_auditlog_rec *r = &R[i];
        if (r->signed_ && !r->sig_ok) {
            if (last_good >= 0)
                sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_EDITED, (int64_t)i + 1, r->seq, -1,
                             "record seq %lld (line %zu, %s): signature does not verify against "
                             "the server key: this record, or one after the last good signed "
                             "record (seq %lld), was edited and the chain recomputed",
                             (long long)r->seq, i + 1, tname(r), (long long)last_good);
            else
                sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_EDITED, (int64_t)i + 1, r->seq, -1,
                             "record seq %lld (line %zu, %s): signature does not verify against "
                             "the server key: this record or one before it was edited",
                             (long long)r->seq, i + 1, tname(r));
        } else if (r->signed_) {
            last_good = r->seq;
        }
        if (r->obj && must_be_signed(r->type) && !r->signed_)
            sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_UNSIGNED, (int64_t)i + 1, r->seq, -1,
                         "record seq %lld (line %zu) is a %s record and carries no signature",
                         (long long)r->seq, i + 1, r->type);
    }
    if (n > 0 && R[0].seq == 0 && R[0].type && strcmp(R[0].type, "log_open") != 0)
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_FORMAT, 1, 0, -1,
                     "the first record is a %s record, not log_open", R[0].type);

    /* Index records by seq. A seq far beyond the number of lines cannot be
     * a deleted-records gap: it is a forged or edited number. */
    size_t cap = 2 * n + 16;
    uint32_t *cnt = calloc(cap, sizeof *cnt);
    size_t *first = calloc(cap, sizeof *first);
    if (!cnt || !first) {
        free(cnt);
        free(first);
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_FORMAT, 0, -1, -1, "out of memory diagnosing the log");
        return;
    }
    int64_t maxseq = -1;
    for (size_t i = 0; i < n; i++) {
        int64_t q = R[i].seq;
        if (q < 0)
            continue;
        if ((uint64_t)q >= cap) {
            sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_INSERTED, (int64_t)i + 1, q, -1,
                         "line %zu claims seq %lld, far past the %zu records of the log: a forged "
                         "or edited record",
                         i + 1, (long long)q, n);
            R[i].seq = -1;
            continue;
        }
        if (cnt[q]++ == 0)
            first[q] = i;
        if (q > maxseq)
            maxseq = q;
    }
    /* Missing runs: deleted records. */
    for (int64_t v = 0; v <= maxseq;) {
        if (cnt[v]) {
            v++;
            continue;
        }
        int64_t a = v;
        while (v <= maxseq && !cnt[v])
            v++;
        size_t at = first[v];
        if (a == v - 1)
            sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_DELETED, (int64_t)at + 1, a, -1,
                         "record seq %lld is missing before line %zu (seq %lld): it was deleted",
                         (long long)a, at + 1, (long long)v);
        else
            sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_DELETED, (int64_t)at + 1, a, -1,
                         "records seq %lld..%lld are missing before line %zu (seq %lld): they "
                         "were deleted",
                         (long long)a, (long long)(v - 1), at + 1, (long long)v);
    }
    /* Duplicated seqs: the inserted copy is the one the next record does
     * not refer to. */
    for (int64_t v = 0; v <= maxseq; v++) {
        if (cnt[v] < 2)
            continue;
        size_t unref = 0, which = 0, lines = 0;
        char list[96] = "";
        for (size_t i = first[v]; i < n; i++) {
            if (R[i].seq != v)
                continue;
            /* Referred to by the next line or by the record holding seq v+1. */
            int refd = i + 1 < n && R[i + 1].has_prev && memcmp(R[i + 1].prev, R[i].hash, 32) == 0;
            if (!refd && v + 1 <= maxseq && cnt[v + 1] == 1) {
                const sl_auditlog_rec *nx = &R[first[v + 1]];
                refd = nx->has_prev && memcmp(nx->prev, R[i].hash, 32) == 0;
            }
            if (!refd) {
                unref++;
                which = i;
            }
            size_t l = strlen(list);
            if (lines++ < 6)
                snprintf(list + l, sizeof list - l, "%s%zu", l ? ", " : "", i + 1);
        }
        if (unref == 1)
            sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_INSERTED, (int64_t)which + 1, v, -1,
                         "line %zu (seq %lld, %s) was inserted: seq %lld appears on lines %s and "
                         "no record refers to this one",
                         which + 1, (long long)v, tname(&R[which]), (long long)v, list);
        else
            sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_INSERTED, (int64_t)first[v] + 1, v, -1,
                         "seq %lld appears on lines %s: records were inserted or duplicated",
                         (long long)v, list);
    }
    /* Order in the file. */
    int64_t prevseq = -1;
    size_t prevline = 0;
    for (size_t i = 0; i < n; i++) {
        if (R[i].seq < 0)
            continue;
        if (prevseq >= 0 && R[i].seq < prevseq)
            sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_REORDERED, (int64_t)i + 1, R[i].seq, -1,
                         "record seq %lld (line %zu) comes after seq %lld (line %zu): records were "
                         "reordered",
                         (long long)R[i].seq, i + 1, (long long)prevseq, prevline);
        prevseq = R[i].seq;
        prevline = i + 1;
    }
    /* Hash links, followed by seq so that a reordering is reported once. */
    static const uint8_t zero[32];
    for (size_t i = 0; i < n; i++) {
        sl_auditlog_rec *x = &R[i];
        int64_t v = x->seq;
        if (v < 0 || !x->has_prev || cnt[v] != 1)
            continue;
        if (v == 0) {
            if (memcmp(x->prev, zero, 32) != 0)
                sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_EDITED, (int64_t)i + 1, 0, -1,
                             "record seq 0 (line %zu) does not start a chain (its prev is not "
                             "zero): it was edited",
                             i + 1);
            continue;
        }
        if (cnt[v - 1] != 1)
            continue;
        sl_auditlog_rec *y = &R[first[v - 1]];
        if (memcmp(x->prev, y->hash, 32) == 0 || (y->signed_ && !y->sig_ok))
            continue;
        if (y->signed_ && y->sig_ok)
            sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_EDITED, (int64_t)i + 1, v, -1,
                         "record seq %lld (line %zu) does not refer to record seq %lld (line %zu), "
                         "whose signature holds: the prev member of seq %lld was edited",
                         (long long)v, i + 1, (long long)(v - 1), first[v - 1] + 1, (long long)v);
        else
            sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_EDITED, (int64_t)first[v - 1] + 1, v - 1, -1,
                         "record seq %lld (line %zu, %s) was edited: its hash differs from the one "
                         "record seq %lld (line %zu) holds",
                         (long long)(v - 1), first[v - 1] + 1, tname(y), (long long)v, i + 1);
    }
    free(cnt);
    free(first);
    /* The tail. */
    if (n > 0 && R[n - 1].obj && !R[n - 1].signed_) {
        s->tail_unsigned = 1;
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_UNSIGNED_TAIL, (int64_t)n, R[n - 1].seq, -1,
                     "the last record (seq %lld, line %zu, %s) is not signed: records after the "
                     "last signed one were cut off, or the server stopped mid-round (a restart "
                     "appends a signed log_resume)",
                     (long long)R[n - 1].seq, n, tname(&R[n - 1]));
    }
    if (s->torn_len)
        sl_audit_add(f, SL_AUDIT_ERROR, SL_AF_TORN, (int64_t)n + 1, -1, -1,
                     "line %zu is incomplete: %zu bytes at offset %zu without a final newline (a "
                     "torn write or a truncated file)",
                     n + 1, s->torn_len, s->torn_off);
}

int sl_auditlog_scan_buf(const uint8_t *buf, size_t len, const uint8_t pk[32],
                         sl_auditlog_scan *out, sl_err *err)
{
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
    memset(out, 0, sizeof *out);
    if (len > SL_AUDITLOG_MAX_BYTES)
        return sl_err_set(err, SL_ELIMIT, "audit log of %zu bytes exceeds the limit of %u", len,
                          SL_AUDITLOG_MAX_BYTES);
    size_t n = 0;
    for (const uint8_t *p = buf; p && (p = memchr(p, '\n', len - (size_t)(p - buf))); p++)
        n++;
    if (n > SL_AUDITLOG_MAX_RECORDS)
        return sl_err_set(err, SL_ELIMIT, "audit log of %zu records exceeds the limit of %u", n,
                          SL_AUDITLOG_MAX_RECORDS);
    out->recs = calloc(n ? n : 1, sizeof *out->recs);
    if (!out->recs)
        return sl_err_set(err, SL_ENOMEM, "audit log: cannot allocate %zu records", n);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *nl = memchr(buf + off, '\n', len - off);
        out->recs[i].off = off;
        out->recs[i].len = (size_t)(nl - (buf + off));
        off = (size_t)(nl - buf) + 1;
    }
    out->n = n;
    if (off < len) {
        out->torn_off = off;
        out->torn_len = len - off;
    }
    for (size_t i = 0; i < n; i++)
        parse_rec(buf, &out->recs[i], i, pk, &out->findings);
    diagnose(out, buf, pk);
    return 0;
}

void sl_auditlog_scan_fini(sl_auditlog_scan *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->recs && i < s->n; i++)
        json_decref(s->recs[i].obj);
    free(s->recs);
    sl_audit_findings_fini(&s->findings);
    memset(s, 0, sizeof *s);
}

/* ---- mechanism records -------------------------------------------------- */

int sl_auditlog_mech_from_dp(const sl_dp_round_record *r, sl_acct_mech *out, sl_err *err)
{
    if (r->site_var_den == 0 || r->central_var_den == 0)
        return sl_err_set(err, SL_EINVAL, "dp record of round %llu: a variance denominator is 0",
                          (unsigned long long)r->round);
    sl_acct_mech m;
    memset(&m, 0, sizeof m);
    m.mode = r->mode == SL_DP_CENTRAL ? SL_ACCT_CENTRAL : SL_ACCT_DISTRIBUTED;
    m.q = r->sampling_rate > 0 ? r->sampling_rate : 1.0;
    m.clip = r->clip;
    m.scale = r->scale;
    m.rounding_beta = r->beta;
    m.dim = r->rotation_dim ? r->rotation_dim : r->dim;
    m.sigma2_grid = (double)r->site_var_num / (double)r->site_var_den;
    m.central_var_grid = (double)r->central_var_num / (double)r->central_var_den;
    m.sampled = r->sites_sampled;
    m.received = r->masked_inputs;
    m.survivors = r->survivors;
    m.threshold = r->threshold;
    m.modulus_bits = r->modulus_bits;
    int rc = sl_acct_mech_check(&m, err);
    if (rc)
        return sl_err_prefix(err, "dp record of round %llu", (unsigned long long)r->round);
    *out = m;
    return 0;
}

int sl_auditlog_mech_decode(const json_t *rec, sl_acct_mech *m, sl_dp_round_record *raw,
                            sl_err *err)
{
    sl_dp_round_record r;
    json_t *dp = json_object_get(rec, "dp");
    if (!json_is_object(dp))
        return sl_err_set(err, SL_EFORMAT, "mechanism record has no dp object");
    int rc = sl_dp_record_from_json(dp, &r, err);
    if (rc)
        return rc;
    json_t *round = json_object_get(rec, "round");
    if (!json_is_integer(round) || json_integer_value(round) < 0 ||
        (uint64_t)json_integer_value(round) != r.round)
        return sl_err_set(err, SL_EFORMAT, "mechanism record: round differs from its dp record's (%llu)",
                          (unsigned long long)r.round);
    sl_acct_mech mm;
    if ((rc = sl_auditlog_mech_from_dp(&r, &mm, err)))
        return rc;
    *m = mm;
    if (raw)
        *raw = r;
    return 0;
}

/* ---- writing ------------------------------------------------------------ */

static int write_all(int fd, const char *p, size_t n, size_t *done)
{
    *done = 0;
    while (*done < n) {
        ssize_t w = write(fd, p + *done, n - *done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        *done += (size_t)w;
    }
    return 0;
}

/* Completes rec (owned by the caller) with seq, prev, type, time and
 * optionally sig, writes it as one line and optionally fsyncs. */
static int write_record(sl_auditlog *log, const char *type, json_t *rec, int sign, int sync,
                        sl_auditlog_pos *pos, sl_err *err)
{
    if (log->failed)
        return sl_err_set(err, SL_ESTATE,
                          "%s: an earlier write failed half-way; reopen the log to repair it",
                          log->path);
    char prev[65], when[32];
    sl_auditlog_hex(log->last_hash, 32, prev);
    now_rfc3339(when);
    if (json_object_set_new(rec, "seq", json_integer((json_int_t)log->next_seq)) ||
        json_object_set_new(rec, "prev", json_string(prev)) ||
        json_object_set_new(rec, "type", json_string(type)) ||
        json_object_set_new(rec, "time", json_string(when)))
        return sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
    int rc;
    if (sign && (rc = sign_obj(rec, DOMAIN_LOG, log->sk, err)))
        return rc;
    size_t n = 0;
    char *line = canon(rec, &n);
    if (!line)
        return sl_err_set(err, SL_EINVAL,
                          "audit log: %s record cannot be serialised (a number that is not finite?)",
                          type);
    if (n > SL_AUDITLOG_MAX_RECORD) {
        free(line);
        return sl_err_set(err, SL_ELIMIT, "audit log: %s record of %zu bytes exceeds %u bytes",
                          type, n, SL_AUDITLOG_MAX_RECORD);
    }
    uint8_t h[32];
    crypto_hash_sha256(h, (const uint8_t *)line, n);
    line[n] = '\n'; /* replaces the NUL; json_dumps allocated n + 1 */
    size_t done = 0;
    if (write_all(log->fd, line, n + 1, &done) != 0) {
        rc = sl_err_errno(err, "%s: write of record seq %llu", log->path,
                          (unsigned long long)log->next_seq);
        if (done)
            log->failed = 1;
        free(line);
        return rc;
    }
    free(line);
    if (sync && fdatasync(log->fd) != 0) {
        log->failed = 1;
        return sl_err_errno(err, "%s: fsync", log->path);
    }
    memcpy(log->last_hash, h, 32);
    if (pos) {
        pos->seq = log->next_seq;
        memcpy(pos->hash, h, 32);
    }
    log->next_seq++;
    return 0;
}

static sl_auditlog *log_alloc(const char *dir, const uint8_t sk[64], sl_err *err)
{
    sl_auditlog *log = calloc(1, sizeof *log);
    if (!log) {
        sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
        return NULL;
    }
    log->fd = -1;
    log->last_round = log->open_round = -1;
    log->sk = sodium_malloc(64);
    if (!log->sk) {
        free(log);
        sl_err_set(err, SL_ENOMEM, "audit log: cannot allocate locked memory for the key");
        return NULL;
    }
    memcpy(log->sk, sk, 64);
    crypto_sign_ed25519_sk_to_pk(log->pk, log->sk);
    if (sl_fs_join(log->path, sizeof log->path, dir, SL_AUDITLOG_FILE, err) ||
        snprintf(log->dir, sizeof log->dir, "%s", dir) >= (int)sizeof log->dir) {
        sodium_free(log->sk);
        free(log);
        return NULL;
    }
    return log;
}

void sl_auditlog_free(sl_auditlog *log)
{
    if (!log)
        return;
    if (log->fd >= 0)
        close(log->fd);
    sodium_free(log->sk); /* wipes */
    json_decref(log->close_contrib);
    free(log);
}

static int lock_fd(sl_auditlog *log, sl_err *err)
{
    if (flock(log->fd, LOCK_EX | LOCK_NB) != 0)
        return errno == EWOULDBLOCK
                   ? sl_err_set(err, SL_ESTATE, "%s: in use by another process", log->path)
                   : sl_err_errno(err, "%s: lock", log->path);
    return 0;
}

int sl_auditlog_create(sl_auditlog **out, const char *dir, const uint8_t sk[64],
                       const sl_auditlog_config *cfg, sl_err *err)
{
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
    if (!cfg->server || !*cfg->server || strlen(cfg->server) > 63)
        return sl_err_set(err, SL_EINVAL, "audit log: server name must have 1 to 63 characters");
    if (!(cfg->epsilon_budget > 0) || !isfinite(cfg->epsilon_budget))
        return sl_err_set(err, SL_EINVAL, "audit log: epsilon budget %g must be finite and > 0",
                          cfg->epsilon_budget);
    if (!(cfg->delta > 0 && cfg->delta < 1))
        return sl_err_set(err, SL_EINVAL, "audit log: delta %g must be in (0, 1)", cfg->delta);
    if (!(cfg->noise_multiplier > 0) || !isfinite(cfg->noise_multiplier))
        return sl_err_set(err, SL_EINVAL, "audit log: noise multiplier %g must be finite and > 0",
                          cfg->noise_multiplier);
    if (cfg->mode != SL_ACCT_CENTRAL && cfg->mode != SL_ACCT_DISTRIBUTED)
        return sl_err_set(err, SL_EINVAL, "audit log: mode %d is neither central nor distributed",
                          cfg->mode);
    int rc = sl_fs_mkdirs(dir, 0755, err);
    if (rc)
        return rc;
    sl_auditlog *log = log_alloc(dir, sk, err);
    if (!log)
        return err ? err->code : SL_ENOMEM;
    json_t *rec = NULL;
    log->fd = open(log->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (log->fd < 0) {
        rc = errno == EEXIST ? sl_err_set(err, SL_ESTATE,
                                          "%s: exists; reopen it to resume (never overwritten)",
                                          log->path)
                             : sl_err_errno(err, "%s: create", log->path);
        goto fail_noremove;
    }
    if ((rc = lock_fd(log, err)))
        goto fail;
    char pkhex[65];
    sl_auditlog_hex(log->pk, 32, pkhex);
    rec = json_pack("{s:i, s:s, s:s, s:{s:f, s:f}, s:f, s:s, s:s}", "v", SL_AUDITLOG_VERSION,
                    "server", cfg->server, "server_pk", pkhex, "budget", "epsilon",
                    cfg->epsilon_budget, "delta", cfg->delta, "noise_multiplier",
                    cfg->noise_multiplier, "mode", mode_name(cfg->mode), "orders",
                    SL_ACCT_GRID_NAME);
    if (!rec) {
        rc = sl_err_set(err, SL_EINVAL, "audit log: server name is not valid UTF-8");
        goto fail;
    }
    sl_auditlog_pos pos;
    if ((rc = write_record(log, "log_open", rec, 1, 1, &pos, err)))
        goto fail;
    memcpy(log->log_id, pos.hash, 32);
    log->delta = cfg->delta;
    if ((rc = sl_fs_sync_dir_of(log->path, err)))
        goto fail;
    json_decref(rec);
    *out = log;
    return 0;
fail:
    unlink(log->path);
fail_noremove:
    json_decref(rec);
    sl_auditlog_free(log);
    return rc;
}

/* Rebuilds the writer's state from a clean scan. */
static void restore_state(sl_auditlog *log, const sl_auditlog_scan *s)
{
    const sl_auditlog_rec *R = s->recs;
    log->next_seq = s->n;
    memcpy(log->last_hash, R[s->n - 1].hash, 32);
    memcpy(log->log_id, R[0].hash, 32);
    json_t *b = json_object_get(R[0].obj, "budget");
    log->delta = json_number_value(json_object_get(b, "delta"));
    for (size_t i = 0; i < s->n; i++) {
        const char *t = R[i].type;
        json_t *r = json_object_get(R[i].obj, "round");
        if (strcmp(t, "round_start") == 0 && json_is_integer(r)) {
            log->open_round = json_integer_value(r);
        } else if (strcmp(t, "round_close") == 0 && json_is_integer(r)) {
            log->last_round = json_integer_value(r);
            log->open_round = -1;
            log->close_seq = (uint64_t)R[i].seq;
            memcpy(log->close_hash, R[i].hash, 32);
            json_decref(log->close_contrib);
            log->close_contrib = json_incref(json_object_get(R[i].obj, "contributors"));
        }
    }
}

int sl_auditlog_open(sl_auditlog **out, const char *dir, const uint8_t sk[64], unsigned flags,
                     sl_err *err)
{
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
    sl_auditlog *log = log_alloc(dir, sk, err);
    if (!log)
        return err ? err->code : SL_ENOMEM;
    int rc;
    uint8_t *buf = NULL;
    size_t len = 0;
    sl_auditlog_scan scan;
    memset(&scan, 0, sizeof scan);
    json_t *rec = NULL;
    log->fd = open(log->path, O_RDWR | O_APPEND | O_CLOEXEC);
    if (log->fd < 0) {
        rc = errno == ENOENT ? sl_err_set(err, SL_ENOTFOUND, "%s: no such log", log->path)
                             : sl_err_errno(err, "%s: open", log->path);
        goto out;
    }
    if ((rc = lock_fd(log, err)) ||
        (rc = sl_fs_read_all(log->path, SL_AUDITLOG_MAX_BYTES, &buf, &len, err)) ||
        (rc = sl_auditlog_scan_buf(buf, len, log->pk, &scan, err)))
        goto out;
    if (len == 0) {
        rc = sl_err_set(err, SL_EFORMAT,
                        "%s is empty (did the server stop while creating it?): remove it to "
                        "create the log again",
                        log->path);
        goto out;
    }
    for (size_t i = 0; i < scan.findings.n; i++) {
        const sl_audit_finding *x = &scan.findings.v[i];
        if (x->code == SL_AF_UNSIGNED_TAIL ||
            (x->code == SL_AF_TORN && (flags & SL_AUDITLOG_REPAIR_TORN)))
            continue;
        rc = sl_err_set(err, x->code == SL_AF_KEY ? SL_ECRYPTO : SL_EFORMAT,
                        "%s: refusing to append to a damaged log: %s%s", log->path, x->msg,
                        x->code == SL_AF_TORN ? " (reopen with the repair option to move it aside)"
                                              : "");
        goto out;
    }
    if (scan.findings.errors + scan.findings.warnings > scan.findings.n) { /* some not kept */
        rc = sl_err_set(err, SL_EFORMAT, "%s: refusing to append: more problems than were listed",
                        log->path);
        goto out;
    }
    if (scan.n == 0) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: holds no complete record", log->path);
        goto out;
    }
    restore_state(log, &scan);
    rec = json_object();
    if (!rec) {
        rc = sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
        goto out;
    }
    json_object_set_new(rec, "previous_tail", json_string(scan.tail_unsigned ? "unsigned" : "signed"));
    if (log->open_round >= 0)
        json_object_set_new(rec, "open_round", json_integer(log->open_round));
    if (scan.torn_len) {
        char side[PATH_MAX + 32], name[64], hex[65];
        uint8_t h[32];
        snprintf(name, sizeof name, SL_AUDITLOG_FILE ".torn.%zu", scan.torn_off);
        if ((rc = sl_fs_join(side, sizeof side, dir, name, err)) ||
            (rc = sl_fs_write_atomic(side, buf + scan.torn_off, scan.torn_len, 0644, err)))
            goto out;
        if (ftruncate(log->fd, (off_t)scan.torn_off) != 0 || fsync(log->fd) != 0) {
            rc = sl_err_errno(err, "%s: cutting the torn line at offset %zu (kept in %s)",
                              log->path, scan.torn_off, name);
            goto out;
        }
        crypto_hash_sha256(h, buf + scan.torn_off, scan.torn_len);
        sl_auditlog_hex(h, 32, hex);
        json_object_set_new(rec, "torn_bytes", json_integer((json_int_t)scan.torn_len));
        json_object_set_new(rec, "torn_offset", json_integer((json_int_t)scan.torn_off));
        json_object_set_new(rec, "torn_sha256", json_string(hex));
        json_object_set_new(rec, "torn_file", json_string(name));
    }
    if ((rc = write_record(log, "log_resume", rec, 1, 1, NULL, err)))
        goto out;
out:
    json_decref(rec);
    sl_auditlog_scan_fini(&scan);
    free(buf);
    if (rc) {
        sl_auditlog_free(log);
        return rc;
    }
    *out = log;
    return 0;
}

/* Copies fields into a fresh object after checking its member names. */
static int fields_copy(const json_t *fields, json_t **out, sl_err *err)
{
    if (fields && !json_is_object(fields))
        return sl_err_set(err, SL_EINVAL, "audit log: record fields must be a JSON object");
    json_t *o = fields ? json_deep_copy(fields) : json_object();
    if (!o)
        return sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
    static const char *const reserved[] = {"seq", "prev", "type", "time", "sig"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (json_object_get(o, reserved[i])) {
            json_decref(o);
            return sl_err_set(err, SL_EINVAL, "audit log: member '%s' is reserved", reserved[i]);
        }
    *out = o;
    return 0;
}

static int append_common(sl_auditlog *log, const char *type, const json_t *fields, int sign,
                         sl_auditlog_pos *pos, sl_err *err)
{
    if (!type_ok(type) || reserved_type(type))
        return sl_err_set(err, SL_EINVAL,
                          "audit log: '%.40s' is not a record type this call may append", type);
    json_t *rec;
    int rc = fields_copy(fields, &rec, err);
    if (rc)
        return rc;
    rc = write_record(log, type, rec, sign, sign, pos, err);
    if (!rc && strcmp(type, "round_start") == 0 && json_is_integer(json_object_get(rec, "round")))
        log->open_round = json_integer_value(json_object_get(rec, "round"));
    json_decref(rec);
    return rc;
}

int sl_auditlog_append(sl_auditlog *log, const char *type, const json_t *fields,
                       sl_auditlog_pos *pos, sl_err *err)
{
    return append_common(log, type, fields, 0, pos, err);
}

int sl_auditlog_append_signed(sl_auditlog *log, const char *type, const json_t *fields,
                              sl_auditlog_pos *pos, sl_err *err)
{
    return append_common(log, type, fields, 1, pos, err);
}

/* A mechanism record of type `type`: {round, dp}. */
static int mech_record(sl_auditlog *log, const char *type, const sl_dp_round_record *r, int sign,
                       sl_err *err)
{
    if (r->round > (uint64_t)INT64_MAX)
        return sl_err_set(err, SL_EINVAL, "audit log: round %llu is too large",
                          (unsigned long long)r->round);
    sl_acct_mech m;
    int rc = sl_auditlog_mech_from_dp(r, &m, err);
    if (rc)
        return rc;
    json_t *dp = NULL;
    if ((rc = sl_dp_record_to_json(r, &dp, err)))
        return rc;
    json_t *rec = json_pack("{s:I, s:o}", "round", (json_int_t)r->round, "dp", dp);
    if (!rec)
        return sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
    rc = write_record(log, type, rec, sign, sign, NULL, err);
    json_decref(rec);
    return rc;
}

int sl_auditlog_mechanism(sl_auditlog *log, const sl_dp_round_record *r, sl_err *err)
{
    return mech_record(log, "mechanism", r, 0, err);
}

int sl_auditlog_mechanism_planned(sl_auditlog *log, const sl_dp_round_record *r, sl_err *err)
{
    if (r->survivors > r->threshold || r->masked_inputs > r->threshold)
        return sl_err_set(err, SL_EINVAL, "audit log: the planned mechanism of round %llu counts "
                          "%u survivors, more than the threshold %u: not the worst case",
                          (unsigned long long)r->round, r->survivors, r->threshold);
    return mech_record(log, "mechanism_planned", r, 1, err);
}

int sl_auditlog_round_abandoned(sl_auditlog *log, int64_t round, double epsilon,
                                const char *reason, sl_err *err)
{
    if (round < 0)
        return sl_err_set(err, SL_EINVAL, "audit log: round %lld is invalid", (long long)round);
    json_t *rec = json_pack("{s:I, s:f, s:s}", "round", (json_int_t)round, "epsilon_charged",
                            epsilon, "reason", reason ? reason : "");
    if (!rec)
        return sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
    int rc = write_record(log, "round_abandoned", rec, 1, 1, NULL, err);
    json_decref(rec);
    return rc;
}

int sl_auditlog_close_round(sl_auditlog *log, int64_t round, int released,
                            const sl_auditlog_contrib *c, size_t nc, double epsilon,
                            const json_t *extra, sl_auditlog_pos *pos, sl_err *err)
{
    if (round < 0)
        return sl_err_set(err, SL_EINVAL, "audit log: round %lld is negative", (long long)round);
    if (nc > SL_AUDITLOG_MAX_CONTRIB)
        return sl_err_set(err, SL_ELIMIT, "audit log: %zu contributors exceed the limit of %u", nc,
                          SL_AUDITLOG_MAX_CONTRIB);
    if (!(epsilon >= 0) || !isfinite(epsilon))
        return sl_err_set(err, SL_EINVAL, "audit log: epsilon %g must be finite and >= 0",
                          epsilon);
    for (size_t i = 0; i < nc; i++) {
        int rc = sl_identity_check_name(c[i].site, err);
        if (rc)
            return sl_err_prefix(err, "audit log: contributor #%zu", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c[i].site, c[j].site) == 0)
                return sl_err_set(err, SL_EINVAL, "audit log: site '%s' listed twice", c[i].site);
    }
    json_t *rec;
    int rc = fields_copy(extra, &rec, err);
    if (rc)
        return rc;
    static const char *const own[] = {"round", "status", "contributors", "epsilon", "delta"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (json_object_get(rec, own[i])) {
            json_decref(rec);
            return sl_err_set(err, SL_EINVAL, "audit log: member '%s' is set by close_round",
                              own[i]);
        }
    json_t *arr = json_array();
    int bad = !arr;
    for (size_t i = 0; !bad && i < nc; i++) {
        char hex[65];
        sl_auditlog_hex(c[i].input, 32, hex);
        bad = json_array_append_new(arr, json_pack("{s:s, s:s}", "site", c[i].site, "input", hex));
    }
    bad = bad || json_object_set_new(rec, "round", json_integer(round)) ||
          json_object_set_new(rec, "status", json_string(released ? "released" : "aborted")) ||
          json_object_set(rec, "contributors", arr) ||
          json_object_set_new(rec, "epsilon", json_real(epsilon)) ||
          json_object_set_new(rec, "delta", json_real(log->delta));
    if (bad) {
        json_decref(arr);
        json_decref(rec);
        return sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
    }
    sl_auditlog_pos p;
    rc = write_record(log, "round_close", rec, 1, 1, &p, err);
    json_decref(rec);
    if (rc) {
        json_decref(arr);
        return rc;
    }
    log->last_round = round;
    log->open_round = -1;
    log->close_seq = p.seq;
    memcpy(log->close_hash, p.hash, 32);
    json_decref(log->close_contrib);
    log->close_contrib = arr;
    if (pos)
        *pos = p;
    return 0;
}

int sl_auditlog_receipt(sl_auditlog *log, const char *site, char **text, size_t *len,
                        sl_err *err)
{
    if (log->last_round < 0)
        return sl_err_set(err, SL_ESTATE, "audit log: no round closed yet, no receipt to give");
    const char *input = NULL;
    size_t i;
    json_t *x;
    json_array_foreach(log->close_contrib, i, x)
    {
        if (site && strcmp(json_string_value(json_object_get(x, "site")), site) == 0)
            input = json_string_value(json_object_get(x, "input"));
    }
    if (!input)
        return sl_err_set(err, SL_ENOTFOUND, "audit log: site '%.64s' did not contribute to round %lld",
                          site ? site : "(null)", (long long)log->last_round);
    char hh[65], idh[65];
    sl_auditlog_hex(log->close_hash, 32, hh);
    sl_auditlog_hex(log->log_id, 32, idh);
    json_t *o = json_pack("{s:i, s:s, s:I, s:s, s:s, s:I, s:s, s:s}", "v", SL_AUDITLOG_VERSION,
                          "type", "receipt", "round", (json_int_t)log->last_round, "site", site,
                          "input", input, "log_seq", (json_int_t)log->close_seq, "log_hash", hh,
                          "log_id", idh);
    if (!o)
        return sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
    int rc = sign_obj(o, DOMAIN_RECEIPT, log->sk, err);
    size_t n = 0;
    char *s = rc ? NULL : canon(o, &n);
    json_decref(o);
    if (rc)
        return rc;
    if (!s)
        return sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
    *text = s;
    *len = n;
    return 0;
}

int sl_auditlog_sync(sl_auditlog *log, sl_err *err)
{
    if (fdatasync(log->fd) != 0) {
        log->failed = 1;
        return sl_err_errno(err, "%s: fsync", log->path);
    }
    return 0;
}

int sl_auditlog_close(sl_auditlog *log, sl_err *err)
{
    if (!log)
        return 0;
    json_t *rec = json_pack("{s:I}", "records", (json_int_t)log->next_seq + 1);
    int rc = rec ? write_record(log, "log_close", rec, 1, 1, NULL, err)
                 : sl_err_set(err, SL_ENOMEM, "audit log: out of memory");
    json_decref(rec);
    sl_auditlog_free(log);
    return rc;
}

uint64_t sl_auditlog_next_seq(const sl_auditlog *log)
{
    return log->next_seq;
}

int64_t sl_auditlog_last_round(const sl_auditlog *log)
{
    return log->last_round;
}

int64_t sl_auditlog_open_round(const sl_auditlog *log)
{
    return log->open_round;
}

/* ---- receipts ----------------------------------------------------------- */

int sl_auditlog_receipt_verify(const uint8_t *text, size_t len, const uint8_t pk[32],
                               sl_receipt *out, sl_err *err)
{
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
    if (len > SL_AUDITLOG_MAX_RECEIPT)
        return sl_err_set(err, SL_ELIMIT, "receipt of %zu bytes exceeds %u", len,
                          SL_AUDITLOG_MAX_RECEIPT);
    if (len && text[len - 1] == '\n')
        len--;
    json_error_t je;
    json_t *o = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &je);
    int rc = 0;
    sl_receipt r;
    memset(&r, 0, sizeof r);
    if (!o || !json_is_object(o)) {
        rc = sl_err_set(err, SL_EFORMAT, "receipt is not a JSON object (%s)",
                        o ? "other JSON value" : je.text);
        goto out;
    }
    size_t n = 0;
    char *s = canon(o, &n);
    int canonical = s && n == len && memcmp(s, text, n) == 0;
    free(s);
    if (!canonical) {
        rc = sl_err_set(err, SL_EFORMAT, "receipt is not in canonical form: it was edited");
        goto out;
    }
    json_t *v = json_object_get(o, "v"), *t = json_object_get(o, "type"),
           *rd = json_object_get(o, "round"), *sq = json_object_get(o, "log_seq");
    const char *site = json_string_value(json_object_get(o, "site"));
    if (json_object_size(o) != 9 || !json_is_integer(v) || json_integer_value(v) != 1 ||
        !json_is_string(t) || strcmp(json_string_value(t), "receipt") != 0) {
        rc = sl_err_set(err, SL_EFORMAT, "not a version-1 receipt (members v, type, round, site, "
                                         "input, log_seq, log_hash, log_id, sig)");
        goto out;
    }
    if (!json_is_integer(rd) || json_integer_value(rd) < 0 || !json_is_integer(sq) ||
        json_integer_value(sq) < 0) {
        rc = sl_err_set(err, SL_EFORMAT, "receipt round or log_seq is not a non-negative integer");
        goto out;
    }
    if (sl_identity_check_name(site, err)) {
        rc = sl_err_prefix(err, "receipt site");
        goto out;
    }
    if (sl_auditlog_unhex(json_string_value(json_object_get(o, "input")), r.input, 32) ||
        sl_auditlog_unhex(json_string_value(json_object_get(o, "log_hash")), r.log_hash, 32) ||
        sl_auditlog_unhex(json_string_value(json_object_get(o, "log_id")), r.log_id, 32)) {
        rc = sl_err_set(err, SL_EFORMAT, "receipt input, log_hash or log_id is not 64 hex digits");
        goto out;
    }
    if (!verify_obj(o, DOMAIN_RECEIPT, pk)) {
        rc = sl_err_set(err, SL_ECRYPTO,
                        "receipt for round %lld, site %s: signature does not verify against the "
                        "server key (forged or edited)",
                        (long long)json_integer_value(rd), site);
        goto out;
    }
    r.round = json_integer_value(rd);
    snprintf(r.site, sizeof r.site, "%s", site);
    r.log_seq = (uint64_t)json_integer_value(sq);
    *out = r;
out:
    json_decref(o);
    return rc;
}

int sl_auditlog_receipt_store(const char *dir, const uint8_t *text, size_t len,
                              const uint8_t pk[32], sl_err *err)
{
    sl_receipt r;
    int rc = sl_auditlog_receipt_verify(text, len, pk, &r, err);
    if (rc)
        return rc;
    if ((rc = sl_fs_mkdirs(dir, 0755, err)))
        return rc;
    char name[64], path[PATH_MAX];
    snprintf(name, sizeof name, "receipt-%06lld.json", (long long)r.round);
    if ((rc = sl_fs_join(path, sizeof path, dir, name, err)))
        return rc;
    size_t n = len && text[len - 1] == '\n' ? len - 1 : len;
    char *buf = malloc(n + 1);
    if (!buf)
        return sl_err_set(err, SL_ENOMEM, "receipt: out of memory");
    memcpy(buf, text, n);
    buf[n] = '\n';
    rc = sl_fs_write_atomic(path, buf, n + 1, 0644, err);
    free(buf);
    return rc;
}
