#include "shared/reader.h"

#include <string.h>

void sl_reader_init(sl_reader *r, const void *buf, size_t len)
{
    r->buf = buf;
    r->len = buf ? len : 0;
    r->off = 0;
    r->failed = 0;
}

size_t sl_reader_remaining(const sl_reader *r) { return r->len - r->off; }

int sl_reader_ok(const sl_reader *r) { return !r->failed; }

const uint8_t *sl_reader_bytes(sl_reader *r, size_t n)
{
    if (r->failed || n > r->len - r->off) {
        r->failed = 1;
        return NULL;
    }
    const uint8_t *p = r->buf + r->off;
    r->off += n;
    return p;
}

void sl_reader_copy(sl_reader *r, void *out, size_t n)
{
    const uint8_t *p = sl_reader_bytes(r, n);
    if (p)
        memcpy(out, p, n);
    else if (n)
        memset(out, 0, n);
}

uint8_t sl_reader_u8(sl_reader *r)
{
    const uint8_t *p = sl_reader_bytes(r, 1);
    return p ? p[0] : 0;
}

uint16_t sl_reader_u16le(sl_reader *r)
{
    const uint8_t *p = sl_reader_bytes(r, 2);
    return p ? (uint16_t)(p[0] | (uint16_t)p[1] << 8) : 0;
}

uint32_t sl_reader_u32le(sl_reader *r)
{
    const uint8_t *p = sl_reader_bytes(r, 4);
    if (!p)
        return 0;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

uint64_t sl_reader_u64le(sl_reader *r)
{
    uint64_t lo = sl_reader_u32le(r);
    uint64_t hi = sl_reader_u32le(r);
    return r->failed ? 0 : lo | hi << 32;
}

const uint8_t *sl_reader_blob32(sl_reader *r, size_t max, size_t *n_out)
{
    uint32_t n = sl_reader_u32le(r);
    *n_out = 0;
    if (r->failed || n > max) {
        r->failed = 1;
        return NULL;
    }
    const uint8_t *p = sl_reader_bytes(r, n);
    if (p)
        *n_out = n;
    return p;
}

int sl_reader_finish(const sl_reader *r, sl_err *err, const char *what)
{
    if (r->failed)
        return sl_err_set(err, SL_EFORMAT, "%s: truncated or oversized field (at byte %zu of %zu)",
                          what, r->off, r->len);
    if (r->off != r->len)
        return sl_err_set(err, SL_EFORMAT, "%s: %zu trailing bytes after offset %zu", what,
                          r->len - r->off, r->off);
    return 0;
}
