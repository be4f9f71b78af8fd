/* libFuzzer target for the secure-aggregation codec (crypto/secagg_msg):
 * any bytes either fail to decode or decode to a message whose encoding
 * is byte for byte the input (the format is canonical), and a decoded
 * message is also fed to a server state machine in the matching phase,
 * which must refuse or take it without reading out of bounds. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/secagg_msg.h"
#include "crypto/secagg_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sl_secagg_server *advertising(void)
{
    static sl_secagg_config cfg;
    static uint32_t ids[4] = {1, 2, 3, 4};
    static uint8_t pks[4][32];
    if (!cfg.cohort) {
        if (sodium_init() < 0)
            abort();
        for (int i = 0; i < 4; i++) {
            uint8_t sk[64], seed[32] = {(uint8_t)i};
            crypto_sign_seed_keypair(pks[i], sk, seed);
        }
        if (sl_secagg_config_default(&cfg, 4, 8, 0.25, 32, NULL))
            abort();
    }
    sl_secagg_server *s = NULL;
    if (sl_secagg_server_create(&s, &cfg, 0, ids, (const uint8_t(*)[32])pks, 4, NULL))
        abort();
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_secagg_msg m;
    sl_err err;
    if (sl_secagg_msg_decode(&m, data, size, &err) == 0) {
        if (m.type == SL_SECAGG_MSG_MASKED)
            m.vec = m.words; /* little-endian host */
        uint8_t *out = NULL;
        size_t len = 0;
        if (sl_secagg_msg_encode(&m, &out, &len, &err) != 0 || len != size ||
            memcmp(out, data, size) != 0)
            __builtin_trap();
        free(out);
        if (m.type == SL_SECAGG_MSG_ADVERTISE) {
            sl_secagg_server *s = advertising();
            (void)sl_secagg_server_on_advertise(s, m.site, data, size, &err);
            sl_secagg_server_free(s);
        }
        sl_secagg_msg_fini(&m);
    }
    return 0;
}
