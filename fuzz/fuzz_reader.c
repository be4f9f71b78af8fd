/* libFuzzer target for the reader: decodes a tagged record stream (the
 * shape every wire message has) and must never read out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "shared/reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_reader r;
    sl_reader_init(&r, data, size);
    while (sl_reader_ok(&r) && sl_reader_remaining(&r)) {
        switch (sl_reader_u8(&r) & 3) {
        case 0: (void)sl_reader_u32le(&r); break;
        case 1: (void)sl_reader_u64le(&r); break;
        case 2: {
            size_t n;
            const uint8_t *p = sl_reader_blob32(&r, 1 << 16, &n);
            volatile uint8_t sink = 0;
            for (size_t i = 0; p && i < n; i++)
                sink ^= p[i];
            (void)sink;
            break;
        }
        default: (void)sl_reader_u16le(&r); break;
        }
    }
    sl_err err;
    (void)sl_reader_finish(&r, &err, "fuzz");
    return 0;
}
