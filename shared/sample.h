/* shared/sample.h - choosing the next token from logits for `generate`:
 * temperature, top-k and nucleus (top-p) filtering, then a draw from the
 * renormalised distribution with the caller's seeded generator (so a seed
 * reproduces a text). Temperature 0 is greedy (the arg-max, lowest id on
 * ties). Not thread-safe per scratch; distinct scratches may be used at once. */
#ifndef SL_SAMPLE_H
#define SL_SAMPLE_H
#include <stdint.h>

#include "shared/err.h"
#include "shared/rng.h"

typedef struct sl_sample_cfg {
    float temperature;  /* 0: greedy; otherwise > 0 */
    int top_k;          /* 0: no limit */
    float top_p;        /* (0, 1]; 1: no nucleus cut */
} sl_sample_cfg;

/* SL_EINVAL naming the bad setting. */
int sl_sample_cfg_validate(const sl_sample_cfg *c, sl_err *err);

/* Picks an id in 0..V-1 from logits[V]. scratch holds 2*V floats' worth of
 * space (V ids and V probabilities) that the call overwrites; logits are
 * left unchanged. Ids in 0..n_banned-1 of banned (may be NULL) are never
 * picked unless every id is banned. */
int32_t sl_sample_next(const float *logits, int V, const sl_sample_cfg *c, sl_rng *rng,
                       void *scratch, const int32_t *banned, int n_banned);
#endif
