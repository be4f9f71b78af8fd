/* shared/writer.h - growable little-endian byte buffer for encoders (wire
 * codec, safetensors header, token cache). Allocation failure or a write
 * past max sets a sticky flag; check once with sl_writer_ok(). The writer
 * owns buf until sl_writer_take() hands it to the caller. Not thread-safe. */
#ifndef SL_WRITER_H
#define SL_WRITER_H
#include <stddef.h>
#include <stdint.h>

typedef struct sl_writer {
    uint8_t *buf;    /* owned, cap bytes */
    size_t len, cap; /* invariant: len <= cap */
    size_t max;      /* hard limit on len; 0 means SIZE_MAX */
    int failed;      /* sticky: allocation failed or max exceeded */
} sl_writer;

void sl_writer_init(sl_writer *w, size_t max);
void sl_writer_fini(sl_writer *w); /* frees buf; accepts a zeroed writer */
void sl_writer_u8(sl_writer *w, uint8_t v);
void sl_writer_u16le(sl_writer *w, uint16_t v);
void sl_writer_u32le(sl_writer *w, uint32_t v);
void sl_writer_u64le(sl_writer *w, uint64_t v);
void sl_writer_bytes(sl_writer *w, const void *p, size_t n);
void sl_writer_blob32(sl_writer *w, const void *p, size_t n); /* u32 length + bytes */
/* Reserves n bytes and returns a pointer to them (NULL on failure). */
uint8_t *sl_writer_reserve(sl_writer *w, size_t n);
int sl_writer_ok(const sl_writer *w);
/* Hands the buffer to the caller (free() it); resets the writer. */
uint8_t *sl_writer_take(sl_writer *w, size_t *len);

#endif
