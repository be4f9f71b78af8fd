/* libFuzzer target for receipts and schedules: receipt bytes are refused
 * with a message (none can verify without the server key), and the
 * `epsilon --schedule` parser accepts or refuses any text cleanly. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "audit/cmd_epsilon.h"
#include "crypto/auditlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t pk[32];
    static sl_acct acct;
    static int ready;
    if (!ready) {
        uint8_t sk[64], seed[32] = {9};
        if (sodium_init() < 0)
            abort();
        crypto_sign_seed_keypair(pk, sk, seed);
        ready = 1;
    }
    sl_receipt r;
    sl_err err = {0};
    if (sl_auditlog_receipt_verify(data, size, pk, &r, &err) == 0 || !err.msg[0])
        abort();
    sl_acct_init(&acct);
    uint64_t rounds = 0;
    if (size < 4096 &&
        sl_cmd_epsilon_schedule((const char *)data, size, "fuzz", &acct, &rounds, &err) == 0) {
        sl_acct_eps e;
        if (rounds == 0 || sl_acct_epsilon(&acct, 1e-5, &e, &err) != 0 || e.epsilon < 0)
            abort();
    }
    return 0;
}
