/* server/fedserver.h - the aggregation server's federated runtime, what
 * `sealora-server run` executes (docs/runtime.md): it serves the model the
 * sites tune over the authenticated channel, and runs rounds:
 *
 *   sample (Poisson, rate q, among enrolled sites seen online)  ->
 *   budget check (refuse a round whose worst-case release would overspend) ->
 *   checkpoint with the round pending  ->  TRAIN (sites fetch instructions
 *   and the global adapter, train locally, clip/noise/quantise, advertise
 *   keys)  ->  SHARES  ->  MASKED  ->  UNMASK (secure aggregation, a deadline
 *   per phase)  ->  unmask, decode, FedAvg/FedAdam  ->  mechanism record and
 *   signed round close in the audit log (fsync'd)  ->  checkpoint  ->
 *   receipts to the contributors  ->  evaluation.
 *
 * The channel is REQ/REP: sites ask (POLL) and each reply tells them what
 * to do next, so the server is one thread and never blocks on a site.
 * Restart: an existing state folder resumes at the last completed round; a
 * round in flight at a crash is abandoned and its upper-bound cost charged.
 *
 * Ownership: the call owns everything it creates. Not thread-safe; it
 * installs SIGINT/SIGTERM handlers that stop it after the current request. */
#ifndef SL_FEDSERVER_H
#define SL_FEDSERVER_H
#include <stdint.h>

#include "shared/err.h"

typedef struct sl_fedserver_opts {
    const char *config;  /* server.ini ([server] + [run]) */
    const char *state;   /* state folder: checkpoint, audit log, adapter, status */
    int json;            /* operator lines as JSON on stderr */
    int repair_log;      /* reopen a log with a torn last line (kept aside) */
    const char *dump;    /* folder for the unmasked sums (tests), or NULL */
} sl_fedserver_opts;

/* Runs until the configured rounds are done, the budget would be exceeded
 * (returns 0 after saying so), or a signal. Errors: setup failures and an
 * audit log or checkpoint that cannot be written. */
int sl_fedserver_run(const sl_fedserver_opts *o, sl_err *err);

#define SL_FEDSERVER_STATUS "status.json"
/* Long polling: a POLL the server has nothing for (between rounds, not
 * sampled, or waiting for the rest of the cohort) is held unanswered and
 * answered the moment there is something for the site (a round or phase
 * starts, a receipt is ready, the job ends), else after SL_FEDSERVER_HOLD_MS
 * with WAIT 0 (the site asks again at once). The hold stays below the
 * smallest reply timeout a site may configure (1 s). SL_FEDSERVER_WAIT_MS
 * is the WAIT of a POLL that could not be held. */
#define SL_FEDSERVER_HOLD_MS 500u
#define SL_FEDSERVER_WAIT_MS 250u

#endif
