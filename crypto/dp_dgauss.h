/* crypto/dp_dgauss.h - exact sampling from the discrete Gaussian
 * N_Z(0, sigma^2) (P[X = x] proportional to exp(-x^2 / (2 sigma^2)) on the
 * integers) with the rejection sampler of Canonne, Kamath and Steinke 2020
 * ("The Discrete Gaussian for Differential Privacy", algorithms 1-3):
 * Bernoulli(exp(-gamma)) from Bernoulli(rational) coins, a discrete Laplace
 * proposal with integer scale t = floor(sigma) + 1, and a Bernoulli(exp(-
 * (|Y| - sigma^2/t)^2 / (2 sigma^2))) acceptance. Every quantity is an
 * integer or a ratio of integers (64- and 128-bit); random bits come from an
 * sl_dp_rng (libsodium). No floating point touches a sample.
 *
 * The variance is the rational num/den. Limits (checked by init): 2^-20 <=
 * sigma^2 <= 2^48 and 2 * num * den * t^2 < 2^100, which keeps every
 * intermediate below 2^128. One approximation remains: a proposal with
 * |Y| * den * t >= 2^63 is rejected outright instead of being accepted
 * with probability exp(-gamma); for variances built by
 * sl_dp_dgauss_from_variance such a proposal has gamma > 2^27, so the
 * output distribution moves by less than exp(-2^27). Thread-safe for
 * distinct rngs (the sampler itself is read-only). */
#ifndef SL_DP_DGAUSS_H
#define SL_DP_DGAUSS_H
#include <stdint.h>

#include "crypto/dp_rng.h"
#include "shared/err.h"

#define SL_DP_DGAUSS_MAX_VAR_LOG2 48 /* sigma^2 <= 2^48, sigma <= 2^24 */
#define SL_DP_DGAUSS_MIN_VAR_LOG2 (-20)

typedef struct sl_dp_dgauss {
    uint64_t num, den; /* sigma^2 = num / den, den > 0 */
    uint64_t t;        /* Laplace scale floor(sigma) + 1 */
} sl_dp_dgauss;

/* Fails with SL_ELIMIT (message names the bound) outside the limits. */
int sl_dp_dgauss_init(sl_dp_dgauss *g, uint64_t num, uint64_t den, sl_err *err);
/* The smallest dyadic num/den >= var with about 30 significant bits (den a
 * power of two): rounding up only ever adds noise. */
int sl_dp_dgauss_from_variance(sl_dp_dgauss *g, double var, sl_err *err);
double sl_dp_dgauss_variance(const sl_dp_dgauss *g);
int64_t sl_dp_dgauss_sample(const sl_dp_dgauss *g, sl_dp_rng *rng);
/* Bernoulli(exp(-num/den)) for den > 0, num / den < 2^64 and den < 2^100
 * (exposed for tests). */
int sl_dp_dgauss_bern_exp(unsigned __int128 num, unsigned __int128 den, sl_dp_rng *rng);

#endif
