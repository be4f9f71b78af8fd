/* crypto/secagg_config.h - the parameters of one secure-aggregation round
 * and the checks that they fit together, run before the first round so that
 * a bad combination is refused with a clear message instead of aborting
 * rounds later (or, worse, releasing a sum that wrapped around).
 *
 * Vocabulary (docs/secagg.md): the cohort is the n sites invited; each site
 * has `degree` neighbours in the masking graph (complete graph when
 * degree >= n - 1) and shares its two secrets among its share group: its
 * neighbours and itself (degree + 1 shares); `share_threshold` of them
 * rebuild a secret. `threshold` t is the fewest masked inputs for which a
 * sum is released (the DP noise is calibrated for t contributors);
 * `min_cohort` the fewest sites that must advertise keys for the round to
 * go on; `dropout` the fraction of sites the deployment expects to lose.
 * Plain data and pure functions; thread-safe. */
#ifndef SL_SECAGG_CONFIG_H
#define SL_SECAGG_CONFIG_H
#include <stdint.h>

#include "crypto/dp.h"
#include "shared/err.h"

#define SL_SECAGG_MAX_SITES 10000u
#define SL_SECAGG_MAX_DIM (1u << 26)   /* words per vector */
#define SL_SECAGG_MAX_DEGREE 254u      /* share group <= 255 Shamir shares */
#define SL_SECAGG_COMPLETE_MAX 32u     /* default: complete graph up to this cohort */
#define SL_SECAGG_GRAPH_FAIL_PROB 1e-6 /* default degree: P[unrecoverable site] bound */

typedef struct sl_secagg_config {
    uint32_t cohort;          /* n: sites invited to the round, 2..SL_SECAGG_MAX_SITES */
    uint32_t min_cohort;      /* fewest key advertisements to continue, t..n */
    uint32_t threshold;       /* t: fewest masked inputs to release, 2..n */
    uint32_t degree;          /* k: neighbours per site (even unless >= n - 1) */
    uint32_t share_threshold; /* shares of a secret needed, out of k + 1 */
    double dropout;           /* tolerated fraction of lost sites, [0, 1) */
    uint32_t dim;             /* words per vector, 1..SL_SECAGG_MAX_DIM */
    unsigned bits;            /* modulus 2^bits: 32 or 64 */
} sl_secagg_config;

/* Defaults for a cohort of n sites expecting a dropout fraction:
 * t = n - ceil(dropout n) (at least 2), min_cohort = t, complete graph for
 * n <= SL_SECAGG_COMPLETE_MAX, else the smallest even degree >= 2 log2(n)
 * for which (union bound over the n sites) the chance that some dropped
 * site keeps fewer than share_threshold live neighbours is at most
 * SL_SECAGG_GRAPH_FAIL_PROB, and share_threshold = floor((k + 1) / 2) + 1.
 * Validates the result (SL_EINVAL when the dropout is too high for any
 * setting). */
int sl_secagg_config_default(sl_secagg_config *c, uint32_t cohort, uint32_t dim, double dropout,
                             unsigned bits, sl_err *err);
/* Checks every rule of docs/secagg.md "Configuration checks"; the message
 * names the fields and values that disagree and why. */
int sl_secagg_config_validate(const sl_secagg_config *c, sl_err *err);
/* The degree in effect when n_present sites took part (n_present >= 2):
 * the configured degree, or n_present - 1 when that is smaller. */
uint32_t sl_secagg_config_degree(const sl_secagg_config *c, uint32_t n_present);
/* Checks a DP plan against the round: same dimension (the plan's padded
 * length), same modulus, noise calibrated for this threshold, and the
 * overflow bound for the whole cohort at most max_overflow. */
int sl_secagg_config_check_dp(const sl_secagg_config *c, const sl_dp_plan *pl,
                              double max_overflow, sl_err *err);

#endif
