/* crypto/accountant.h - the privacy accountant: Rényi DP (RDP) of the rounds
 * sealora runs, composed over a fine grid of orders and converted to
 * (epsilon, delta). The server calls it before releasing a round (to refuse
 * one that would overspend the budget) and the auditor calls it again from
 * the logged raw parameters; both must get the same numbers, so every
 * formula lives here once. docs/audit.md gives the formulas and references.
 *
 * Mechanisms:
 *  - Poisson-subsampled Gaussian (Mironov, Talwar, Zhang 2019,
 *    arXiv:1908.10530 Sec. 3.3): exact at integer and fractional orders.
 *  - Distributed discrete Gaussian (Kairouz, Liu, Steinke 2021,
 *    arXiv:2102.06387, Prop. 14 with the tau correction of Thm. 1 for a sum
 *    of n discrete Gaussians), from the noise shares actually present,
 *    amplified by Poisson subsampling with the general upper bound of Zhu and
 *    Wang 2019.
 * Conversions: the classic one (Mironov 2017, Prop. 3) and the improved one
 * (Canonne, Kamath, Steinke 2020 Prop. 12; Balle et al. 2020 Thm. 21).
 *
 * Everything is pure computation on caller storage: no allocation, no
 * globals; thread-safe as long as threads do not share an sl_acct. */
#ifndef SL_ACCOUNTANT_H
#define SL_ACCOUNTANT_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define SL_ACCT_MAX_ORDERS 512
/* Limits on logged mechanism parameters (an auditor reads them from an
 * untrusted log): more sites or coordinates than this is refused. */
#define SL_ACCT_MAX_SITES (1u << 20)
#define SL_ACCT_MAX_DIM (1ull << 40)

/* The grid every sealora accountant uses unless told otherwise: 286 orders
 * from 1.01 to 1024, densest near 1 where small-epsilon optima sit. */
#define SL_ACCT_GRID_NAME "sealora-fine-v1"

typedef struct sl_acct {
    size_t n;                         /* orders in use, 1..SL_ACCT_MAX_ORDERS */
    double orders[SL_ACCT_MAX_ORDERS];/* each > 1, finite */
    double rdp[SL_ACCT_MAX_ORDERS];   /* accumulated RDP per order; may be +inf */
    uint64_t steps;                   /* mechanism invocations composed */
} sl_acct;

/* An (epsilon, delta) statement with the order that achieved it. */
typedef struct sl_acct_eps {
    double delta;
    double epsilon, order;                 /* improved conversion */
    double epsilon_classic, order_classic; /* classic conversion */
} sl_acct_eps;

/* Same values as SL_DP_DISTRIBUTED / SL_DP_CENTRAL (crypto/dp.h). */
enum { SL_ACCT_DISTRIBUTED = 0, SL_ACCT_CENTRAL = 1 };

/* Raw parameters of one round's mechanism, as the runtime logs them. The
 * accountant derives the effective noise from these; it never takes a noise
 * multiplier or an epsilon on trust. Units: "update units" are those of the
 * clipped LoRA delta; "grid units" those of the integers after scaling by
 * `scale` and rounding. */
typedef struct sl_acct_mech {
    int mode;              /* SL_ACCT_DISTRIBUTED or SL_ACCT_CENTRAL */
    double q;              /* Poisson sampling probability of a site, (0, 1] */
    double clip;           /* L2 clip norm C, update units, > 0 */
    double scale;          /* grid units per update unit (distributed), > 0 */
    double sigma2_grid;    /* distributed: sigma^2 of each site's discrete
                            * Gaussian N_Z(0, sigma^2), grid units */
    double central_var_grid; /* central: sigma^2 of the server's discrete
                            * Gaussian added to the sum, grid units */
    uint64_t dim;          /* coordinates rounded and noised (the padded,
                            * rotated length), 1..SL_ACCT_MAX_DIM */
    uint32_t sampled;      /* sites sampled for the round */
    uint32_t received;     /* masked inputs in the sum */
    uint32_t survivors;    /* sites that completed unmasking. The noise
                            * counted is that of survivors or of received
                            * shares, whichever bounds epsilon higher */
    uint32_t threshold;    /* secure-aggregation threshold t */
    uint32_t modulus_bits; /* sums are taken mod 2^modulus_bits, 1..64 */
    double rounding_beta;  /* conditional stochastic rounding parameter in
                            * [0, 1); 0 = unconditional rounding */
} sl_acct_mech;

/* Writes the default grid into out (cap >= SL_ACCT_MAX_ORDERS suffices);
 * returns the number of orders. */
size_t sl_acct_default_orders(double *out, size_t cap);
/* Default grid, nothing spent. */
void sl_acct_init(sl_acct *a);
/* Custom grid: orders must be finite and > 1; SL_EINVAL / SL_ELIMIT. */
int sl_acct_init_orders(sl_acct *a, const double *orders, size_t n, sl_err *err);

/* RDP at order alpha of one invocation of the Poisson-subsampled Gaussian
 * with sampling probability q and noise multiplier sigma (stddev /
 * L2 sensitivity). +inf when sigma == 0 or the series fails to converge;
 * 0 when q == 0. Arguments must be in range (q in [0,1], sigma >= 0,
 * alpha >= 1); anything else yields NaN. */
double sl_acct_rdp_sgm(double q, double sigma, double alpha);
/* Adds `steps` invocations of the subsampled Gaussian to a. On error a is
 * untouched. */
int sl_acct_add_sgm(sl_acct *a, double q, double sigma, uint64_t steps, sl_err *err);
/* Adds a per-order RDP vector (a->n entries, each >= 0 or +inf). */
int sl_acct_add_rdp(sl_acct *a, const double *rdp, sl_err *err);

/* Converts RDP at the given orders into epsilon at delta with both
 * conversions. Orders <= 1 are skipped by the improved conversion below
 * 1.01 (it is numerically unstable there), as in TF Privacy. */
int sl_acct_rdp_to_eps(const double *orders, const double *rdp, size_t n, double delta,
                       sl_acct_eps *out, sl_err *err);
int sl_acct_epsilon(const sl_acct *a, double delta, sl_acct_eps *out, sl_err *err);

/* --- distributed discrete Gaussian ---------------------------------- */

/* tau = 10 * sum_{k=1}^{n-1} exp(-2 pi^2 sigma^2 k / (k+1)): the distance
 * of a sum of n discrete Gaussians N_Z(0, sigma^2) from one discrete
 * Gaussian of variance n sigma^2 (KLS21 Thm. 1). sigma in grid units. */
double sl_acct_ddg_tau(double sigma_grid, uint32_t n);
/* L2 and L1 sensitivity in grid units after scaling a vector of norm <= clip
 * by `scale` and rounding it stochastically (conditionally with beta > 0):
 * l2 = min(Cs + sqrt(d), sqrt(C^2 s^2 + d/4 + sqrt(2 ln(1/beta)) (Cs + sqrt(d)/2)))
 * and l1 = l2 * min(sqrt(d), l2) (KLS21 Thm. 1 / Prop. 22). */
int sl_acct_ddg_sensitivity(double clip, double scale, uint64_t dim, double beta,
                            double *l2, double *l1, sl_err *err);
/* RDP of the unsampled (distributed) discrete Gaussian at order alpha > 1,
 * with l2s = l2 / (sqrt(n) sigma), l1s = l1 / (sqrt(n) sigma) (KLS21 Prop. 14):
 * min(a/2 l2s^2 + tau d, a/2 (l2s^2 + 2 l1s tau + tau^2 d), a/2 (l2s + tau sqrt(d))^2). */
double sl_acct_rdp_ddg(double l2s, double l1s, double tau, uint64_t dim, double alpha);
/* The same, Poisson-subsampled with probability q (Zhu-Wang general bound
 * at integer orders; a fractional order uses the bound at its ceiling,
 * RDP being non-decreasing in the order). Never above the unsampled value. */
double sl_acct_rdp_ddg_sampled(double q, double l2s, double l1s, double tau, uint64_t dim,
                               double alpha);

/* --- one round ------------------------------------------------------- */

/* Validates m (ranges, counts survivors <= received <= sampled); the
 * message names the bad field and value. */
int sl_acct_mech_check(const sl_acct_mech *m, sl_err *err);
/* Per-order RDP of one round with parameters m at orders[0..n).
 * Distributed: the discrete Gaussian bound with n = survivors and with
 * n = received noise shares, the larger at each order (the count that is
 * really present is one of them; the larger bound is safe either way).
 * Central: one discrete Gaussian of variance central_var_grid (tau = 0).
 * Noise the mode does not use is ignored (extra independent noise is
 * post-processing and can only help). */
int sl_acct_mech_rdp(const sl_acct_mech *m, const double *orders, size_t n, double *rdp,
                     sl_err *err);
/* Adds one round to a. On error a is untouched. */
int sl_acct_add_mech(sl_acct *a, const sl_acct_mech *m, sl_err *err);
/* The epsilon a would reach after one more round m, a untouched: how the
 * server refuses a round that would overspend (before a round, with
 * survivors = received = threshold, the fewest a released round can have). */
int sl_acct_preview(const sl_acct *a, const sl_acct_mech *m, double delta, sl_acct_eps *after,
                    sl_err *err);
/* The Gaussian-equivalent noise multiplier the round actually had,
 * against the rounded sensitivity l2 and with the tau correction
 * (KLS21 Prop. 14, third bound): 1 / (l2 / sqrt(n sigma^2) + tau sqrt(d)),
 * n = survivors; central sqrt(V) / l2. */
int sl_acct_mech_noise_multiplier(const sl_acct_mech *m, double *z, sl_err *err);
/* The noise the round had relative to the clip norm, the way a noise
 * multiplier is configured: sqrt(survivors sigma2_grid) / (C s), central
 * sqrt(V) / (C s). Below the configured multiplier means less noise than
 * promised (too few survivors, or a smaller variance). */
int sl_acct_mech_noise_vs_clip(const sl_acct_mech *m, double *z, sl_err *err);
/* The per-site sigma^2 (grid units) that gives noise multiplier z (relative
 * to the clip) when t sites survive: (z C s)^2 / t. */
int sl_acct_ddg_calibrate(double z, double clip, double scale, uint32_t t, double *sigma2_grid,
                          sl_err *err);

#endif
