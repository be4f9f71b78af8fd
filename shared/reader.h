/* shared/reader.h - bounds-checked cursor over untrusted bytes. Every decoder
 * (wire codec, safetensors header, token cache, audit log) reads through it.
 * A short read sets a sticky flag and yields zeros: check once, at the end,
 * with sl_reader_finish() (which also rejects trailing bytes) or
 * sl_reader_ok(). Owns nothing: borrows buf, allocates nothing. Not
 * thread-safe: one reader per thread. */
#ifndef SL_READER_H
#define SL_READER_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

typedef struct sl_reader {
    const uint8_t *buf; /* borrowed, len bytes */
    size_t len, off;    /* invariant: off <= len */
    int failed;         /* sticky; set by the first short read */
} sl_reader;

void sl_reader_init(sl_reader *r, const void *buf, size_t len);
uint8_t sl_reader_u8(sl_reader *r);
uint16_t sl_reader_u16le(sl_reader *r);
uint32_t sl_reader_u32le(sl_reader *r);
uint64_t sl_reader_u64le(sl_reader *r);
/* Borrowed view of the next n bytes, or NULL (and failed set) if fewer remain. */
const uint8_t *sl_reader_bytes(sl_reader *r, size_t n);
/* Copies n bytes into out; on a short read out is zero-filled. */
void sl_reader_copy(sl_reader *r, void *out, size_t n);
/* Reads a u32le length then that many bytes; fails if length > max. */
const uint8_t *sl_reader_blob32(sl_reader *r, size_t max, size_t *n_out);
size_t sl_reader_remaining(const sl_reader *r);
int sl_reader_ok(const sl_reader *r);
/* 0 if every read fit and no byte is left; else SL_EFORMAT naming what. */
int sl_reader_finish(const sl_reader *r, sl_err *err, const char *what);

#endif
