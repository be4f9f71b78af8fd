/* libFuzzer target for the token cache parser (docs/formats.md): any input
 * is refused with a message, or its counts tile the input exactly and every
 * id lies inside the vocabulary. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "shared/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_dataset_header h;
    sl_err err;
    err.msg[0] = 0;
    if (sl_dataset_parse(data, size, &h, &err) != 0) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    if (SL_DATASET_HEADER + (h.n[0] + h.n[1]) * h.width != size || h.eot >= h.vocab_size)
        abort();
    for (size_t i = SL_DATASET_HEADER; i + h.width <= size; i += h.width) {
        uint32_t id = data[i] | (uint32_t)data[i + 1] << 8;
        if (h.width == 4)
            id |= (uint32_t)data[i + 2] << 16 | (uint32_t)data[i + 3] << 24;
        if (id >= h.vocab_size)
            abort();
    }
    return 0;
}
