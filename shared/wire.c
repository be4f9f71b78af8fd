#include "shared/wire.h"

#include <stdlib.h>
#include <string.h>

#include "shared/reader.h"
#include "shared/writer.h"

const char *sl_wire_type_name(uint8_t type)
{
    switch (type) {
    case SL_WIRE_HELLO: return "HELLO";
    case SL_WIRE_HELLO_REPLY: return "HELLO_REPLY";
    case SL_WIRE_FINISH: return "FINISH";
    case SL_WIRE_FINISH_OK: return "FINISH_OK";
    case SL_WIRE_RESUME: return "RESUME";
    case SL_WIRE_RESUME_OK: return "RESUME_OK";
    case SL_WIRE_DATA: return "DATA";
    case SL_WIRE_REPLY: return "REPLY";
    case SL_WIRE_ERROR: return "ERROR";
    default: return "unknown";
    }
}

const char *sl_wire_code_name(uint16_t code)
{
    switch (code) {
    case SL_WIRE_ERR_VERSION: return "version";
    case SL_WIRE_ERR_MALFORMED: return "malformed";
    case SL_WIRE_ERR_STATE: return "state";
    case SL_WIRE_ERR_AUTH: return "auth";
    case SL_WIRE_ERR_REPLAY: return "replay";
    case SL_WIRE_ERR_SESSION: return "session";
    case SL_WIRE_ERR_DENIED: return "denied";
    case SL_WIRE_ERR_BUSY: return "busy";
    case SL_WIRE_ERR_NOTFOUND: return "notfound";
    case SL_WIRE_ERR_APP: return "app";
    default: return "unknown";
    }
}

int sl_wire_is_sealed(uint8_t type)
{
    return type == SL_WIRE_FINISH || type == SL_WIRE_FINISH_OK || type == SL_WIRE_DATA ||
           type == SL_WIRE_REPLY;
}

/* ---- helpers ------------------------------------------------------------ */

static int printable(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
            return 0;
    return 1;
}

/* Reads a u32-length text field of at most max printable bytes into out
 * (max + 1 bytes). Marks the reader failed on any violation. */
static void read_text(sl_reader *r, size_t max, char *out)
{
    size_t n = 0;
    const uint8_t *p = sl_reader_blob32(r, max, &n);
    if (!p || !printable(p, n)) {
        r->failed = 1;
        out[0] = 0;
        return;
    }
    memcpy(out, p, n);
    out[n] = 0;
}

static int write_text(sl_writer *w, const char *s, size_t max, const char *what, sl_err *err)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return sl_err_set(err, SL_ELIMIT, "%s: longer than %zu bytes", what, max);
    if (!printable((const uint8_t *)s, n))
        return sl_err_set(err, SL_EINVAL, "%s: not printable ASCII", what);
    sl_writer_blob32(w, s, n);
    return 0;
}

static int take(sl_writer *w, uint8_t **out, size_t *n, const char *what, sl_err *err)
{
    if (!sl_writer_ok(w)) {
        sl_writer_fini(w);
        return sl_err_set(err, SL_ENOMEM, "%s: cannot encode (out of memory or over the limit)",
                          what);
    }
    *out = sl_writer_take(w, n);
    return 0;
}

static void header(sl_writer *w, uint8_t type)
{
    sl_writer_u8(w, SL_WIRE_MAGIC0);
    sl_writer_u8(w, SL_WIRE_MAGIC1);
    sl_writer_u8(w, SL_WIRE_VERSION);
    sl_writer_u8(w, type);
}

/* ---- outer frames ------------------------------------------------------- */

void sl_wire_sealed_header(uint8_t out[SL_WIRE_SEALED_HDR], uint8_t type,
                           const sl_wire_sealed *s)
{
    out[0] = SL_WIRE_MAGIC0;
    out[1] = SL_WIRE_MAGIC1;
    out[2] = SL_WIRE_VERSION;
    out[3] = type;
    memcpy(out + 4, s->sid, SL_WIRE_SID_BYTES);
    for (int i = 0; i < 8; i++) {
        out[20 + i] = (uint8_t)(s->counter >> (8 * i));
        out[28 + i] = (uint8_t)(s->ack >> (8 * i));
    }
    memcpy(out + 36, s->nonce, SL_WIRE_AEAD_NONCE_BYTES);
    uint32_t len = (uint32_t)s->ct_len;
    for (int i = 0; i < 4; i++)
        out[60 + i] = (uint8_t)(len >> (8 * i));
}

int sl_wire_encode(const sl_wire_msg *m, uint8_t **out, size_t *n, sl_err *err)
{
    sl_writer w;
    sl_writer_init(&w, SL_WIRE_MAX_FRAME);
    const char *what = sl_wire_type_name(m->type);
    switch (m->type) {
    case SL_WIRE_HELLO:
        header(&w, m->type);
        sl_writer_bytes(&w, m->u.hello.eph, SL_WIRE_KEY_BYTES);
        sl_writer_bytes(&w, m->u.hello.rand, SL_WIRE_RAND_BYTES);
        break;
    case SL_WIRE_HELLO_REPLY: {
        const sl_wire_hello_reply *h = &m->u.hello_reply;
        if (h->cert_len == 0 || h->cert_len > SL_WIRE_MAX_CERT)
            return sl_err_set(err, SL_ELIMIT, "HELLO_REPLY: certificate of %zu bytes (1..%u)",
                              h->cert_len, SL_WIRE_MAX_CERT);
        header(&w, m->type);
        sl_writer_bytes(&w, h->sid, SL_WIRE_SID_BYTES);
        sl_writer_bytes(&w, h->eph, SL_WIRE_KEY_BYTES);
        sl_writer_bytes(&w, h->rand, SL_WIRE_RAND_BYTES);
        sl_writer_u32le(&w, h->session_ttl);
        sl_writer_u32le(&w, h->ticket_ttl);
        sl_writer_blob32(&w, h->cert, h->cert_len);
        sl_writer_bytes(&w, h->sig, SL_WIRE_SIG_BYTES);
        break;
    }
    case SL_WIRE_RESUME:
        header(&w, m->type);
        sl_writer_bytes(&w, m->u.resume.ticket, SL_WIRE_SID_BYTES);
        sl_writer_bytes(&w, m->u.resume.eph, SL_WIRE_KEY_BYTES);
        sl_writer_bytes(&w, m->u.resume.rand, SL_WIRE_RAND_BYTES);
        sl_writer_bytes(&w, m->u.resume.mac, SL_WIRE_MAC_BYTES);
        break;
    case SL_WIRE_RESUME_OK: {
        const sl_wire_resume_ok *r = &m->u.resume_ok;
        header(&w, m->type);
        sl_writer_bytes(&w, r->sid, SL_WIRE_SID_BYTES);
        sl_writer_bytes(&w, r->eph, SL_WIRE_KEY_BYTES);
        sl_writer_bytes(&w, r->rand, SL_WIRE_RAND_BYTES);
        sl_writer_u32le(&w, r->session_ttl);
        sl_writer_u32le(&w, r->ticket_ttl);
        sl_writer_bytes(&w, r->mac, SL_WIRE_MAC_BYTES);
        break;
    }
    case SL_WIRE_FINISH:
    case SL_WIRE_FINISH_OK:
    case SL_WIRE_DATA:
    case SL_WIRE_REPLY: {
        const sl_wire_sealed *s = &m->u.sealed;
        if (s->ct_len < SL_WIRE_TAG_BYTES || s->ct_len > SL_WIRE_MAX_SEALED)
            return sl_err_set(err, SL_ELIMIT, "%s: ciphertext of %zu bytes (%u..%u)", what,
                              s->ct_len, SL_WIRE_TAG_BYTES, (unsigned)SL_WIRE_MAX_SEALED);
        uint8_t *h = sl_writer_reserve(&w, SL_WIRE_SEALED_HDR);
        if (h)
            sl_wire_sealed_header(h, m->type, s);
        sl_writer_bytes(&w, s->ct, s->ct_len);
        break;
    }
    case SL_WIRE_ERROR: {
        header(&w, m->type);
        sl_writer_u16le(&w, m->u.error.code);
        int rc = write_text(&w, m->u.error.msg, SL_WIRE_MAX_TEXT, "ERROR message", err);
        if (rc) {
            sl_writer_fini(&w);
            return rc;
        }
        break;
    }
    default:
        return sl_err_set(err, SL_EINVAL, "encode: unknown frame type %u", m->type);
    }
    return take(&w, out, n, what, err);
}

int sl_wire_decode(const uint8_t *buf, size_t n, sl_wire_msg *m, sl_err *err)
{
    if (n > SL_WIRE_MAX_FRAME)
        return sl_err_set(err, SL_ELIMIT, "frame: %zu bytes exceeds the limit of %u", n,
                          (unsigned)SL_WIRE_MAX_FRAME);
    sl_reader r;
    sl_reader_init(&r, buf, n);
    uint8_t m0 = sl_reader_u8(&r), m1 = sl_reader_u8(&r);
    uint8_t version = sl_reader_u8(&r), type = sl_reader_u8(&r);
    if (!sl_reader_ok(&r))
        return sl_err_set(err, SL_EFORMAT, "frame: %zu bytes is shorter than a header", n);
    if (m0 != SL_WIRE_MAGIC0 || m1 != SL_WIRE_MAGIC1)
        return sl_err_set(err, SL_EFORMAT, "frame: bad magic 0x%02x%02x (expected \"SL\")", m0,
                          m1);
    if (version != SL_WIRE_VERSION)
        return sl_err_set(err, SL_EFORMAT,
                          "frame: protocol version %u is not supported (this side speaks %u)",
                          version, SL_WIRE_VERSION);
    sl_wire_msg t;
    memset(&t, 0, sizeof t);
    t.type = type;
    switch (type) {
    case SL_WIRE_HELLO:
        sl_reader_copy(&r, t.u.hello.eph, SL_WIRE_KEY_BYTES);
        sl_reader_copy(&r, t.u.hello.rand, SL_WIRE_RAND_BYTES);
        break;
    case SL_WIRE_HELLO_REPLY: {
        sl_wire_hello_reply *h = &t.u.hello_reply;
        sl_reader_copy(&r, h->sid, SL_WIRE_SID_BYTES);
        sl_reader_copy(&r, h->eph, SL_WIRE_KEY_BYTES);
        sl_reader_copy(&r, h->rand, SL_WIRE_RAND_BYTES);
        h->session_ttl = sl_reader_u32le(&r);
        h->ticket_ttl = sl_reader_u32le(&r);
        h->cert = sl_reader_blob32(&r, SL_WIRE_MAX_CERT, &h->cert_len);
        if (sl_reader_ok(&r) && h->cert_len == 0)
            return sl_err_set(err, SL_EFORMAT, "HELLO_REPLY: empty certificate");
        sl_reader_copy(&r, h->sig, SL_WIRE_SIG_BYTES);
        break;
    }
    case SL_WIRE_RESUME:
        sl_reader_copy(&r, t.u.resume.ticket, SL_WIRE_SID_BYTES);
        sl_reader_copy(&r, t.u.resume.eph, SL_WIRE_KEY_BYTES);
        sl_reader_copy(&r, t.u.resume.rand, SL_WIRE_RAND_BYTES);
        sl_reader_copy(&r, t.u.resume.mac, SL_WIRE_MAC_BYTES);
        break;
    case SL_WIRE_RESUME_OK: {
        sl_wire_resume_ok *o = &t.u.resume_ok;
        sl_reader_copy(&r, o->sid, SL_WIRE_SID_BYTES);
        sl_reader_copy(&r, o->eph, SL_WIRE_KEY_BYTES);
        sl_reader_copy(&r, o->rand, SL_WIRE_RAND_BYTES);
        o->session_ttl = sl_reader_u32le(&r);
        o->ticket_ttl = sl_reader_u32le(&r);
        sl_reader_copy(&r, o->mac, SL_WIRE_MAC_BYTES);
        break;
    }
    case SL_WIRE_FINISH:
    case SL_WIRE_FINISH_OK:
    case SL_WIRE_DATA:
    case SL_WIRE_REPLY: {
        sl_wire_sealed *s = &t.u.sealed;
        sl_reader_copy(&r, s->sid, SL_WIRE_SID_BYTES);
        s->counter = sl_reader_u64le(&r);
        s->ack = sl_reader_u64le(&r);
        sl_reader_copy(&r, s->nonce, SL_WIRE_AEAD_NONCE_BYTES);
        s->ct = sl_reader_blob32(&r, SL_WIRE_MAX_SEALED, &s->ct_len);
        if (sl_reader_ok(&r) && s->ct_len < SL_WIRE_TAG_BYTES)
            return sl_err_set(err, SL_EFORMAT, "%s: ciphertext of %zu bytes is shorter than a tag",
                              sl_wire_type_name(type), s->ct_len);
        if (sl_reader_ok(&r) && (type == SL_WIRE_FINISH || type == SL_WIRE_FINISH_OK) &&
            s->ack != 0)
            return sl_err_set(err, SL_EFORMAT, "%s: ack must be 0", sl_wire_type_name(type));
        if (sl_reader_ok(&r) && type == SL_WIRE_DATA && s->ack > s->counter)
            return sl_err_set(err, SL_EFORMAT, "DATA: ack %llu is above its counter %llu",
                              (unsigned long long)s->ack, (unsigned long long)s->counter);
        break;
    }
    case SL_WIRE_ERROR:
        t.u.error.code = sl_reader_u16le(&r);
        read_text(&r, SL_WIRE_MAX_TEXT, t.u.error.msg);
        break;
    default:
        return sl_err_set(err, SL_EFORMAT, "frame: unknown type %u", type);
    }
    int rc = sl_reader_finish(&r, err, sl_wire_type_name(type));
    if (rc)
        return rc;
    *m = t;
    return 0;
}

/* ---- inner messages ----------------------------------------------------- */

int sl_wire_finish_encode(const sl_wire_finish *f, uint8_t **out, size_t *n, sl_err *err)
{
    if (f->cert_len == 0 || f->cert_len > SL_WIRE_MAX_CERT)
        return sl_err_set(err, SL_ELIMIT, "FINISH: certificate of %zu bytes (1..%u)", f->cert_len,
                          SL_WIRE_MAX_CERT);
    sl_writer w;
    sl_writer_init(&w, 0);
    sl_writer_blob32(&w, f->cert, f->cert_len);
    sl_writer_bytes(&w, f->sig, SL_WIRE_SIG_BYTES);
    return take(&w, out, n, "FINISH", err);
}

int sl_wire_finish_decode(const uint8_t *buf, size_t n, sl_wire_finish *f, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    sl_wire_finish t;
    t.cert = sl_reader_blob32(&r, SL_WIRE_MAX_CERT, &t.cert_len);
    sl_reader_copy(&r, t.sig, SL_WIRE_SIG_BYTES);
    int rc = sl_reader_finish(&r, err, "FINISH");
    if (rc)
        return rc;
    if (t.cert_len == 0)
        return sl_err_set(err, SL_EFORMAT, "FINISH: empty certificate");
    *f = t;
    return 0;
}

int sl_wire_finish_ok_encode(const sl_wire_finish_ok *f, uint8_t **out, size_t *n, sl_err *err)
{
    sl_writer w;
    sl_writer_init(&w, 0);
    sl_writer_u32le(&w, f->session_ttl);
    sl_writer_u32le(&w, f->ticket_ttl);
    int rc = write_text(&w, f->peer, SL_WIRE_MAX_NAME, "FINISH_OK peer", err);
    if (rc) {
        sl_writer_fini(&w);
        return rc;
    }
    return take(&w, out, n, "FINISH_OK", err);
}

int sl_wire_finish_ok_decode(const uint8_t *buf, size_t n, sl_wire_finish_ok *f, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    sl_wire_finish_ok t;
    t.session_ttl = sl_reader_u32le(&r);
    t.ticket_ttl = sl_reader_u32le(&r);
    read_text(&r, SL_WIRE_MAX_NAME, t.peer);
    int rc = sl_reader_finish(&r, err, "FINISH_OK");
    if (rc)
        return rc;
    *f = t;
    return 0;
}

void sl_wire_app_header(uint8_t out[SL_WIRE_APP_HDR], uint16_t type)
{
    out[0] = (uint8_t)type;
    out[1] = (uint8_t)(type >> 8);
    out[2] = out[3] = 0;
}

int sl_wire_app_decode(const uint8_t *buf, size_t n, sl_wire_app *a, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    uint16_t type = sl_reader_u16le(&r);
    uint16_t reserved = sl_reader_u16le(&r);
    if (!sl_reader_ok(&r))
        return sl_err_set(err, SL_EFORMAT, "application message: %zu bytes, shorter than its "
                          "header", n);
    if (reserved != 0)
        return sl_err_set(err, SL_EFORMAT, "application message: reserved field is 0x%04x, "
                          "expected 0", reserved);
    if (type == SL_WIRE_APP_NONE)
        return sl_err_set(err, SL_EFORMAT, "application message: type 0 is not allowed");
    size_t len = sl_reader_remaining(&r);
    if (len > SL_WIRE_MAX_PAYLOAD)
        return sl_err_set(err, SL_ELIMIT, "application message: payload of %zu bytes exceeds %u",
                          len, SL_WIRE_MAX_PAYLOAD);
    a->type = type;
    a->payload = buf + SL_WIRE_APP_HDR;
    a->len = len;
    return 0;
}

int sl_wire_check_file_name(const char *name, sl_err *err)
{
    size_t n = strnlen(name, SL_WIRE_MAX_NAME + 1);
    int ok = n >= 1 && n <= SL_WIRE_MAX_NAME && name[0] != '.';
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    }
    if (!ok)
        return sl_err_set(err, SL_EINVAL,
                          "invalid transfer name '%.80s': 1 to %u characters from A-Z a-z 0-9 . _ -,"
                          " not starting with '.'",
                          name, SL_WIRE_MAX_NAME);
    return 0;
}

int sl_wire_file_req_encode(const sl_wire_file_req *q, uint8_t **out, size_t *n, sl_err *err)
{
    int rc = sl_wire_check_file_name(q->name, err);
    if (rc)
        return rc;
    if (q->len > SL_WIRE_MAX_CHUNK)
        return sl_err_set(err, SL_ELIMIT, "file request: chunk of %u bytes exceeds %u", q->len,
                          SL_WIRE_MAX_CHUNK);
    sl_writer w;
    sl_writer_init(&w, 0);
    write_text(&w, q->name, SL_WIRE_MAX_NAME, "file name", err);
    sl_writer_u64le(&w, q->offset);
    sl_writer_u32le(&w, q->len);
    return take(&w, out, n, "file request", err);
}

int sl_wire_file_req_decode(const uint8_t *buf, size_t n, sl_wire_file_req *q, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    sl_wire_file_req t;
    read_text(&r, SL_WIRE_MAX_NAME, t.name);
    t.offset = sl_reader_u64le(&r);
    t.len = sl_reader_u32le(&r);
    int rc = sl_reader_finish(&r, err, "file request");
    if (rc)
        return rc;
    if (sl_wire_check_file_name(t.name, err)) {
        sl_err_prefix(err, "file request");
        if (err)
            err->code = SL_EFORMAT;
        return SL_EFORMAT;
    }
    if (t.len > SL_WIRE_MAX_CHUNK)
        return sl_err_set(err, SL_ELIMIT, "file request: chunk of %u bytes exceeds %u", t.len,
                          SL_WIRE_MAX_CHUNK);
    *q = t;
    return 0;
}

int sl_wire_file_info_encode(const sl_wire_file_info *f, uint8_t **out, size_t *n, sl_err *err)
{
    if (f->chunk == 0 || f->chunk > SL_WIRE_MAX_CHUNK)
        return sl_err_set(err, SL_ELIMIT, "file info: chunk size %u outside 1..%u", f->chunk,
                          SL_WIRE_MAX_CHUNK);
    sl_writer w;
    sl_writer_init(&w, 0);
    sl_writer_u64le(&w, f->size);
    sl_writer_u32le(&w, f->chunk);
    sl_writer_bytes(&w, f->digest, SL_WIRE_DIGEST_BYTES);
    return take(&w, out, n, "file info", err);
}

int sl_wire_file_info_decode(const uint8_t *buf, size_t n, sl_wire_file_info *f, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    sl_wire_file_info t;
    t.size = sl_reader_u64le(&r);
    t.chunk = sl_reader_u32le(&r);
    sl_reader_copy(&r, t.digest, SL_WIRE_DIGEST_BYTES);
    int rc = sl_reader_finish(&r, err, "file info");
    if (rc)
        return rc;
    if (t.chunk == 0 || t.chunk > SL_WIRE_MAX_CHUNK)
        return sl_err_set(err, SL_EFORMAT, "file info: chunk size %u outside 1..%u", t.chunk,
                          SL_WIRE_MAX_CHUNK);
    *f = t;
    return 0;
}

void sl_wire_chunk_header(uint8_t out[SL_WIRE_CHUNK_HDR], uint64_t offset)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(offset >> (8 * i));
}

int sl_wire_chunk_decode(const uint8_t *buf, size_t n, sl_wire_chunk *c, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    uint64_t off = sl_reader_u64le(&r);
    if (!sl_reader_ok(&r))
        return sl_err_set(err, SL_EFORMAT, "chunk: %zu bytes, shorter than its header", n);
    size_t len = sl_reader_remaining(&r);
    if (len > SL_WIRE_MAX_CHUNK)
        return sl_err_set(err, SL_ELIMIT, "chunk: %zu bytes exceeds %u", len, SL_WIRE_MAX_CHUNK);
    c->offset = off;
    c->data = sl_reader_bytes(&r, len);
    c->len = len;
    return 0;
}

int sl_wire_app_error_encode(const sl_wire_error *e, uint8_t **out, size_t *n, sl_err *err)
{
    sl_writer w;
    sl_writer_init(&w, 0);
    sl_writer_u16le(&w, e->code);
    int rc = write_text(&w, e->msg, SL_WIRE_MAX_TEXT, "error message", err);
    if (rc) {
        sl_writer_fini(&w);
        return rc;
    }
    return take(&w, out, n, "error", err);
}

int sl_wire_app_error_decode(const uint8_t *buf, size_t n, sl_wire_error *e, sl_err *err)
{
    sl_reader r;
    sl_reader_init(&r, buf, n);
    sl_wire_error t;
    t.code = sl_reader_u16le(&r);
    read_text(&r, SL_WIRE_MAX_TEXT, t.msg);
    int rc = sl_reader_finish(&r, err, "error");
    if (rc)
        return rc;
    *e = t;
    return 0;
}
