/* libFuzzer target for the audit log reader and the auditor: any bytes are
 * diagnosed without reading out of bounds, and no input forged without the
 * server key verifies (every report has an error finding). */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "crypto/auditcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t pk[32];
    static int ready;
    if (!ready) {
        uint8_t sk[64], seed[32] = {7};
        if (sodium_init() < 0)
            abort();
        crypto_sign_seed_keypair(pk, sk, seed);
        ready = 1;
    }
    sl_audit_opts o = {0};
    o.pk = pk;
    sl_audit_report rep;
    sl_err err;
    if (sl_audit_check_buf(data, size, &o, &rep, &err) != 0)
        return 0; /* over a limit: refused whole */
    if (rep.findings.errors == 0)
        abort(); /* a log nobody signed passed */
    sl_audit_report_fini(&rep);
    return 0;
}
