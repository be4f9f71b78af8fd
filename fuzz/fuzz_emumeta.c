/* libFuzzer target for the emulator manifest reader (shared/emumeta): any
 * input is refused with a message, or yields a manifest that passes
 * validation, lists its files sorted and distinct, and encodes to text that
 * parses back to the same layer map. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/emumeta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sl_emumeta m, back;
    sl_err err;
    err.msg[0] = 0;
    if (sl_emumeta_parse((const char *)data, size, "fuzz", &m, &err) != 0) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    if (sl_emumeta_validate(&m, &err) != 0)
        abort();
    for (int i = 1; i < m.nfiles; i++)
        if (strcmp(m.files[i - 1].name, m.files[i].name) >= 0)
            abort();
    char *text = NULL;
    size_t n = 0;
    if (sl_emumeta_encode(&m, &text, &n, &err) != 0)
        abort();
    if (sl_emumeta_parse(text, n, "fuzz-back", &back, &err) != 0 || back.nblocks != m.nblocks ||
        memcmp(back.layer_map, m.layer_map, sizeof(int) * (size_t)m.nblocks) != 0)
        abort();
    free(text);
    return 0;
}
