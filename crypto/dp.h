/* crypto/dp.h - the differential-privacy mechanisms around secure
 * aggregation, after Kairouz, Liu and Steinke 2021 ("The Distributed
 * Discrete Gaussian Mechanism for Federated Learning with Secure
 * Aggregation"). A site's update goes through
 *   clip to L2 norm C  ->  zero-pad to D' = a whole number of blocks of
 *   B = 2^k coordinates (sl_dp_layout)  ->  randomised Walsh-Hadamard
 *   rotation (seeded signs on all D', then H / sqrt(B) on each block)  ->  scale by
 *   the grid scale s  ->  conditional randomised rounding (retry until the
 *   integer vector's norm is at most the bound below)  ->  + discrete
 *   Gaussian noise of variance (sigma C s)^2 / t per coordinate (distributed
 *   mode)  ->  reduce modulo 2^bits.
 * The server, after secure aggregation, optionally adds the whole noise
 * N_Z(0, (sigma C s)^2) itself (central mode), reads the sum as signed
 * integers, divides by s and undoes the rotation.
 *
 * Norm bound (grid units; KLS21 theorem 1 with gamma = 1/s):
 *   Delta2^2 = min{ (C s + sqrt(D'))^2,
 *                   (C s)^2 + D'/4 + sqrt(2 ln(1/beta)) (C s + sqrt(D')/2) }
 * (the second term only when beta > 0). Rounding is repeated until
 * sum z_i^2 <= floor(Delta2^2), checked in exact integer arithmetic, so
 * every vector that leaves a site respects the bound.
 *
 * Overflow bound: with n sites, coordinate j of the modular sum wraps only
 * if |sum| >= 2^(bits-1). The rotated data part of a coordinate in block b
 * is a Rademacher sum with coefficient norm <= n ||x_b|| s / sqrt(B) <=
 * n C s / sqrt(B), rounding moves each site by less than 1, and discrete
 * Gaussians are sub-Gaussian with their sigma (CKS20), so by Hoeffding and
 * a union bound over D' coordinates
 *   P[overflow] <= 2 D' exp(-(2^(bits-1) - n)^2 / (2 (n^2 (C s)^2 / B + V)))
 * with V the total noise variance (n (sigma C s)^2 / t distributed,
 * (sigma C s)^2 central). sl_dp_check_modulus refuses a plan whose bound
 * exceeds the allowed probability.
 *
 * Nothing here allocates long-lived memory; encode/decode allocate scratch
 * for one call. Thread-safe for distinct rngs. The pre-clip norm is
 * returned only for the site's local log: it must never leave the site. */
#ifndef SL_DP_H
#define SL_DP_H
#include <stddef.h>
#include <stdint.h>

#include "crypto/dp_dgauss.h"
#include "crypto/dp_rng.h"
#include "shared/err.h"

enum { SL_DP_DISTRIBUTED = 0, SL_DP_CENTRAL = 1 };

#define SL_DP_MAX_DIM (1u << 26)          /* padded length limit (words) */
#define SL_DP_MIN_BLOCK 1024u             /* smallest rotation block of a split update */
#define SL_DP_MAX_BLOCKS 16u              /* a block is at least 1/16 of the power of two */
#define SL_DP_MAX_OVERFLOW_PROB 1e-12      /* default allowed P[overflow] */
#define SL_DP_DEFAULT_BETA 0.60653065971263342 /* exp(-1/2), as in KLS21 */
#define SL_DP_MAX_ROUNDING_TRIES 1000

typedef struct sl_dp_params {
    uint32_t dim;        /* D: length of the update (floats), >= 1 */
    double clip;         /* C > 0, model units */
    double scale;        /* s > 0, grid points per model unit */
    double sigma;        /* noise multiplier for t contributors; 0 = no noise */
    uint32_t threshold;  /* t >= 1: contributors the noise is calibrated for */
    double beta;         /* conditional-rounding parameter in [0, 1); 0 = no conditioning term */
    int mode;            /* SL_DP_DISTRIBUTED or SL_DP_CENTRAL */
    unsigned bits;       /* modulus 2^bits, 32 or 64 */
    uint8_t rotation_seed[32]; /* public, fresh per round */
} sl_dp_params;

typedef struct sl_dp_plan {
    sl_dp_params p;
    uint32_t dim_padded;          /* D' >= D: rotation and wire length (sl_dp_layout) */
    uint32_t rot_block;           /* B = 2^k dividing D': the rotation's block */
    double l2_bound;              /* Delta2, grid units */
    unsigned __int128 l2_bound2;  /* floor(Delta2^2): the exact acceptance test */
    int site_noise;               /* 1: sites add site_dg (distributed, sigma > 0) */
    sl_dp_dgauss site_dg;         /* (sigma C s)^2 / t, rounded up */
    int central_noise;            /* 1: the server adds central_dg */
    sl_dp_dgauss central_dg;      /* (sigma C s)^2, rounded up */
} sl_dp_plan;

/* What a site may write to its own local log, never send. */
typedef struct sl_dp_local_report {
    double pre_clip_norm;   /* L2 norm of the update before clipping */
    unsigned rounding_tries;/* conditional rounding attempts (>= 1) */
} sl_dp_local_report;

/* Validates params and derives the plan (message names the bad field). */
int sl_dp_plan_init(sl_dp_plan *pl, const sl_dp_params *p, sl_err *err);

/* L2 norm with a double accumulator. */
double sl_dp_l2norm(const float *x, size_t n);
/* Scales x in place so that sl_dp_l2norm(x) <= clip (never above, despite
 * float rounding); *pre_norm gets the norm before. Refuses non-finite
 * values (SL_EINVAL naming the index) and leaves x untouched then. */
int sl_dp_clip(float *x, size_t n, double clip, double *pre_norm, sl_err *err);

/* The rotation's layout for an update of dim values: *block = B = 2^k and
 * the padded length D' (returned), a whole number of blocks. P2, the
 * smallest power of two >= dim, is one block when dim <= SL_DP_MIN_BLOCK;
 * otherwise B ranges over the powers of two from max(SL_DP_MIN_BLOCK,
 * P2 / SL_DP_MAX_BLOCKS) to P2, D' is the smallest padded length among
 * them and B the largest block giving it. GPT-2 adapters (9 x 2^k values)
 * are not padded at all; a power of two is one block, as before. Sites and
 * server derive the same layout from dim. 0 (block 0) when dim is 0 or
 * D' would exceed SL_DP_MAX_DIM. */
uint32_t sl_dp_layout(uint32_t dim, uint32_t *block);

/* In-place orthonormal randomised Hadamard transform of n doubles in
 * blocks of block = 2^k (n a multiple of block): rotate flips signs with d
 * (drawn over all n from a stream seeded by seed), then applies H / sqrt(B)
 * to each block; unrotate is its inverse. */
int sl_dp_rotate(double *x, size_t n, size_t block, const uint8_t seed[32], sl_err *err);
int sl_dp_unrotate(double *x, size_t n, size_t block, const uint8_t seed[32], sl_err *err);

/* Randomised rounding of x (n values) to integers z, repeated until
 * sum z^2 <= bound2; *tries gets the attempts. SL_EABORT after
 * SL_DP_MAX_ROUNDING_TRIES; z is then unspecified. */
int sl_dp_round_conditional(int64_t *z, const double *x, size_t n, unsigned __int128 bound2,
                            sl_dp_rng *rng, unsigned *tries, sl_err *err);

/* A site's whole pipeline: delta (dim floats, not modified) to dim_padded
 * words of p.bits bits in host order. rep may be NULL. */
int sl_dp_encode(const sl_dp_plan *pl, const float *delta, void *words, sl_dp_rng *rng,
                 sl_dp_local_report *rep, sl_err *err);
/* Central mode: adds N_Z(0, (sigma C s)^2) to each of the dim_padded words
 * of the unmasked sum. A no-op plan (distributed or sigma 0) is refused
 * with SL_ESTATE so that noise is never added twice by mistake. */
int sl_dp_add_central_noise(const sl_dp_plan *pl, void *sum, sl_dp_rng *rng, sl_err *err);
/* Server: the modular sum (dim_padded words) back to dim floats in model
 * units (the sum of the contributors' clipped updates plus noise). */
int sl_dp_decode(const sl_dp_plan *pl, const void *sum, float *out, sl_err *err);

/* Upper bound on P[some coordinate of an n-site sum wraps] (see above). */
double sl_dp_overflow_bound(const sl_dp_plan *pl, uint32_t n_sites);
/* 0 if the bound is at most max_prob, else SL_EINVAL with a message that
 * gives the bound and what to change. */
int sl_dp_check_modulus(const sl_dp_plan *pl, uint32_t n_sites, double max_prob, sl_err *err);
/* The largest power-of-two grid scale in [2^-20, 2^40] for which the plan
 * is valid and passes sl_dp_check_modulus (p->scale is ignored). */
int sl_dp_choose_scale(const sl_dp_params *p, uint32_t n_sites, double max_prob, double *scale,
                       sl_err *err);

#endif
