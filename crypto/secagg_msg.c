#include "crypto/secagg_msg.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/reader.h"
#include "shared/writer.h"

const char *sl_secagg_msg_type_name(int type)
{
    switch (type) {
    case SL_SECAGG_MSG_ADVERTISE: return "advertise";
    case SL_SECAGG_MSG_KEYLIST: return "keylist";
    case SL_SECAGG_MSG_SHARES: return "shares";
    case SL_SECAGG_MSG_DELIVER: return "deliver";
    case SL_SECAGG_MSG_MASKED: return "masked";
    case SL_SECAGG_MSG_UNMASK_REQ: return "unmask-request";
    case SL_SECAGG_MSG_UNMASK: return "unmask";
    default: return "unknown";
    }
}

static void put_advert(sl_writer *w, const sl_secagg_advert *a)
{
    sl_writer_u32le(w, a->site);
    sl_writer_bytes(w, a->c_pk, sizeof a->c_pk);
    sl_writer_bytes(w, a->s_pk, sizeof a->s_pk);
    sl_writer_bytes(w, a->commit, sizeof a->commit);
    sl_writer_bytes(w, a->sig, sizeof a->sig);
}

static void get_advert(sl_reader *r, sl_secagg_advert *a)
{
    a->site = sl_reader_u32le(r);
    sl_reader_copy(r, a->c_pk, sizeof a->c_pk);
    sl_reader_copy(r, a->s_pk, sizeof a->s_pk);
    sl_reader_copy(r, a->commit, sizeof a->commit);
    sl_reader_copy(r, a->sig, sizeof a->sig);
}

enum { ADVERT_WIRE = 4 + 32 + 32 + 32 + 64, SEALED_WIRE = 4 + SL_SECAGG_BUNDLE_BYTES,
       SHARE_WIRE = 4 + 1 + SL_SECAGG_SHARE_BYTES };

/* Format rules the encoder and the decoder share. */
static int check_body(const sl_secagg_msg *m, sl_err *err)
{
    const char *t = sl_secagg_msg_type_name(m->type);
    switch (m->type) {
    case SL_SECAGG_MSG_ADVERTISE:
        return 0;
    case SL_SECAGG_MSG_KEYLIST:
        if (m->count > SL_SECAGG_MSG_MAX_LIST)
            return sl_err_set(err, SL_ELIMIT, "secagg %s: %u sites (limit %u)", t, m->count,
                              SL_SECAGG_MSG_MAX_LIST);
        if (m->params.bits != 32 && m->params.bits != 64)
            return sl_err_set(err, SL_EFORMAT, "secagg %s: modulus bits %u", t, m->params.bits);
        if (m->params.dim == 0 || m->params.dim > SL_SECAGG_MSG_MAX_DIM)
            return sl_err_set(err, SL_ELIMIT, "secagg %s: dim %u outside 1..%u", t,
                              m->params.dim, SL_SECAGG_MSG_MAX_DIM);
        for (uint32_t i = 1; i < m->count; i++)
            if (m->adverts[i].site <= m->adverts[i - 1].site)
                return sl_err_set(err, SL_EFORMAT, "secagg %s: site %u after site %u (ids must "
                                  "increase)", t, m->adverts[i].site, m->adverts[i - 1].site);
        return 0;
    case SL_SECAGG_MSG_SHARES:
    case SL_SECAGG_MSG_DELIVER:
        if (m->count > SL_SECAGG_MSG_MAX_GROUP)
            return sl_err_set(err, SL_ELIMIT, "secagg %s: %u bundles (limit %u)", t, m->count,
                              SL_SECAGG_MSG_MAX_GROUP);
        for (uint32_t i = 1; i < m->count; i++)
            if (m->sealed[i].peer <= m->sealed[i - 1].peer)
                return sl_err_set(err, SL_EFORMAT, "secagg %s: site %u after site %u (ids must "
                                  "increase)", t, m->sealed[i].peer, m->sealed[i - 1].peer);
        return 0;
    case SL_SECAGG_MSG_MASKED:
        if (m->bits != 32 && m->bits != 64)
            return sl_err_set(err, SL_EFORMAT, "secagg %s: modulus bits %u", t, m->bits);
        if (m->dim == 0 || m->dim > SL_SECAGG_MSG_MAX_DIM)
            return sl_err_set(err, SL_ELIMIT, "secagg %s: dim %u outside 1..%u", t, m->dim,
                              SL_SECAGG_MSG_MAX_DIM);
        return 0;
    case SL_SECAGG_MSG_UNMASK_REQ:
        if (m->count > SL_SECAGG_MSG_MAX_LIST)
            return sl_err_set(err, SL_ELIMIT, "secagg %s: %u survivors (limit %u)", t, m->count,
                              SL_SECAGG_MSG_MAX_LIST);
        for (uint32_t i = 1; i < m->count; i++)
            if (m->ids[i] <= m->ids[i - 1])
                return sl_err_set(err, SL_EFORMAT, "secagg %s: site %u after site %u (ids must "
                                  "increase)", t, m->ids[i], m->ids[i - 1]);
        return 0;
    case SL_SECAGG_MSG_UNMASK:
        if (m->count > SL_SECAGG_MSG_MAX_GROUP)
            return sl_err_set(err, SL_ELIMIT, "secagg %s: %u shares (limit %u)", t, m->count,
                              SL_SECAGG_MSG_MAX_GROUP);
        for (uint32_t i = 0; i < m->count; i++) {
            if (m->shares[i].kind != SL_SECAGG_SHARE_SELF && m->shares[i].kind != SL_SECAGG_SHARE_KEY)
                return sl_err_set(err, SL_EFORMAT, "secagg %s: share %u has kind %u", t, i,
                                  m->shares[i].kind);
            if (i && m->shares[i].about < m->shares[i - 1].about)
                return sl_err_set(err, SL_EFORMAT, "secagg %s: share about site %u after site %u "
                                  "(ids must not decrease)", t, m->shares[i].about,
                                  m->shares[i - 1].about);
        }
        return 0;
    default:
        return sl_err_set(err, SL_EFORMAT, "secagg message: unknown type %u", m->type);
    }
}

int sl_secagg_msg_encode(const sl_secagg_msg *m, uint8_t **out, size_t *len, sl_err *err)
{
    int rc = check_body(m, err);
    if (rc) {
        if (rc == SL_EFORMAT && err)
            err->code = rc = SL_EINVAL; /* our own message breaks the format: a caller bug */
        return rc == SL_EFORMAT ? SL_EINVAL : rc;
    }
    sl_writer w;
    sl_writer_init(&w, SL_SECAGG_MSG_MAX);
    sl_writer_u8(&w, SL_SECAGG_MSG_VERSION);
    sl_writer_u8(&w, m->type);
    sl_writer_u64le(&w, m->round);
    switch (m->type) {
    case SL_SECAGG_MSG_ADVERTISE:
        put_advert(&w, &m->advert);
        break;
    case SL_SECAGG_MSG_KEYLIST:
        sl_writer_u32le(&w, m->params.degree);
        sl_writer_u32le(&w, m->params.share_threshold);
        sl_writer_u32le(&w, m->params.threshold);
        sl_writer_u32le(&w, m->params.min_cohort);
        sl_writer_u32le(&w, m->params.dim);
        sl_writer_u8(&w, m->params.bits);
        sl_writer_u32le(&w, m->count);
        for (uint32_t i = 0; i < m->count; i++)
            put_advert(&w, &m->adverts[i]);
        break;
    case SL_SECAGG_MSG_SHARES:
    case SL_SECAGG_MSG_DELIVER:
        sl_writer_u32le(&w, m->site);
        sl_writer_u32le(&w, m->count);
        for (uint32_t i = 0; i < m->count; i++) {
            sl_writer_u32le(&w, m->sealed[i].peer);
            sl_writer_bytes(&w, m->sealed[i].bundle, SL_SECAGG_BUNDLE_BYTES);
        }
        break;
    case SL_SECAGG_MSG_MASKED: {
        sl_writer_u32le(&w, m->site);
        sl_writer_u8(&w, m->bits);
        sl_writer_u32le(&w, m->dim);
        size_t wb = m->bits / 8;
        uint8_t *p = sl_writer_reserve(&w, (size_t)m->dim * wb);
        if (p) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            memcpy(p, m->vec, (size_t)m->dim * wb);
#else
            for (size_t i = 0; i < m->dim; i++) {
                uint64_t v = wb == 4 ? ((const uint32_t *)m->vec)[i] : ((const uint64_t *)m->vec)[i];
                for (size_t b = 0; b < wb; b++)
                    p[i * wb + b] = (uint8_t)(v >> (8 * b));
            }
#endif
        }
        break;
    }
    case SL_SECAGG_MSG_UNMASK_REQ:
        sl_writer_u32le(&w, m->count);
        for (uint32_t i = 0; i < m->count; i++)
            sl_writer_u32le(&w, m->ids[i]);
        break;
    case SL_SECAGG_MSG_UNMASK:
        sl_writer_u32le(&w, m->site);
        sl_writer_u32le(&w, m->count);
        for (uint32_t i = 0; i < m->count; i++) {
            sl_writer_u32le(&w, m->shares[i].about);
            sl_writer_u8(&w, m->shares[i].kind);
            sl_writer_bytes(&w, m->shares[i].share, SL_SECAGG_SHARE_BYTES);
        }
        break;
    }
    if (!sl_writer_ok(&w)) {
        sl_writer_fini(&w);
        return sl_err_set(err, SL_ENOMEM, "secagg %s: cannot encode (out of memory or above %zu "
                          "bytes)", sl_secagg_msg_type_name(m->type), (size_t)SL_SECAGG_MSG_MAX);
    }
    *out = sl_writer_take(&w, len);
    return 0;
}

/* Reads a u32 count and checks it against the limit and the bytes left
 * (each entry takes `each` bytes) before anything is allocated. */
static int get_count(sl_reader *r, uint32_t max, size_t each, uint32_t *n, const char *t,
                     sl_err *err)
{
    size_t at = r->off;
    uint32_t c = sl_reader_u32le(r);
    if (!sl_reader_ok(r))
        return sl_err_set(err, SL_EFORMAT, "secagg %s: truncated before the count (byte %zu)", t,
                          at);
    if (c > max)
        return sl_err_set(err, SL_ELIMIT, "secagg %s: count %u at byte %zu exceeds %u", t, c, at,
                          max);
    if ((size_t)c * each > sl_reader_remaining(r))
        return sl_err_set(err, SL_EFORMAT, "secagg %s: count %u at byte %zu needs %zu bytes, %zu "
                          "left", t, c, at, (size_t)c * each, sl_reader_remaining(r));
    *n = c;
    return 0;
}

int sl_secagg_msg_decode(sl_secagg_msg *out, const uint8_t *buf, size_t len, sl_err *err)
{
    sl_secagg_msg m;
    memset(&m, 0, sizeof m);
    memset(out, 0, sizeof *out);
    sl_reader r;
    sl_reader_init(&r, buf, len);
    uint8_t ver = sl_reader_u8(&r);
    m.type = sl_reader_u8(&r);
    m.round = sl_reader_u64le(&r);
    if (!sl_reader_ok(&r))
        return sl_err_set(err, SL_EFORMAT, "secagg message: %zu bytes, shorter than the 10-byte "
                          "header", len);
    if (ver != SL_SECAGG_MSG_VERSION)
        return sl_err_set(err, SL_EFORMAT, "secagg message: version %u (this build speaks %d)",
                          ver, SL_SECAGG_MSG_VERSION);
    const char *t = sl_secagg_msg_type_name(m.type);
    int rc = 0;
    switch (m.type) {
    case SL_SECAGG_MSG_ADVERTISE:
        get_advert(&r, &m.advert);
        m.site = m.advert.site;
        break;
    case SL_SECAGG_MSG_KEYLIST:
        m.params.degree = sl_reader_u32le(&r);
        m.params.share_threshold = sl_reader_u32le(&r);
        m.params.threshold = sl_reader_u32le(&r);
        m.params.min_cohort = sl_reader_u32le(&r);
        m.params.dim = sl_reader_u32le(&r);
        m.params.bits = sl_reader_u8(&r);
        if ((rc = get_count(&r, SL_SECAGG_MSG_MAX_LIST, ADVERT_WIRE, &m.count, t, err)))
            goto fail;
        if (m.count && !(m.adverts = calloc(m.count, sizeof *m.adverts))) {
            rc = sl_err_set(err, SL_ENOMEM, "secagg %s: out of memory", t);
            goto fail;
        }
        for (uint32_t i = 0; i < m.count; i++)
            get_advert(&r, &m.adverts[i]);
        break;
    case SL_SECAGG_MSG_SHARES:
    case SL_SECAGG_MSG_DELIVER:
        m.site = sl_reader_u32le(&r);
        if ((rc = get_count(&r, SL_SECAGG_MSG_MAX_GROUP, SEALED_WIRE, &m.count, t, err)))
            goto fail;
        if (m.count && !(m.sealed = calloc(m.count, sizeof *m.sealed))) {
            rc = sl_err_set(err, SL_ENOMEM, "secagg %s: out of memory", t);
            goto fail;
        }
        for (uint32_t i = 0; i < m.count; i++) {
            m.sealed[i].peer = sl_reader_u32le(&r);
            sl_reader_copy(&r, m.sealed[i].bundle, SL_SECAGG_BUNDLE_BYTES);
        }
        break;
    case SL_SECAGG_MSG_MASKED: {
        m.site = sl_reader_u32le(&r);
        m.bits = sl_reader_u8(&r);
        m.dim = sl_reader_u32le(&r);
        if (!sl_reader_ok(&r))
            break;
        if (m.bits != 32 && m.bits != 64) {
            rc = sl_err_set(err, SL_EFORMAT, "secagg %s: modulus bits %u at byte 14", t, m.bits);
            goto fail;
        }
        if (m.dim == 0 || m.dim > SL_SECAGG_MSG_MAX_DIM) {
            rc = sl_err_set(err, SL_ELIMIT, "secagg %s: dim %u at byte 15 outside 1..%u", t, m.dim,
                            SL_SECAGG_MSG_MAX_DIM);
            goto fail;
        }
        m.words = sl_reader_bytes(&r, (size_t)m.dim * (m.bits / 8));
        break;
    }
    case SL_SECAGG_MSG_UNMASK_REQ:
        if ((rc = get_count(&r, SL_SECAGG_MSG_MAX_LIST, 4, &m.count, t, err)))
            goto fail;
        if (m.count && !(m.ids = calloc(m.count, sizeof *m.ids))) {
            rc = sl_err_set(err, SL_ENOMEM, "secagg %s: out of memory", t);
            goto fail;
        }
        for (uint32_t i = 0; i < m.count; i++)
            m.ids[i] = sl_reader_u32le(&r);
        break;
    case SL_SECAGG_MSG_UNMASK:
        m.site = sl_reader_u32le(&r);
        if ((rc = get_count(&r, SL_SECAGG_MSG_MAX_GROUP, SHARE_WIRE, &m.count, t, err)))
            goto fail;
        if (m.count && !(m.shares = calloc(m.count, sizeof *m.shares))) {
            rc = sl_err_set(err, SL_ENOMEM, "secagg %s: out of memory", t);
            goto fail;
        }
        for (uint32_t i = 0; i < m.count; i++) {
            m.shares[i].about = sl_reader_u32le(&r);
            m.shares[i].kind = sl_reader_u8(&r);
            sl_reader_copy(&r, m.shares[i].share, SL_SECAGG_SHARE_BYTES);
        }
        break;
    default:
        return sl_err_set(err, SL_EFORMAT, "secagg message: unknown type %u at byte 1", m.type);
    }
    char what[48];
    snprintf(what, sizeof what, "secagg %s message", t);
    if ((rc = sl_reader_finish(&r, err, what)) || (rc = check_body(&m, err)))
        goto fail;
    *out = m;
    return 0;
fail:
    sl_secagg_msg_fini(&m);
    return rc;
}

void sl_secagg_msg_fini(sl_secagg_msg *m)
{
    if (!m)
        return;
    free(m->adverts);
    free(m->sealed);
    free(m->ids);
    if (m->shares)
        sodium_memzero(m->shares, (size_t)m->count * sizeof *m->shares);
    free(m->shares);
    memset(m, 0, sizeof *m);
}
