/* server/runcfg.h - the [run] section of server.ini: what the federated
 * runtime (`sealora-server run`) does (model, enrolled sites, rounds,
 * sampling, local training, LoRA, DP, privacy budget, deadlines). The
 * [server] section is the channel's (crypto/channel.h). Read with inih;
 * every key is checked (range, form) and an unknown key, an unknown section
 * or a missing required key is an error naming the file, line and key.
 * docs/runtime.md lists the keys. Plain data; thread-safe. */
#ifndef SL_RUNCFG_H
#define SL_RUNCFG_H
#include <stdint.h>

#include "shared/err.h"

#define SL_RUNCFG_PATH_MAX 1024
#define SL_RUNCFG_MAX_SITES 1024
#define SL_RUNCFG_NAME_MAX 63

typedef struct sl_runcfg {
    char model[SL_RUNCFG_PATH_MAX];     /* the full model directory (required) */
    char emulator[SL_RUNCFG_PATH_MAX];  /* signed emulator package of it the sites tune
                                         * ("" = the sites tune the full model) */
    char eval_data[SL_RUNCFG_PATH_MAX]; /* server's validation text ("" = none) */
    uint32_t eval_tokens;               /* tokens of it evaluated (default 16384) */
    uint32_t nsites;                    /* enrolled sites (required) */
    char sites[SL_RUNCFG_MAX_SITES][SL_RUNCFG_NAME_MAX + 1];
    uint32_t rounds;                    /* round numbers 1..rounds are run (default 3) */
    double sample_rate;                 /* Poisson q in (0, 1] (default 1) */
    uint32_t min_sites;                 /* fewest sampled sites for a round (default 2) */
    uint32_t wait_sites;                /* seconds to wait for every site before starting with
                                         * min_sites online (default 60) */
    uint32_t local_steps, batch, seq;   /* local training (defaults 5, 4, 64) */
    double lr;                          /* local learning rate (default 1e-3) */
    uint32_t lora_rank;                 /* default 4 */
    double lora_alpha;                  /* default 8 */
    unsigned lora_targets;              /* SL_LORA_* bits (default c_attn) */
    uint32_t adapter_blocks;            /* first and last N blocks carry the LoRA (default 2) */
    double clip;                        /* L2 clip of a site's delta (default 1) */
    double noise_multiplier;            /* z for threshold survivors (default 1) */
    int central;                        /* 1: the server adds the noise (default 0) */
    double dropout;                     /* tolerated dropout fraction (default 0.3) */
    double epsilon, delta;              /* budget (defaults 8, 1e-5) */
    int fedadam;                        /* optimizer = fedadam (default fedavg) */
    double server_lr;                   /* FedAvg step (default 1) or FedAdam lr (1e-2) */
    uint32_t train_timeout;             /* seconds for local training + key advert (600) */
    uint32_t phase_timeout;             /* seconds for each later phase (60) */
    uint32_t linger;                    /* seconds answering DONE after the end (10) */
    uint64_t seed;                      /* initial adapter seed (default 1) */
} sl_runcfg;

void sl_runcfg_defaults(sl_runcfg *c);
/* Reads the [run] section of ini_path over the defaults (relative paths are
 * resolved against the file's folder); ignores [server] (the channel's).
 * cfg untouched on failure. */
int sl_runcfg_load(const char *ini_path, sl_runcfg *cfg, sl_err *err);
/* Index of a site name, or -1. */
int sl_runcfg_site(const sl_runcfg *c, const char *name);

#endif
