/* libFuzzer target for the safetensors reader: any input is either refused
 * with a message or yields tensors that lie inside the input and tile its
 * data buffer; float tensors are converted to check every view is readable. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "shared/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_st_file *f = NULL;
    sl_err err;
    if (sl_st_open_mem(&f, data, size, "fuzz", &err) != 0) {
        if (!err.msg[0])
            abort(); /* every refusal must say why */
        return 0;
    }
    size_t total = 0;
    for (size_t i = 0; i < sl_st_count(f); i++) {
        const sl_st_tensor *t = sl_st_at(f, i);
        if (t->data < data || t->data + t->nbytes > data + size || sl_st_find(f, t->name) != t)
            abort();
        total += t->nbytes;
        if (t->dtype <= SL_ST_F64 && t->nelem <= (1u << 20)) {
            float *out = malloc((t->nelem ? t->nelem : 1) * sizeof *out);
            if (out && sl_st_read_f32(t, out, t->nelem, &err) != 0)
                abort();
            free(out);
        }
    }
    if (total > size)
        abort();
    for (size_t i = 0; i < sl_st_meta_count(f); i++) {
        const char *k, *v;
        if (sl_st_meta_at(f, i, &k, &v) != 0 || sl_st_meta(f, k) == NULL)
            abort();
    }
    sl_st_close(f);
    return 0;
}
