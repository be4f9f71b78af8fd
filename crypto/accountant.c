#include "crypto/accountant.h"

#include <math.h>
#include <string.h>

/* Integer orders above this (and fractional series longer than
 * MAX_SERIES terms) are not computed: their RDP is reported as +inf, which
 * only removes them from the minimum over orders (conservative). */
#define MAX_ORDER 1e5
#define MAX_SERIES 200000

/* ---- log-space arithmetic ------------------------------------------- */

static double log_add(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    double hi = a > b ? a : b, lo = a > b ? b : a;
    return hi + log1p(exp(lo - hi));
}

/* A signed number sign * exp(mag); mag == -inf is zero. */
typedef struct slog {
    int sign;
    double mag;
} slog;

static void slog_add(slog *acc, int sign, double mag)
{
    if (mag == -INFINITY)
        return;
    if (acc->mag == -INFINITY) {
        acc->sign = sign;
        acc->mag = mag;
    } else if (acc->sign == sign) {
        acc->mag = log_add(acc->mag, mag);
    } else if (acc->mag > mag) {
        acc->mag += log1p(-exp(mag - acc->mag));
    } else if (acc->mag < mag) {
        acc->mag = mag + log1p(-exp(acc->mag - mag));
        acc->sign = sign;
    } else {
        acc->sign = 1;
        acc->mag = -INFINITY;
    }
}

static double log_binom_int(double n, double k)
{
    int s;
    return lgamma_r(n + 1, &s) - lgamma_r(k + 1, &s) - lgamma_r(n - k + 1, &s);
}

/* log(erfc(x)), accurate in the far tail where erfc underflows: there the
 * asymptotic series erfc(x) = exp(-x^2)/(x sqrt(pi)) (1 - 1/(2x^2) +
 * 3/(4x^4) - 15/(8x^6) + 105/(16x^8) ...) is used; at x >= 26 the first
 * omitted term is below 1e-13. */
static double log_erfc(double x)
{
    if (x < 26.0)
        return log(erfc(x));
    double u = 1.0 / (x * x);
    double series = 1.0 + u * (-0.5 + u * (0.75 + u * (-1.875 + u * 6.5625)));
    return -x * x - log(x) - 0.5 * log(M_PI) + log(series);
}

/* ---- Poisson-subsampled Gaussian (MTZ19 Sec. 3.3) -------------------- */

/* log A_alpha for integer alpha: sum_i C(a,i) (1-q)^(a-i) q^i exp((i^2-i)/(2 s^2)). */
static double log_a_int(double q, double sigma, double alpha)
{
    double lq = log(q), l1q = log1p(-q), s2 = 2.0 * sigma * sigma;
    double acc = -INFINITY, lb = 0; /* lb = log C(alpha, i), updated incrementally */
    for (double i = 0; i <= alpha; i += 1.0) {
        double t = lb + i * lq + (alpha - i) * l1q + (i * i - i) / s2;
        acc = log_add(acc, t);
        lb += log(alpha - i) - log(i + 1.0);
    }
    return acc;
}

/* log A_alpha for fractional alpha: the integral is split at z0 where the
 * two mixture components are equal and each half expanded as a binomial
 * series, whose coefficients change sign past alpha; the signed sums are
 * kept exactly (MTZ19 Sec. 3.3). */
static double log_a_frac(double q, double sigma, double alpha)
{
    slog a0 = {1, -INFINITY}, a1 = {1, -INFINITY};
    double z0 = sigma * sigma * log(1.0 / q - 1.0) + 0.5;
    double lq = log(q), l1q = log1p(-q), s2 = 2.0 * sigma * sigma;
    double rs = sqrt(2.0) * sigma;
    double lc = 0; /* log |C(alpha, i)| */
    int sign = 1;  /* sign of C(alpha, i) */
    double last0 = INFINITY, last1 = INFINITY;
    for (long i = 0; i < MAX_SERIES; i++) {
        double di = (double)i, j = alpha - di;
        double t0 = lc + di * lq + j * l1q;
        double t1 = lc + j * lq + di * l1q;
        double s0 = t0 + (di * di - di) / s2 + log(0.5) + log_erfc((di - z0) / rs);
        double s1 = t1 + (j * j - j) / s2 + log(0.5) + log_erfc((z0 - j) / rs);
        slog_add(&a0, sign, s0);
        slog_add(&a1, sign, s1);
        double scale = a0.mag > a1.mag ? a0.mag : a1.mag;
        /* Past alpha the coefficients alternate in sign and, once the
         * terms decrease, the omitted tail is smaller than the last term
         * (alternating series); stopping at a relative 1e-13 and adding that
         * last term's magnitude keeps the result an upper bound. The terms
         * decay only polynomially near alpha = 1, so a tighter stop would
         * cost thousands of terms for digits nobody reads. */
        if (di > alpha && s0 < last0 && s1 < last1 && fmax(s0, s1) < scale - 30.0) {
            slog tot = a0;
            slog_add(&tot, a1.sign, a1.mag);
            slog_add(&tot, 1, s0);
            slog_add(&tot, 1, s1);
            if (tot.sign < 0 || isnan(tot.mag))
                return INFINITY; /* cancellation beyond repair: refuse the order */
            return tot.mag;
        }
        last0 = s0;
        last1 = s1;
        if (alpha - di < 0)
            sign = -sign;
        lc += log(fabs(alpha - di)) - log(di + 1.0);
    }
    return INFINITY;
}

double sl_acct_rdp_sgm(double q, double sigma, double alpha)
{
    if (!(q >= 0 && q <= 1) || !(sigma >= 0) || !(alpha >= 1))
        return NAN;
    if (q == 0)
        return 0;
    if (isinf(alpha) || sigma == 0 || isinf(1.0 / (sigma * sigma)))
        return INFINITY;
    if (q == 1)
        return alpha / (2.0 * sigma * sigma);
    if (alpha == 1 || alpha > MAX_ORDER)
        return INFINITY;
    double la = floor(alpha) == alpha ? log_a_int(q, sigma, alpha) : log_a_frac(q, sigma, alpha);
    if (isnan(la))
        return INFINITY;
    if (la < 0)
        la = 0; /* A_alpha >= 1; a negative log is rounding */
    return la / (alpha - 1.0);
}

/* ---- grid and composition ------------------------------------------- */

size_t sl_acct_default_orders(double *out, size_t cap)
{
    size_t n = 0;
#define PUT(x)                     \
    do {                           \
        if (n < cap)               \
            out[n] = (double)(x);  \
        n++;                       \
    } while (0)
    for (int k = 1; k <= 99; k++)
        PUT(1.0 + k / 100.0); /* 1.01 .. 1.99 */
    for (int k = 0; k < 80; k++)
        PUT(2.0 + k / 10.0); /* 2.0 .. 9.9 */
    for (int k = 0; k < 44; k++)
        PUT(10.0 + k / 2.0); /* 10 .. 31.5 */
    for (int k = 32; k < 64; k++)
        PUT(k);
    for (int k = 64; k < 128; k += 4)
        PUT(k);
    for (int k = 128; k < 256; k += 16)
        PUT(k);
    PUT(256);
    PUT(320);
    PUT(384);
    PUT(448);
    PUT(512);
    PUT(768);
    PUT(1024);
#undef PUT
    return n < cap ? n : cap;
}

void sl_acct_init(sl_acct *a)
{
    memset(a, 0, sizeof *a);
    a->n = sl_acct_default_orders(a->orders, SL_ACCT_MAX_ORDERS);
}

int sl_acct_init_orders(sl_acct *a, const double *orders, size_t n, sl_err *err)
{
    if (n == 0)
        return sl_err_set(err, SL_EINVAL, "accountant: no orders given");
    if (n > SL_ACCT_MAX_ORDERS)
        return sl_err_set(err, SL_ELIMIT, "accountant: %zu orders exceed the limit of %d", n,
                          SL_ACCT_MAX_ORDERS);
    for (size_t i = 0; i < n; i++)
        if (!(orders[i] > 1) || !isfinite(orders[i]))
            return sl_err_set(err, SL_EINVAL,
                              "accountant: order #%zu = %g must be finite and above 1", i,
                              orders[i]);
    memset(a, 0, sizeof *a);
    memcpy(a->orders, orders, n * sizeof *orders);
    a->n = n;
    return 0;
}

int sl_acct_add_rdp(sl_acct *a, const double *rdp, sl_err *err)
{
    for (size_t i = 0; i < a->n; i++)
        if (isnan(rdp[i]) || rdp[i] < 0)
            return sl_err_set(err, SL_EINVAL, "accountant: RDP %g at order %g is not >= 0",
                              rdp[i], a->orders[i]);
    for (size_t i = 0; i < a->n; i++)
        a->rdp[i] += rdp[i];
    a->steps++;
    return 0;
}

int sl_acct_add_sgm(sl_acct *a, double q, double sigma, uint64_t steps, sl_err *err)
{
    if (!(q >= 0 && q <= 1))
        return sl_err_set(err, SL_EINVAL, "sampling probability q = %g is outside [0, 1]", q);
    if (!(sigma >= 0) || !isfinite(sigma))
        return sl_err_set(err, SL_EINVAL, "noise multiplier sigma = %g must be finite and >= 0",
                          sigma);
    double tmp[SL_ACCT_MAX_ORDERS];
    for (size_t i = 0; i < a->n; i++) {
        double r = sl_acct_rdp_sgm(q, sigma, a->orders[i]);
        tmp[i] = steps == 0 ? 0 : r * (double)steps;
        if (isnan(tmp[i]))
            return sl_err_set(err, SL_EINVAL, "RDP undefined at order %g (q %g, sigma %g)",
                              a->orders[i], q, sigma);
    }
    for (size_t i = 0; i < a->n; i++)
        a->rdp[i] += tmp[i];
    a->steps += steps;
    return 0;
}

int sl_acct_rdp_to_eps(const double *orders, const double *rdp, size_t n, double delta,
                       sl_acct_eps *out, sl_err *err)
{
    if (!(delta > 0 && delta < 1))
        return sl_err_set(err, SL_EINVAL, "delta = %g must be in (0, 1)", delta);
    if (n == 0)
        return sl_err_set(err, SL_EINVAL, "accountant: no orders given");
    double best = INFINITY, best_c = INFINITY;
    size_t ib = 0, ic = 0;
    int found = 0, found_c = 0;
    for (size_t i = 0; i < n; i++) {
        double a = orders[i], r = rdp[i];
        if (isnan(a) || isnan(r) || a < 1)
            return sl_err_set(err, SL_EINVAL, "accountant: bad order %g or RDP %g", a, r);
        if (r < 0)
            r = 0;
        double e, ec;
        /* Improved conversion (CKS20 Prop. 12 / BBGHS20 Thm. 21), guarded
         * as TF Privacy does: a tiny RDP bounds delta through the KL
         * divergence alone (delta <= sqrt(1 - exp(-KL))). */
        if (isinf(r))
            e = INFINITY;
        else if (delta * delta + expm1(-r) > 0)
            e = 0;
        else if (a > 1.01)
            e = r + log1p(-1.0 / a) - log(delta * a) / (a - 1.0);
        else
            e = INFINITY;
        /* Classic conversion (Mironov 2017 Prop. 3). */
        ec = (a > 1 && !isinf(r)) ? r - log(delta) / (a - 1.0) : INFINITY;
        if (!found || e < best) {
            best = e;
            ib = i;
            found = 1;
        }
        if (!found_c || ec < best_c) {
            best_c = ec;
            ic = i;
            found_c = 1;
        }
    }
    out->delta = delta;
    out->epsilon = best > 0 ? best : 0;
    out->order = orders[ib];
    out->epsilon_classic = best_c > 0 ? best_c : 0;
    out->order_classic = orders[ic];
    return 0;
}

int sl_acct_epsilon(const sl_acct *a, double delta, sl_acct_eps *out, sl_err *err)
{
    return sl_acct_rdp_to_eps(a->orders, a->rdp, a->n, delta, out, err);
}

/* ---- distributed discrete Gaussian (KLS21) --------------------------- */

double sl_acct_ddg_tau(double sigma_grid, uint32_t n)
{
    double s = 0, c = 2.0 * M_PI * M_PI * sigma_grid * sigma_grid;
    for (uint32_t k = 1; k < n; k++)
        s += exp(-c * (double)k / (double)(k + 1));
    return 10.0 * s;
}

int sl_acct_ddg_sensitivity(double clip, double scale, uint64_t dim, double beta,
                            double *l2, double *l1, sl_err *err)
{
    if (!(clip > 0) || !isfinite(clip))
        return sl_err_set(err, SL_EINVAL, "clip norm %g must be finite and > 0", clip);
    if (!(scale > 0) || !isfinite(scale))
        return sl_err_set(err, SL_EINVAL, "grid scale %g must be finite and > 0", scale);
    if (dim == 0 || dim > SL_ACCT_MAX_DIM)
        return sl_err_set(err, SL_EINVAL, "dimension %llu is outside [1, 2^40]",
                          (unsigned long long)dim);
    if (!(beta >= 0 && beta < 1))
        return sl_err_set(err, SL_EINVAL, "rounding beta %g is outside [0, 1)", beta);
    double cs = clip * scale, sd = sqrt((double)dim);
    double b = cs + sd;
    if (beta > 0) {
        double b2 = sqrt(cs * cs + 0.25 * (double)dim + sqrt(2.0 * log(1.0 / beta)) * (cs + 0.5 * sd));
        if (b2 < b)
            b = b2;
    }
    if (!isfinite(b))
        return sl_err_set(err, SL_EINVAL, "sensitivity overflows (clip %g, scale %g)", clip, scale);
    *l2 = b;
    *l1 = b * (sd < b ? sd : b);
    return 0;
}

double sl_acct_rdp_ddg(double l2s, double l1s, double tau, uint64_t dim, double alpha)
{
    double d = (double)dim, h = alpha / 2.0;
    double t1 = h * l2s * l2s + tau * d;
    double t2 = h * (l2s * l2s + 2.0 * l1s * tau + tau * tau * d);
    double u = l2s + sqrt(d) * tau;
    double t3 = h * u * u;
    double m = t1 < t2 ? t1 : t2;
    return m < t3 ? m : t3;
}

double sl_acct_rdp_ddg_sampled(double q, double l2s, double l1s, double tau, uint64_t dim,
                               double alpha)
{
    if (!(alpha > 1))
        return INFINITY;
    double base = sl_acct_rdp_ddg(l2s, l1s, tau, dim, alpha);
    if (q <= 0)
        return 0;
    if (q >= 1 || !isfinite(base))
        return base;
    double ai = ceil(alpha);
    if (ai > MAX_ORDER)
        return base;
    /* Zhu-Wang general upper bound for Poisson subsampling at integer ai:
     * (1-q)^(a-1) (aq - q + 1) + C(a,2) q^2 (1-q)^(a-2) e^eps(2)
     *   + 3 sum_{l=3}^{a} C(a,l) q^l (1-q)^(a-l) e^((l-1) eps(l)). */
    double lq = log(q), l1q = log1p(-q);
    double acc = (ai - 1) * l1q + log(ai * q - q + 1.0);
    acc = log_add(acc, log_binom_int(ai, 2) + 2 * lq + (ai - 2) * l1q +
                           sl_acct_rdp_ddg(l2s, l1s, tau, dim, 2));
    double lb = log_binom_int(ai, 2);
    for (double l = 3; l <= ai; l += 1.0) {
        lb += log(ai - l + 1.0) - log(l);
        acc = log_add(acc, log(3.0) + lb + l * lq + (ai - l) * l1q +
                               (l - 1) * sl_acct_rdp_ddg(l2s, l1s, tau, dim, l));
    }
    double sub = acc / (ai - 1);
    if (isnan(sub))
        return base;
    return sub < base ? sub : base;
}

/* ---- one round ------------------------------------------------------- */

int sl_acct_mech_check(const sl_acct_mech *m, sl_err *err)
{
    if (m->mode != SL_ACCT_CENTRAL && m->mode != SL_ACCT_DISTRIBUTED)
        return sl_err_set(err, SL_EINVAL, "mechanism mode %d is neither central nor distributed",
                          m->mode);
    if (!(m->q > 0 && m->q <= 1))
        return sl_err_set(err, SL_EINVAL, "mechanism field q = %g is outside (0, 1]", m->q);
    if (!(m->clip > 0) || !isfinite(m->clip))
        return sl_err_set(err, SL_EINVAL, "mechanism field clip = %g must be finite and > 0",
                          m->clip);
    if (m->dim == 0 || m->dim > SL_ACCT_MAX_DIM)
        return sl_err_set(err, SL_EINVAL, "mechanism field dim = %llu is outside [1, 2^40]",
                          (unsigned long long)m->dim);
    if (m->sampled > SL_ACCT_MAX_SITES)
        return sl_err_set(err, SL_ELIMIT, "mechanism field sampled = %u exceeds %u sites",
                          m->sampled, SL_ACCT_MAX_SITES);
    if (m->received > m->sampled)
        return sl_err_set(err, SL_EINVAL, "mechanism field received = %u exceeds sampled = %u",
                          m->received, m->sampled);
    if (m->survivors > m->received)
        return sl_err_set(err, SL_EINVAL, "mechanism field survivors = %u exceeds received = %u",
                          m->survivors, m->received);
    if (m->threshold > m->sampled)
        return sl_err_set(err, SL_EINVAL, "mechanism field threshold = %u exceeds sampled = %u",
                          m->threshold, m->sampled);
    if (m->modulus_bits < 1 || m->modulus_bits > 64)
        return sl_err_set(err, SL_EINVAL, "mechanism field modulus_bits = %u is outside [1, 64]",
                          m->modulus_bits);
    if (!(m->sigma2_grid >= 0) || !isfinite(m->sigma2_grid))
        return sl_err_set(err, SL_EINVAL, "mechanism field sigma2_grid = %g must be finite and >= 0",
                          m->sigma2_grid);
    if (!(m->scale > 0) || !isfinite(m->scale))
        return sl_err_set(err, SL_EINVAL, "mechanism field scale = %g must be finite and > 0",
                          m->scale);
    if (!(m->rounding_beta >= 0 && m->rounding_beta < 1))
        return sl_err_set(err, SL_EINVAL, "mechanism field rounding_beta = %g is outside [0, 1)",
                          m->rounding_beta);
    if (!(m->central_var_grid >= 0) || !isfinite(m->central_var_grid))
        return sl_err_set(err, SL_EINVAL,
                          "mechanism field central_var_grid = %g must be finite and >= 0",
                          m->central_var_grid);
    return 0;
}

/* Noise shares counted (n), per-share variance (v) of the mode's noise. */
static void mech_noise(const sl_acct_mech *m, uint32_t n_dist, uint32_t *n, double *v)
{
    if (m->mode == SL_ACCT_CENTRAL) {
        *n = m->central_var_grid > 0 ? 1 : 0;
        *v = m->central_var_grid;
    } else {
        *n = n_dist;
        *v = m->sigma2_grid;
    }
}

/* RDP at each order of one round with n shares of variance v. */
static int ddg_rdp(const sl_acct_mech *m, uint32_t n, double v, double l2, double l1,
                   const double *orders, size_t k, double *rdp)
{
    double sigma = sqrt(v);
    /* No noise share, or per-share noise below the range KLS21 states its
     * bound for (sigma >= 1/2 grid unit): no privacy is claimed. */
    if (n == 0 || !(sigma >= 0.5)) {
        for (size_t i = 0; i < k; i++)
            rdp[i] = INFINITY;
        return 0;
    }
    double root = sqrt((double)n) * sigma;
    double l2s = l2 / root, l1s = l1 / root, tau = sl_acct_ddg_tau(sigma, n);
    for (size_t i = 0; i < k; i++)
        rdp[i] = sl_acct_rdp_ddg_sampled(m->q, l2s, l1s, tau, m->dim, orders[i]);
    return 0;
}

int sl_acct_mech_rdp(const sl_acct_mech *m, const double *orders, size_t n, double *rdp,
                     sl_err *err)
{
    int rc = sl_acct_mech_check(m, err);
    if (rc)
        return rc;
    double l2, l1;
    rc = sl_acct_ddg_sensitivity(m->clip, m->scale, m->dim, m->rounding_beta, &l2, &l1, err);
    if (rc)
        return rc;
    uint32_t k;
    double v;
    mech_noise(m, m->survivors, &k, &v);
    ddg_rdp(m, k, v, l2, l1, orders, n, rdp);
    if (m->mode == SL_ACCT_DISTRIBUTED && m->received != m->survivors) {
        double other[SL_ACCT_MAX_ORDERS];
        for (size_t off = 0; off < n; off += SL_ACCT_MAX_ORDERS) {
            size_t c = n - off < SL_ACCT_MAX_ORDERS ? n - off : SL_ACCT_MAX_ORDERS;
            ddg_rdp(m, m->received, v, l2, l1, orders + off, c, other);
            for (size_t i = 0; i < c; i++)
                if (other[i] > rdp[off + i])
                    rdp[off + i] = other[i];
        }
    }
    return 0;
}

int sl_acct_add_mech(sl_acct *a, const sl_acct_mech *m, sl_err *err)
{
    double tmp[SL_ACCT_MAX_ORDERS];
    int rc = sl_acct_mech_rdp(m, a->orders, a->n, tmp, err);
    if (rc)
        return rc;
    return sl_acct_add_rdp(a, tmp, err);
}

int sl_acct_preview(const sl_acct *a, const sl_acct_mech *m, double delta, sl_acct_eps *after,
                    sl_err *err)
{
    double tmp[SL_ACCT_MAX_ORDERS];
    int rc = sl_acct_mech_rdp(m, a->orders, a->n, tmp, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < a->n; i++)
        tmp[i] += a->rdp[i];
    return sl_acct_rdp_to_eps(a->orders, tmp, a->n, delta, after, err);
}

int sl_acct_mech_noise_multiplier(const sl_acct_mech *m, double *z, sl_err *err)
{
    int rc = sl_acct_mech_check(m, err);
    if (rc)
        return rc;
    double l2, l1;
    rc = sl_acct_ddg_sensitivity(m->clip, m->scale, m->dim, m->rounding_beta, &l2, &l1, err);
    if (rc)
        return rc;
    uint32_t n;
    double v;
    mech_noise(m, m->survivors, &n, &v);
    if (n == 0 || v <= 0) {
        *z = 0;
        return 0;
    }
    double tau = sl_acct_ddg_tau(sqrt(v), n);
    *z = 1.0 / (l2 / sqrt((double)n * v) + tau * sqrt((double)m->dim));
    return 0;
}

int sl_acct_mech_noise_vs_clip(const sl_acct_mech *m, double *z, sl_err *err)
{
    int rc = sl_acct_mech_check(m, err);
    if (rc)
        return rc;
    uint32_t n;
    double v;
    mech_noise(m, m->survivors, &n, &v);
    *z = sqrt((double)n * v) / (m->clip * m->scale);
    return 0;
}

int sl_acct_ddg_calibrate(double z, double clip, double scale, uint32_t t, double *sigma2_grid,
                          sl_err *err)
{
    if (!(z > 0) || !isfinite(z))
        return sl_err_set(err, SL_EINVAL, "noise multiplier %g must be finite and > 0", z);
    if (t == 0)
        return sl_err_set(err, SL_EINVAL, "threshold must be at least 1 site");
    if (!(clip > 0) || !isfinite(clip) || !(scale > 0) || !isfinite(scale))
        return sl_err_set(err, SL_EINVAL, "clip %g and scale %g must be finite and > 0", clip,
                          scale);
    *sigma2_grid = (z * clip * scale) * (z * clip * scale) / (double)t;
    return 0;
}
