#include "crypto/fedmsg.h"

#include <math.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "shared/reader.h"
#include "shared/writer.h"

static void put_f64(sl_writer *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    sl_writer_u64le(w, u);
}

static double get_f64(sl_reader *r)
{
    uint64_t u = sl_reader_u64le(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

static void put_f32(sl_writer *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    sl_writer_u32le(w, u);
}

static float get_f32(sl_reader *r)
{
    uint32_t u = sl_reader_u32le(r);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

static int take(sl_writer *w, uint8_t **out, size_t *n, sl_err *err, const char *what)
{
    if (!sl_writer_ok(w)) {
        sl_writer_fini(w);
        return sl_err_set(err, SL_ELIMIT, "%s: message larger than %u bytes or out of memory",
                          what, SL_WIRE_MAX_PAYLOAD);
    }
    *out = sl_writer_take(w, n);
    return 0;
}

static int printable(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
            return 0;
    return 1;
}

int sl_fed_join_encode(const uint8_t *cert, size_t cert_len, uint8_t **out, size_t *n,
                       sl_err *err)
{
    if (!cert_len || cert_len > SL_WIRE_MAX_CERT)
        return sl_err_set(err, SL_ELIMIT, "JOIN: certificate of %zu bytes (1..%u)", cert_len,
                          SL_WIRE_MAX_CERT);
    sl_writer w;
    sl_writer_init(&w, SL_WIRE_MAX_PAYLOAD);
    sl_writer_u32le(&w, SL_FEDMSG_VERSION);
    sl_writer_blob32(&w, cert, cert_len);
    return take(&w, out, n, err, "JOIN");
}

static int check_version(uint32_t v, const char *what, sl_err *err)
{
    if (v != SL_FEDMSG_VERSION)
        return sl_err_set(err, SL_EFORMAT, "%s: runtime message version %u, this program speaks %u",
                          what, v, SL_FEDMSG_VERSION);
    return 0;
}

int sl_fed_join_decode(const uint8_t *buf, size_t n, const uint8_t **cert, size_t *cert_len,
                       sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    uint32_t v = sl_reader_u32le(&r);
    size_t cl = 0;
    const uint8_t *c = sl_reader_blob32(&r, SL_WIRE_MAX_CERT, &cl);
    int rc = sl_reader_finish(&r, err, "JOIN");
    if (rc)
        return rc;
    if ((rc = check_version(v, "JOIN", err)))
        return rc;
    if (!cl)
        return sl_err_set(err, SL_EFORMAT, "JOIN: empty certificate");
    *cert = c;
    *cert_len = cl;
    return 0;
}

int sl_fed_join_ok_encode(const sl_fed_join_ok *j, uint8_t **out, size_t *n, sl_err *err)
{
    if (!j->cert_len || j->cert_len > SL_WIRE_MAX_CERT || j->nfiles > SL_FEDMSG_MAX_FILES)
        return sl_err_set(err, SL_ELIMIT, "JOIN_OK: certificate %zu bytes, %u files",
                          j->cert_len, j->nfiles);
    sl_writer w;
    sl_writer_init(&w, SL_WIRE_MAX_PAYLOAD);
    sl_writer_u32le(&w, SL_FEDMSG_VERSION);
    sl_writer_blob32(&w, j->cert, j->cert_len);
    sl_writer_u32le(&w, j->nfiles);
    for (uint32_t i = 0; i < j->nfiles; i++) {
        int rc = sl_wire_check_file_name(j->files[i], err);
        if (rc) {
            sl_writer_fini(&w);
            return rc;
        }
        sl_writer_blob32(&w, j->files[i], strlen(j->files[i]));
    }
    return take(&w, out, n, err, "JOIN_OK");
}

int sl_fed_join_ok_decode(const uint8_t *buf, size_t n, sl_fed_join_ok *j, sl_err *err)
{
    sl_fed_join_ok t;
    memset(&t, 0, sizeof t);
    sl_reader r;
    sl_reader_init(&r, buf, n);
    uint32_t v = sl_reader_u32le(&r);
    t.cert = sl_reader_blob32(&r, SL_WIRE_MAX_CERT, &t.cert_len);
    t.nfiles = sl_reader_u32le(&r);
    if (sl_reader_ok(&r) && t.nfiles > SL_FEDMSG_MAX_FILES)
        return sl_err_set(err, SL_EFORMAT, "JOIN_OK: %u files (at most %u)", t.nfiles,
                          SL_FEDMSG_MAX_FILES);
    for (uint32_t i = 0; i < t.nfiles && sl_reader_ok(&r); i++) {
        size_t nl = 0;
        const uint8_t *p = sl_reader_blob32(&r, SL_WIRE_MAX_NAME, &nl);
        if (p) {
            memcpy(t.files[i], p, nl);
            t.files[i][nl] = 0;
            if (memchr(p, 0, nl) || sl_wire_check_file_name(t.files[i], err))
                return sl_err_set(err, SL_EFORMAT, "JOIN_OK: file %u: bad name", i);
        }
    }
    int rc = sl_reader_finish(&r, err, "JOIN_OK");
    if (rc)
        return rc;
    if ((rc = check_version(v, "JOIN_OK", err)))
        return rc;
    if (!t.cert_len)
        return sl_err_set(err, SL_EFORMAT, "JOIN_OK: empty certificate");
    *j = t;
    return 0;
}

int sl_fed_poll_encode(uint64_t round, uint64_t receipt_round, uint8_t **out, size_t *n,
                       sl_err *err)
{
    sl_writer w;
    sl_writer_init(&w, 16);
    sl_writer_u64le(&w, round);
    sl_writer_u64le(&w, receipt_round);
    return take(&w, out, n, err, "POLL");
}

int sl_fed_poll_decode(const uint8_t *buf, size_t n, uint64_t *round, uint64_t *receipt_round,
                       sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    uint64_t a = sl_reader_u64le(&r), b = sl_reader_u64le(&r);
    int rc = sl_reader_finish(&r, err, "POLL");
    if (!rc) {
        *round = a;
        *receipt_round = b;
    }
    return rc;
}

int sl_fed_u32_encode(uint32_t v, uint8_t **out, size_t *n, sl_err *err)
{
    sl_writer w;
    sl_writer_init(&w, 4);
    sl_writer_u32le(&w, v);
    return take(&w, out, n, err, "u32");
}

int sl_fed_u32_decode(const uint8_t *buf, size_t n, uint32_t *v, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    uint32_t x = sl_reader_u32le(&r);
    int rc = sl_reader_finish(&r, err, "WAIT");
    if (!rc)
        *v = x;
    return rc;
}

int sl_fed_text_encode(const char *text, uint8_t **out, size_t *n, sl_err *err)
{
    size_t len = strlen(text);
    if (len > SL_WIRE_MAX_TEXT || !printable((const uint8_t *)text, len))
        return sl_err_set(err, SL_EINVAL, "DONE: reason of %zu bytes is too long or not printable",
                          len);
    sl_writer w;
    sl_writer_init(&w, SL_WIRE_MAX_PAYLOAD);
    sl_writer_blob32(&w, text, len);
    return take(&w, out, n, err, "DONE");
}

int sl_fed_text_decode(const uint8_t *buf, size_t n, char out[SL_WIRE_MAX_TEXT + 1], sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    size_t len = 0;
    const uint8_t *p = sl_reader_blob32(&r, SL_WIRE_MAX_TEXT, &len);
    int rc = sl_reader_finish(&r, err, "DONE");
    if (rc)
        return rc;
    if (!printable(p, len))
        return sl_err_set(err, SL_EFORMAT, "DONE: reason is not printable text");
    memcpy(out, p, len);
    out[len] = 0;
    return 0;
}

int sl_fed_task_encode(uint64_t round, uint8_t kind, const void *body, size_t len, uint8_t **out,
                       size_t *n, sl_err *err)
{
    if (kind < SL_FED_TASK_TRAIN || kind > SL_FED_TASK_RECEIPT)
        return sl_err_set(err, SL_EINVAL, "TASK: unknown kind %u", kind);
    sl_writer w;
    sl_writer_init(&w, SL_WIRE_MAX_PAYLOAD);
    sl_writer_u64le(&w, round);
    sl_writer_u8(&w, kind);
    sl_writer_bytes(&w, body, len);
    return take(&w, out, n, err, "TASK");
}

int sl_fed_task_decode(const uint8_t *buf, size_t n, sl_fed_task *t, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    sl_fed_task x;
    x.round = sl_reader_u64le(&r);
    x.kind = sl_reader_u8(&r);
    x.len = sl_reader_remaining(&r);
    x.body = sl_reader_bytes(&r, x.len);
    int rc = sl_reader_finish(&r, err, "TASK");
    if (rc)
        return rc;
    if (x.kind < SL_FED_TASK_TRAIN || x.kind > SL_FED_TASK_RECEIPT)
        return sl_err_set(err, SL_EFORMAT, "TASK: unknown kind %u at offset 8", x.kind);
    if (x.round == 0)
        return sl_err_set(err, SL_EFORMAT, "TASK: round 0");
    *t = x;
    return 0;
}

int sl_fed_train_encode(uint64_t round, const sl_fed_train *t, uint8_t **out, size_t *n,
                        sl_err *err)
{
    if (t->nlayers > SL_FEDMSG_MAX_LAYERS || t->n_sites > SL_SECAGG_MAX_SITES ||
        t->dim > SL_FEDMSG_MAX_DIM || t->dim != t->dp.dim)
        return sl_err_set(err, SL_ELIMIT, "TRAIN: %u layers, %u sites, dim %u (dp dim %u)",
                          t->nlayers, t->n_sites, t->dim, t->dp.dim);
    sl_writer w;
    sl_writer_init(&w, SL_WIRE_MAX_PAYLOAD);
    sl_writer_u64le(&w, round);
    sl_writer_u8(&w, SL_FED_TASK_TRAIN);
    sl_writer_u32le(&w, t->rank);
    put_f32(&w, t->alpha);
    sl_writer_u32le(&w, t->targets);
    sl_writer_u32le(&w, t->nlayers);
    for (uint32_t i = 0; i < t->nlayers; i++)
        sl_writer_u32le(&w, t->layers[i]);
    sl_writer_u32le(&w, t->steps);
    sl_writer_u32le(&w, t->batch);
    sl_writer_u32le(&w, t->seq);
    put_f32(&w, t->lr);
    sl_writer_u64le(&w, t->seed);
    const sl_dp_params *p = &t->dp;
    sl_writer_u32le(&w, p->dim);
    put_f64(&w, p->clip);
    put_f64(&w, p->scale);
    put_f64(&w, p->sigma);
    sl_writer_u32le(&w, p->threshold);
    put_f64(&w, p->beta);
    sl_writer_u8(&w, (uint8_t)p->mode);
    sl_writer_u8(&w, (uint8_t)p->bits);
    sl_writer_bytes(&w, p->rotation_seed, 32);
    const sl_secagg_config *c = &t->sa;
    sl_writer_u32le(&w, c->cohort);
    sl_writer_u32le(&w, c->min_cohort);
    sl_writer_u32le(&w, c->threshold);
    sl_writer_u32le(&w, c->degree);
    sl_writer_u32le(&w, c->share_threshold);
    put_f64(&w, c->dropout);
    sl_writer_u32le(&w, c->dim);
    sl_writer_u8(&w, (uint8_t)c->bits);
    sl_writer_u32le(&w, t->n_sites);
    for (uint32_t i = 0; i < t->n_sites; i++) {
        if (!t->cert_lens[i] || t->cert_lens[i] > SL_WIRE_MAX_CERT) {
            sl_writer_fini(&w);
            return sl_err_set(err, SL_ELIMIT, "TRAIN: certificate of site id %u has %u bytes "
                              "(1..%u)", t->ids[i], t->cert_lens[i], SL_WIRE_MAX_CERT);
        }
        sl_writer_u32le(&w, t->ids[i]);
        sl_writer_blob32(&w, t->certs[i], t->cert_lens[i]);
    }
    sl_writer_u32le(&w, t->dim);
    uint8_t *v = sl_writer_reserve(&w, (size_t)t->dim * 4);
    if (v)
        for (uint32_t i = 0; i < t->dim; i++) {
            uint32_t u;
            memcpy(&u, &t->global[i], 4);
            v[4 * i] = (uint8_t)u;
            v[4 * i + 1] = (uint8_t)(u >> 8);
            v[4 * i + 2] = (uint8_t)(u >> 16);
            v[4 * i + 3] = (uint8_t)(u >> 24);
        }
    return take(&w, out, n, err, "TRAIN");
}

void sl_fed_train_fini(sl_fed_train *t)
{
    free(t->ids);
    free(t->pks);
    free(t->certs);
    free(t->cert_lens);
    free(t->global);
    t->ids = NULL;
    t->pks = NULL;
    t->certs = NULL;
    t->cert_lens = NULL;
    t->global = NULL;
}

int sl_fed_train_decode(const uint8_t *body, size_t len, sl_fed_train *out, sl_err *err)
{
    sl_fed_train t;
    memset(&t, 0, sizeof t);
    memset(out, 0, sizeof *out);
    sl_reader r;
    sl_reader_init(&r, body, len);
    int rc = 0;
    t.rank = sl_reader_u32le(&r);
    t.alpha = get_f32(&r);
    t.targets = sl_reader_u32le(&r);
    t.nlayers = sl_reader_u32le(&r);
    if (sl_reader_ok(&r) && t.nlayers > SL_FEDMSG_MAX_LAYERS)
        return sl_err_set(err, SL_EFORMAT, "TRAIN: %u layers (at most %u)", t.nlayers,
                          SL_FEDMSG_MAX_LAYERS);
    for (uint32_t i = 0; i < t.nlayers; i++)
        t.layers[i] = sl_reader_u32le(&r);
    t.steps = sl_reader_u32le(&r);
    t.batch = sl_reader_u32le(&r);
    t.seq = sl_reader_u32le(&r);
    t.lr = get_f32(&r);
    t.seed = sl_reader_u64le(&r);
    sl_dp_params *p = &t.dp;
    p->dim = sl_reader_u32le(&r);
    p->clip = get_f64(&r);
    p->scale = get_f64(&r);
    p->sigma = get_f64(&r);
    p->threshold = sl_reader_u32le(&r);
    p->beta = get_f64(&r);
    p->mode = sl_reader_u8(&r);
    p->bits = sl_reader_u8(&r);
    sl_reader_copy(&r, p->rotation_seed, 32);
    sl_secagg_config *c = &t.sa;
    c->cohort = sl_reader_u32le(&r);
    c->min_cohort = sl_reader_u32le(&r);
    c->threshold = sl_reader_u32le(&r);
    c->degree = sl_reader_u32le(&r);
    c->share_threshold = sl_reader_u32le(&r);
    c->dropout = get_f64(&r);
    c->dim = sl_reader_u32le(&r);
    c->bits = sl_reader_u8(&r);
    t.n_sites = sl_reader_u32le(&r);
    if (!sl_reader_ok(&r))
        return sl_reader_finish(&r, err, "TRAIN");
    if (t.n_sites > SL_SECAGG_MAX_SITES || (size_t)t.n_sites * 9 > sl_reader_remaining(&r))
        return sl_err_set(err, SL_EFORMAT, "TRAIN: %u sites in the cohort (at most %u, and "
                          "at least 9 bytes each)", t.n_sites, SL_SECAGG_MAX_SITES);
    size_t ns = t.n_sites ? t.n_sites : 1;
    t.ids = malloc(ns * sizeof *t.ids);
    t.pks = calloc(ns, sizeof *t.pks);
    t.certs = malloc(ns * sizeof *t.certs);
    t.cert_lens = malloc(ns * sizeof *t.cert_lens);
    if (!t.ids || !t.pks || !t.certs || !t.cert_lens) {
        rc = sl_err_set(err, SL_ENOMEM, "TRAIN: out of memory for %u sites", t.n_sites);
        goto fail;
    }
    for (uint32_t i = 0; i < t.n_sites; i++) {
        size_t cl = 0;
        t.ids[i] = sl_reader_u32le(&r);
        t.certs[i] = sl_reader_blob32(&r, SL_WIRE_MAX_CERT, &cl);
        t.cert_lens[i] = (uint32_t)cl;
        if (sl_reader_ok(&r) && !cl) {
            rc = sl_err_set(err, SL_EFORMAT, "TRAIN: empty certificate at cohort entry %u", i);
            goto fail;
        }
        if (i && t.ids[i] <= t.ids[i - 1] && sl_reader_ok(&r)) {
            rc = sl_err_set(err, SL_EFORMAT, "TRAIN: cohort ids not increasing at entry %u", i);
            goto fail;
        }
    }
    t.dim = sl_reader_u32le(&r);
    if (sl_reader_ok(&r) && (t.dim > SL_FEDMSG_MAX_DIM || (size_t)t.dim * 4 != sl_reader_remaining(&r))) {
        rc = sl_err_set(err, SL_EFORMAT, "TRAIN: adapter of %u floats with %zu bytes left",
                        t.dim, sl_reader_remaining(&r));
        goto fail;
    }
    const uint8_t *v = sl_reader_bytes(&r, (size_t)t.dim * 4);
    if ((rc = sl_reader_finish(&r, err, "TRAIN")))
        goto fail;
    if (t.dim != p->dim || !t.dim) {
        rc = sl_err_set(err, SL_EFORMAT, "TRAIN: adapter of %u floats, DP dimension %u", t.dim,
                        p->dim);
        goto fail;
    }
    if (!isfinite(t.alpha) || !isfinite(t.lr) || !isfinite(p->clip) || !isfinite(p->scale) ||
        !isfinite(p->sigma) || !isfinite(p->beta) || !isfinite(c->dropout)) {
        rc = sl_err_set(err, SL_EFORMAT, "TRAIN: a parameter is not a finite number");
        goto fail;
    }
    if (!t.steps || t.steps > SL_FEDMSG_MAX_STEPS || !t.batch || t.batch > SL_FEDMSG_MAX_BATCH ||
        !t.seq || t.seq > SL_FEDMSG_MAX_SEQ) {
        rc = sl_err_set(err, SL_EFORMAT, "TRAIN: steps %u, batch %u, seq %u out of range",
                        t.steps, t.batch, t.seq);
        goto fail;
    }
    if (!(t.global = malloc((size_t)t.dim * 4))) {
        rc = sl_err_set(err, SL_ENOMEM, "TRAIN: out of memory for %u floats", t.dim);
        goto fail;
    }
    for (uint32_t i = 0; i < t.dim; i++) {
        uint32_t u = (uint32_t)v[4 * i] | (uint32_t)v[4 * i + 1] << 8 |
                     (uint32_t)v[4 * i + 2] << 16 | (uint32_t)v[4 * i + 3] << 24;
        memcpy(&t.global[i], &u, 4);
        if (!isfinite(t.global[i])) {
            rc = sl_err_set(err, SL_EFORMAT, "TRAIN: adapter value %u is not finite", i);
            goto fail;
        }
    }
    *out = t;
    return 0;
fail:
    sl_fed_train_fini(&t);
    return rc;
}

int sl_fed_cohort_verify(sl_fed_train *t, sl_trust *trust, sl_err *err)
{
    if (!t->n_sites)
        return 0;
    char (*names)[SL_IDENTITY_NAME_MAX + 1] = calloc(t->n_sites, sizeof *names);
    if (!names)
        return sl_err_set(err, SL_ENOMEM, "out of memory for %u certificates", t->n_sites);
    int rc = 0;
    for (uint32_t i = 0; i < t->n_sites && !rc; i++) {
        sl_cert *c = NULL;
        sl_cert_info ci;
        sl_err e = {0};
        if (sl_identity_cert_parse_der(t->certs[i], t->cert_lens[i], &c, &e) ||
            sl_identity_verify(trust, c, SL_IDENTITY_ROLE_SITE, 0, &ci, &e)) {
            rc = sl_err_set(err, SL_ECRYPTO, "the certificate of cohort member %u is refused: %s",
                            t->ids[i], e.msg);
        }
        sl_identity_cert_free(c);
        for (uint32_t j = 0; j < i && !rc; j++)
            if (sodium_memcmp(t->pks[j], ci.pk, 32) == 0 || strcmp(names[j], ci.name) == 0)
                rc = sl_err_set(err, SL_ECRYPTO, "cohort members %u and %u are the same site "
                                "('%s')", t->ids[j], t->ids[i], ci.name);
        if (!rc) {
            memcpy(t->pks[i], ci.pk, 32);
            memcpy(names[i], ci.name, sizeof names[i]);
        }
    }
    if (rc)
        memset(t->pks, 0, (size_t)t->n_sites * sizeof *t->pks);
    free(names);
    return rc;
}

int sl_fed_submit_encode(uint64_t round, const void *msg, size_t len, uint8_t **out, size_t *n,
                         sl_err *err)
{
    sl_writer w;
    sl_writer_init(&w, SL_WIRE_MAX_PAYLOAD);
    sl_writer_u64le(&w, round);
    sl_writer_bytes(&w, msg, len);
    return take(&w, out, n, err, "SUBMIT");
}

int sl_fed_submit_decode(const uint8_t *buf, size_t n, uint64_t *round, const uint8_t **msg,
                         size_t *len, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    uint64_t rd = sl_reader_u64le(&r);
    size_t ml = sl_reader_remaining(&r);
    const uint8_t *m = sl_reader_bytes(&r, ml);
    int rc = sl_reader_finish(&r, err, "SUBMIT");
    if (rc)
        return rc;
    if (!ml)
        return sl_err_set(err, SL_EFORMAT, "SUBMIT: no message after the round");
    *round = rd;
    *msg = m;
    *len = ml;
    return 0;
}
