/* libFuzzer target for the wire codec: any input either is refused with a
 * message, or decodes to a frame (or inner message) that encodes back to
 * exactly the same bytes. Never reads out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    if (an != bn || memcmp(a, b, an) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_err err;
    sl_wire_msg m;
    uint8_t *out = NULL;
    size_t n = 0;
    if (sl_wire_decode(data, size, &m, &err) == 0) {
        if (sl_wire_encode(&m, &out, &n, &err) != 0)
            abort(); /* what decodes must encode */
        check_same(out, n, data, size);
        free(out);
    }
    if (size == 0)
        return 0;
    /* Inner messages: the first byte picks the decoder. */
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    switch (data[0] % 8) {
    case 0: {
        sl_wire_finish f;
        if (sl_wire_finish_decode(p, len, &f, &err) == 0) {
            if (sl_wire_finish_encode(&f, &out, &n, &err))
                abort();
            check_same(out, n, p, len);
            free(out);
        }
        break;
    }
    case 1: {
        sl_wire_finish_ok f;
        if (sl_wire_finish_ok_decode(p, len, &f, &err) == 0) {
            if (sl_wire_finish_ok_encode(&f, &out, &n, &err))
                abort();
            check_same(out, n, p, len);
            free(out);
        }
        break;
    }
    case 2: {
        sl_wire_file_req q;
        if (sl_wire_file_req_decode(p, len, &q, &err) == 0) {
            if (sl_wire_file_req_encode(&q, &out, &n, &err))
                abort();
            check_same(out, n, p, len);
            free(out);
        }
        break;
    }
    case 3: {
        sl_wire_file_info f;
        if (sl_wire_file_info_decode(p, len, &f, &err) == 0) {
            if (sl_wire_file_info_encode(&f, &out, &n, &err))
                abort();
            check_same(out, n, p, len);
            free(out);
        }
        break;
    }
    case 4: {
        sl_wire_error e;
        if (sl_wire_app_error_decode(p, len, &e, &err) == 0) {
            if (sl_wire_app_error_encode(&e, &out, &n, &err))
                abort();
            check_same(out, n, p, len);
            free(out);
        }
        break;
    }
    case 5: {
        sl_wire_app a;
        if (sl_wire_app_decode(p, len, &a, &err) == 0 &&
            (a.payload != p + SL_WIRE_APP_HDR || a.len != len - SL_WIRE_APP_HDR))
            abort();
        break;
    }
    case 6: {
        sl_wire_chunk c;
        if (sl_wire_chunk_decode(p, len, &c, &err) == 0 && c.len != len - SL_WIRE_CHUNK_HDR)
            abort();
        break;
    }
    default:
        break;
    }
    return 0;
}
