/* libFuzzer target for the tokenizer file loaders and the encoder: the input
 * is a tokenizer.json, or a vocab.json + merges.txt pair, followed by a text.
 * Any file is either refused with a message or loads; a loaded tokenizer
 * must encode the text (any bytes) and decode it back exactly.
 *
 * Layout: byte 0 selects the layout (bit 0: 0 tokenizer.json, 1 vocab.json +
 * merges.txt; bit 1: recognise special tokens), then u16le lengths of the
 * file(s), the file bytes, and the rest is the text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t u16(const uint8_t *p) { return (size_t)p[0] | (size_t)p[1] << 8; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    unsigned mode = data[0];
    sl_tokenizer *t = NULL;
    sl_err err;
    err.msg[0] = 0;
    const uint8_t *text;
    size_t tn;
    int rc;
    if (!(mode & 1)) {
        size_t a = u16(data + 1);
        if (a > size - 3)
            return 0;
        rc = sl_tokenizer_from_json(data + 3, a, "fuzz.json", &t, &err);
        text = data + 3 + a;
        tn = size - 3 - a;
    } else {
        if (size < 5)
            return 0;
        size_t a = u16(data + 1), b = u16(data + 3);
        if (a > size - 5 || b > size - 5 - a)
            return 0;
        rc = sl_tokenizer_from_files(data + 5, a, data + 5 + a, b, "vocab.json", "merges.txt",
                                     &t, &err);
        text = data + 5 + a + b;
        tn = size - 5 - a - b;
    }
    if (rc != 0) {
        if (!err.msg[0] || t)
            abort(); /* every refusal says why and returns nothing */
        return 0;
    }
    sl_ids ids;
    sl_ids_init(&ids, 0);
    if (sl_tokenizer_encode(t, text, tn, (mode & 2) ? SL_TOKENIZER_SPECIAL : 0, &ids, &err))
        abort();
    uint8_t *out = malloc(tn + 1);
    size_t len = 0;
    if (!out || sl_tokenizer_decode(t, ids.v, ids.n, out, tn, &len, &err) != 0 || len != tn ||
        memcmp(out, text, tn) != 0)
        abort(); /* decode(encode(x)) == x for any bytes */
    free(out);
    sl_ids_fini(&ids);
    sl_tokenizer_free(t);
    return 0;
}
