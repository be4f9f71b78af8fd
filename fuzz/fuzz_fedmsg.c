/* libFuzzer target for the federated runtime's decoders (crypto/fedmsg)
 * and the server checkpoint (server/checkpoint): any input is refused with
 * a message or decodes to a value that encodes back to exactly the same
 * bytes. Never reads out of bounds. The first byte picks the decoder. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/fedmsg.h"
#include "server/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(uint8_t *out, size_t n, const uint8_t *p, size_t len)
{
    if (n != len || memcmp(out, p, n) != 0)
        abort(); /* what decodes must encode back to the same bytes */
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    sl_err err;
    uint8_t *out;
    size_t n;
    switch (data[0] % 8) {
    case 0: {
        sl_fed_train t;
        if (sl_fed_train_decode(p, len, &t, &err) == 0) {
            if (sl_fed_train_encode(1, &t, &out, &n, &err))
                abort();
            same(out + 9, n - 9, p, len);
            free(out);
            sl_fed_train_fini(&t);
        }
        break;
    }
    case 1: {
        sl_fed_join_ok j;
        if (sl_fed_join_ok_decode(p, len, &j, &err) == 0) {
            if (sl_fed_join_ok_encode(&j, &out, &n, &err))
                abort();
            same(out, n, p, len);
        }
        break;
    }
    case 2: {
        const uint8_t *c;
        size_t cl;
        if (sl_fed_join_decode(p, len, &c, &cl, &err) == 0) {
            if (sl_fed_join_encode(c, cl, &out, &n, &err))
                abort();
            same(out, n, p, len);
        }
        break;
    }
    case 3: {
        sl_fed_task t;
        if (sl_fed_task_decode(p, len, &t, &err) == 0 && t.kind != SL_FED_TASK_TRAIN) {
            if (sl_fed_task_encode(t.round, t.kind, t.body, t.len, &out, &n, &err))
                abort();
            same(out, n, p, len);
        }
        break;
    }
    case 4: {
        uint64_t r;
        const uint8_t *m;
        size_t ml;
        if (sl_fed_submit_decode(p, len, &r, &m, &ml, &err) == 0) {
            if (sl_fed_submit_encode(r, m, ml, &out, &n, &err))
                abort();
            same(out, n, p, len);
        }
        break;
    }
    case 5: {
        char text[SL_WIRE_MAX_TEXT + 1];
        if (sl_fed_text_decode(p, len, text, &err) == 0) {
            if (sl_fed_text_encode(text, &out, &n, &err))
                abort();
            same(out, n, p, len);
        }
        break;
    }
    case 6: {
        uint64_t round, receipt;
        if (sl_fed_poll_decode(p, len, &round, &receipt, &err) == 0) {
            if (sl_fed_poll_encode(round, receipt, &out, &n, &err))
                abort();
            same(out, n, p, len);
        }
        break;
    }
    default: {
        sl_ckpt c;
        if (sl_ckpt_decode(p, len, &c, &err) == 0) {
            if (sl_ckpt_encode(&c, &out, &n, &err))
                abort();
            same(out, n, p, len);
            sl_ckpt_fini(&c);
        }
        break;
    }
    }
    return 0;
}
