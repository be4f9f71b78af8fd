/* audit/cmd_check.h - `sealora-audit verify` and `sealora-audit report`:
 * the auditor's verdict on a server's log (crypto/auditcheck) with the
 * sites' receipts, against the server's certificate or raw public key.
 * verify prints the verdict and the findings; report adds the per-round
 * table, --json and an SVG plot. Both exit 0 only when everything verifies
 * and the budget held. docs/cli.md. */
#ifndef SL_AUDIT_CMD_CHECK_H
#define SL_AUDIT_CMD_CHECK_H
#include <stdint.h>

#include "shared/err.h"

/* Most --receipts folders on one command line. */
#define SL_CMD_CHECK_MAX_DIRS 1024

int sl_cmd_check_verify(int argc, char **argv);
int sl_cmd_check_report(int argc, char **argv);
/* The server key from exactly one of: a PEM certificate, 64 hex digits, a
 * file holding 64 hex digits. */
int sl_cmd_check_key(const char *cert, const char *hex, const char *hexfile, uint8_t pk[32],
                     sl_err *err);

#endif
