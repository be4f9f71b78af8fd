/* client/agent.h - the site agent `sealora-client run` executes
 * (docs/runtime.md): connects out to the server named in the startup kit,
 * authenticates (the channel), joins, downloads the model to tune in chunks
 * (digest-checked, resumable) into its cache, then asks the server what to
 * do until it says the job is over. In each round it is sampled for, it
 * trains the LoRA locally on its private text, clips, noises, quantises
 * (crypto/dp) and masks (crypto/secagg_client) its update, takes part in the
 * unmasking, and stores the signed receipt of each round it contributed to
 * (verified against the server certificate, itself checked against the
 * deployment CA). It never sends data, tokens, losses or unclipped updates:
 * only the secure-aggregation messages. Network failures are retried with
 * exponential backoff. Its own log (state/agent.jsonl) records what it did,
 * including figures that never leave the site (pre-clip norm, losses).
 *
 * Ownership: the call owns what it creates. Not thread-safe. */
#ifndef SL_AGENT_H
#define SL_AGENT_H
#include <stdint.h>

#include "shared/err.h"

typedef struct sl_agent_opts {
    const char *kit;        /* startup kit folder (client.ini, site.crt, site.key, ca.crt) */
    const char *data;       /* private text: file, folder or JSON Lines */
    const char *state;      /* cache, receipts, log; NULL: KIT/state */
    int timeout_s;          /* per reply; 0: client.ini's */
    int max_backoff_s;      /* longest wait between reconnection attempts (default 30) */
    int give_up_s;          /* stop after this long without the server (0: never) */
    int quiet;              /* no progress bar */
    const char *dump;       /* folder for the quantised updates (tests), or NULL */
    uint64_t stall_round;   /* tests: stop answering after sending the masked input of
                             * this round (0: never) */
} sl_agent_opts;

/* Returns 0 when the server says the job is over; an error for a kit,
 * data or server that cannot be used (refused certificate, tampered
 * model), or after give_up_s without the server. */
int sl_agent_run(const sl_agent_opts *o, sl_err *err);

#endif
