/* crypto/secagg_sim.h - one secure-aggregation round run in one process:
 * a server state machine and N client state machines exchanging their
 * messages in memory, with a dropout schedule. Used by
 * `sealora-server simulate-secagg`, bench/secagg and the protocol tests.
 * Site i has id first_id + i and an Ed25519 identity key drawn from the
 * seed; its input vector is either given or drawn from the seed (regenerated
 * when needed, so memory stays O(dim) whatever the number of sites). The
 * result says whether the server's unmasked sum equals the plain modular
 * sum of the contributors' inputs bit for bit, how long each phase took and
 * how many bytes moved. Not thread-safe; allocates per run. */
#ifndef SL_SECAGG_SIM_H
#define SL_SECAGG_SIM_H
#include <stdint.h>

#include "crypto/secagg_config.h"
#include "shared/err.h"

/* When a site stops (it is lost after the step it names). */
enum {
    SL_SECAGG_SIM_STAY = 0,     /* takes part to the end */
    SL_SECAGG_SIM_NO_ADVERT,    /* never advertises keys */
    SL_SECAGG_SIM_BEFORE_SHARES,/* advertises keys, sends no shares */
    SL_SECAGG_SIM_BEFORE_INPUT, /* sends shares, no masked input */
    SL_SECAGG_SIM_BEFORE_UNMASK,/* sends its masked input, never answers unmasking */
    SL_SECAGG_SIM_LATE_UNMASK,  /* answers unmasking last (refused if the server finished) */
};
enum { SL_SECAGG_SIM_ADVERTISE, SL_SECAGG_SIM_SHARE_KEYS, SL_SECAGG_SIM_MASKED_INPUT,
       SL_SECAGG_SIM_UNMASK, SL_SECAGG_SIM_PHASES };

typedef struct sl_secagg_sim_opts {
    sl_secagg_config cfg;   /* cohort = number of simulated sites */
    uint64_t round;
    uint64_t seed;          /* keys, inputs and protocol randomness */
    uint32_t first_id;      /* site ids first_id .. first_id + cohort - 1 */
    const uint8_t *drop;    /* cohort entries of SL_SECAGG_SIM_*, or NULL: nobody drops */
    const void *inputs;     /* cohort x dim words (bits/8 bytes each), or NULL: random */
    /* Or, when set, site index i's input is written by input(input_ctx, i,
     * out) (cfg.dim words); it must give the same words every call. */
    int (*input)(void *ctx, uint32_t index, void *out, sl_err *err);
    void *input_ctx;
    int wait_all;           /* 1: wait for every answer; 0: finish once ready */
} sl_secagg_sim_opts;

typedef struct sl_secagg_sim_result {
    int aborted;              /* 1: the round aborted (abort_msg says why) */
    char abort_msg[SL_ERR_MSG_MAX];
    int exact;                /* sum == plain sum of the contributors' inputs */
    uint32_t advertised, shared, contributors, answered, refused, degree;
    double seconds[SL_SECAGG_SIM_PHASES]; /* wall time per phase, all parties */
    double seconds_total;
    double client_mask_seconds;   /* mean per site: building its masked input */
    double client_masks;          /* mean masks a site expanded (self + pairwise) */
    uint64_t server_masks;        /* masks the server expanded to unmask */
    uint64_t server_state_bytes;  /* memory the server's round held */
    double server_finish_seconds; /* server: rebuilding secrets and unmasking */
    double bytes_sent_per_site;   /* mean over the cohort */
    double bytes_received_per_site;
} sl_secagg_sim_result;

/* Runs the round. An abort is a result (aborted = 1), not an error; errors
 * are failures of the simulation itself (memory, a state machine refusing
 * a well-formed message). sum (cfg.dim words) receives the unmasked sum
 * when not NULL and the round completed. */
int sl_secagg_sim_run(const sl_secagg_sim_opts *o, void *sum, sl_secagg_sim_result *res,
                      sl_err *err);

#endif
