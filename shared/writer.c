#include "shared/writer.h"

#include <stdlib.h>
#include <string.h>

void sl_writer_init(sl_writer *w, size_t max)
{
    memset(w, 0, sizeof *w);
    w->max = max ? max : SIZE_MAX;
}

void sl_writer_fini(sl_writer *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

uint8_t *sl_writer_reserve(sl_writer *w, size_t n)
{
    if (w->failed)
        return NULL;
    if (n > w->max - w->len) {
        w->failed = 1;
        return NULL;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 64;
        while (cap < w->len + n)
            cap = cap > SIZE_MAX / 2 ? w->len + n : cap * 2;
        uint8_t *nb = realloc(w->buf, cap);
        if (!nb) {
            w->failed = 1;
            return NULL;
        }
        w->buf = nb;
        w->cap = cap;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

void sl_writer_bytes(sl_writer *w, const void *p, size_t n)
{
    uint8_t *d = sl_writer_reserve(w, n);
    if (d && n)
        memcpy(d, p, n);
}

void sl_writer_u8(sl_writer *w, uint8_t v) { sl_writer_bytes(w, &v, 1); }

void sl_writer_u16le(sl_writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    sl_writer_bytes(w, b, 2);
}

void sl_writer_u32le(sl_writer *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    sl_writer_bytes(w, b, 4);
}

void sl_writer_u64le(sl_writer *w, uint64_t v)
{
    sl_writer_u32le(w, (uint32_t)v);
    sl_writer_u32le(w, (uint32_t)(v >> 32));
}

void sl_writer_blob32(sl_writer *w, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        w->failed = 1;
        return;
    }
    sl_writer_u32le(w, (uint32_t)n);
    sl_writer_bytes(w, p, n);
}

int sl_writer_ok(const sl_writer *w) { return !w->failed; }

uint8_t *sl_writer_take(sl_writer *w, size_t *len)
{
    uint8_t *b = w->buf;
    *len = w->len;
    size_t max = w->max;
    memset(w, 0, sizeof *w);
    w->max = max;
    return b;
}
