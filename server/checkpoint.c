#include "server/checkpoint.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fsutil.h"
#include "shared/reader.h"
#include "shared/writer.h"

#define MAGIC "SLCKPT01"
#define DIGEST 32u

int sl_ckpt_init(sl_ckpt *c, uint32_t dim, int optimizer, sl_err *err)
{
    if (!dim || dim > SL_CKPT_MAX_DIM)
        return sl_err_set(err, SL_ELIMIT, "checkpoint: adapter of %u floats (1..%u)", dim,
                          SL_CKPT_MAX_DIM);
    sl_ckpt t;
    memset(&t, 0, sizeof t);
    t.next_round = 1;
    t.optimizer = optimizer;
    t.dim = dim;
    sl_acct_init(&t.acct);
    t.global = calloc(dim, sizeof *t.global);
    if (optimizer == SL_CKPT_FEDADAM) {
        t.m = calloc(dim, sizeof *t.m);
        t.v = calloc(dim, sizeof *t.v);
    }
    if (!t.global || (optimizer == SL_CKPT_FEDADAM && (!t.m || !t.v))) {
        sl_ckpt_fini(&t);
        return sl_err_set(err, SL_ENOMEM, "checkpoint: out of memory for %u floats", dim);
    }
    *c = t;
    return 0;
}

void sl_ckpt_fini(sl_ckpt *c)
{
    free(c->global);
    free(c->m);
    free(c->v);
    c->global = c->m = c->v = NULL;
}

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

static void put_floats(sl_writer *w, const float *x, uint32_t n)
{
    uint8_t *p = sl_writer_reserve(w, (size_t)n * 4);
    if (!p)
        return;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        p[4 * i] = (uint8_t)u;
        p[4 * i + 1] = (uint8_t)(u >> 8);
        p[4 * i + 2] = (uint8_t)(u >> 16);
        p[4 * i + 3] = (uint8_t)(u >> 24);
    }
}

/* 0 or the index + 1 of the first non-finite value. */
static size_t get_floats(sl_reader *r, float *x, uint32_t n)
{
    const uint8_t *p = sl_reader_bytes(r, (size_t)n * 4);
    if (!p)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                     (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        memcpy(&x[i], &u, 4);
        if (!isfinite(x[i]))
            return (size_t)i + 1;
    }
    return 0;
}

static void put_mech(sl_writer *w, const sl_acct_mech *m)
{
    sl_writer_u8(w, (uint8_t)m->mode);
    put_f64(w, m->q);
    put_f64(w, m->clip);
    put_f64(w, m->scale);
    put_f64(w, m->sigma2_grid);
    put_f64(w, m->central_var_grid);
    sl_writer_u64le(w, m->dim);
    sl_writer_u32le(w, m->sampled);
    sl_writer_u32le(w, m->received);
    sl_writer_u32le(w, m->survivors);
    sl_writer_u32le(w, m->threshold);
    sl_writer_u32le(w, m->modulus_bits);
    put_f64(w, m->rounding_beta);
}

static void get_mech(sl_reader *r, sl_acct_mech *m)
{
    m->mode = sl_reader_u8(r);
    m->q = get_f64(r);
    m->clip = get_f64(r);
    m->scale = get_f64(r);
    m->sigma2_grid = get_f64(r);
    m->central_var_grid = get_f64(r);
    m->dim = sl_reader_u64le(r);
    m->sampled = sl_reader_u32le(r);
    m->received = sl_reader_u32le(r);
    m->survivors = sl_reader_u32le(r);
    m->threshold = sl_reader_u32le(r);
    m->modulus_bits = sl_reader_u32le(r);
    m->rounding_beta = get_f64(r);
}

int sl_ckpt_encode(const sl_ckpt *c, uint8_t **out, size_t *n, sl_err *err)
{
    if (!c->dim || c->dim > SL_CKPT_MAX_DIM || c->acct.n > SL_ACCT_MAX_ORDERS)
        return sl_err_set(err, SL_EINVAL, "checkpoint: dim %u, %zu orders", c->dim, c->acct.n);
    sl_writer w;
    sl_writer_init(&w, 0);
    sl_writer_bytes(&w, MAGIC, 8);
    sl_writer_u32le(&w, SL_CKPT_VERSION);
    sl_writer_u64le(&w, c->round);
    sl_writer_u64le(&w, c->next_round);
    sl_writer_u64le(&w, c->pending_round);
    put_mech(&w, &c->pending);
    sl_writer_u32le(&w, (uint32_t)c->acct.n);
    for (size_t i = 0; i < c->acct.n; i++)
        put_f64(&w, c->acct.orders[i]);
    for (size_t i = 0; i < c->acct.n; i++)
        put_f64(&w, c->acct.rdp[i]);
    sl_writer_u64le(&w, c->acct.steps);
    sl_writer_u8(&w, (uint8_t)c->optimizer);
    sl_writer_u64le(&w, c->adam_t);
    sl_writer_u32le(&w, c->dim);
    put_floats(&w, c->global, c->dim);
    if (c->optimizer == SL_CKPT_FEDADAM) {
        put_floats(&w, c->m, c->dim);
        put_floats(&w, c->v, c->dim);
    }
    uint8_t *d = sl_writer_reserve(&w, DIGEST);
    if (!sl_writer_ok(&w)) {
        sl_writer_fini(&w);
        return sl_err_set(err, SL_ENOMEM, "checkpoint: out of memory");
    }
    crypto_generichash(d, DIGEST, w.buf, w.len - DIGEST, NULL, 0);
    *out = sl_writer_take(&w, n);
    return 0;
}

int sl_ckpt_decode(const uint8_t *buf, size_t n, sl_ckpt *out, sl_err *err)
{
    if (n < 8 + DIGEST || memcmp(buf, MAGIC, 8) != 0)
        return sl_err_set(err, SL_EFORMAT, "checkpoint: not a sealora checkpoint (magic)");
    uint8_t d[DIGEST];
    crypto_generichash(d, DIGEST, buf, n - DIGEST, NULL, 0);
    if (sodium_memcmp(d, buf + n - DIGEST, DIGEST) != 0)
        return sl_err_set(err, SL_EFORMAT,
                          "checkpoint: digest mismatch (the file is damaged or was edited)");
    sl_reader r;
    sl_reader_init(&r, buf + 8, n - 8 - DIGEST);
    sl_ckpt t;
    memset(&t, 0, sizeof t);
    int rc;
    uint32_t ver = sl_reader_u32le(&r);
    if (sl_reader_ok(&r) && ver != SL_CKPT_VERSION)
        return sl_err_set(err, SL_EFORMAT, "checkpoint: version %u, expected %u", ver,
                          SL_CKPT_VERSION);
    t.round = sl_reader_u64le(&r);
    t.next_round = sl_reader_u64le(&r);
    t.pending_round = sl_reader_u64le(&r);
    get_mech(&r, &t.pending);
    uint32_t no = sl_reader_u32le(&r);
    if (sl_reader_ok(&r) && (!no || no > SL_ACCT_MAX_ORDERS))
        return sl_err_set(err, SL_EFORMAT, "checkpoint: %u accountant orders (1..%u)", no,
                          SL_ACCT_MAX_ORDERS);
    t.acct.n = no;
    for (uint32_t i = 0; i < no; i++)
        t.acct.orders[i] = get_f64(&r);
    for (uint32_t i = 0; i < no; i++)
        t.acct.rdp[i] = get_f64(&r);
    t.acct.steps = sl_reader_u64le(&r);
    t.optimizer = sl_reader_u8(&r);
    t.adam_t = sl_reader_u64le(&r);
    t.dim = sl_reader_u32le(&r);
    if (!sl_reader_ok(&r))
        return sl_reader_finish(&r, err, "checkpoint");
    for (uint32_t i = 0; i < no; i++)
        if (!(t.acct.orders[i] > 1) || !isfinite(t.acct.orders[i]) || isnan(t.acct.rdp[i]) ||
            t.acct.rdp[i] < 0)
            return sl_err_set(err, SL_EFORMAT, "checkpoint: accountant order %u: %g / %g", i,
                              t.acct.orders[i], t.acct.rdp[i]);
    if (t.optimizer != SL_CKPT_FEDAVG && t.optimizer != SL_CKPT_FEDADAM)
        return sl_err_set(err, SL_EFORMAT, "checkpoint: optimizer %d", t.optimizer);
    size_t want = (size_t)t.dim * 4 * (t.optimizer == SL_CKPT_FEDADAM ? 3 : 1);
    if (!t.dim || t.dim > SL_CKPT_MAX_DIM || sl_reader_remaining(&r) != want)
        return sl_err_set(err, SL_EFORMAT, "checkpoint: adapter of %u floats with %zu bytes left",
                          t.dim, sl_reader_remaining(&r));
    if (t.next_round <= t.round || (t.pending_round && t.pending_round >= t.next_round))
        return sl_err_set(err, SL_EFORMAT, "checkpoint: rounds %llu / next %llu / pending %llu "
                          "inconsistent", (unsigned long long)t.round,
                          (unsigned long long)t.next_round, (unsigned long long)t.pending_round);
    if (t.pending_round && sl_acct_mech_check(&t.pending, err)) {
        sl_err_prefix(err, "checkpoint: pending round %llu", (unsigned long long)t.pending_round);
        if (err)
            err->code = SL_EFORMAT;
        return SL_EFORMAT;
    }
    int opt = t.optimizer;
    uint32_t dim = t.dim;
    sl_ckpt a;
    if ((rc = sl_ckpt_init(&a, dim, opt, err)))
        return rc;
    size_t bad = get_floats(&r, a.global, dim);
    if (!bad && opt == SL_CKPT_FEDADAM) {
        bad = get_floats(&r, a.m, dim);
        if (!bad)
            bad = get_floats(&r, a.v, dim);
    }
    if (bad) {
        sl_ckpt_fini(&a);
        return sl_err_set(err, SL_EFORMAT, "checkpoint: value %zu is not finite", bad - 1);
    }
    if ((rc = sl_reader_finish(&r, err, "checkpoint"))) {
        sl_ckpt_fini(&a);
        return rc;
    }
    t.global = a.global;
    t.m = a.m;
    t.v = a.v;
    *out = t;
    return 0;
}

int sl_ckpt_save(const char *path, const sl_ckpt *c, sl_err *err)
{
    uint8_t *buf;
    size_t n;
    int rc = sl_ckpt_encode(c, &buf, &n, err);
    if (rc)
        return rc;
    rc = sl_fs_write_atomic(path, buf, n, 0600, err);
    free(buf);
    return rc;
}

int sl_ckpt_load(const char *path, sl_ckpt *c, sl_err *err)
{
    if (!sl_fs_exists(path))
        return sl_err_set(err, SL_ENOTFOUND, "%s: no checkpoint", path);
    uint8_t *buf;
    size_t n;
    int rc = sl_fs_read_all(path, (size_t)SL_CKPT_MAX_DIM * 12 + (1u << 20), &buf, &n, err);
    if (rc)
        return rc;
    rc = sl_ckpt_decode(buf, n, c, err);
    free(buf);
    if (rc)
        sl_err_prefix(err, "%s", path);
    return rc;
}
