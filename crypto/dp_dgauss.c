#include "crypto/dp_dgauss.h"

#include <math.h>

typedef unsigned __int128 u128;

static u128 rand_u128(sl_dp_rng *r)
{
    u128 hi = sl_dp_rng_u64(r);
    return hi << 64 | sl_dp_rng_u64(r);
}

/* Uniform in [0, m), m > 0, by masked rejection (accepts with p > 1/2). */
static u128 below128(sl_dp_rng *r, u128 m)
{
    if (m <= (u128)UINT64_MAX + 1) {
        if (m == (u128)UINT64_MAX + 1)
            return sl_dp_rng_u64(r);
        return sl_dp_rng_below(r, (uint64_t)m);
    }
    uint64_t top_hi = (uint64_t)((m - 1) >> 64); /* nonzero: m > 2^64 */
    int bits = 128 - __builtin_clzll(top_hi);
    u128 mask = bits == 128 ? ~(u128)0 : (((u128)1 << bits) - 1);
    for (;;) {
        u128 v = rand_u128(r) & mask;
        if (v < m)
            return v;
    }
}

/* Bernoulli(a / b) for 0 <= a <= b, b > 0. */
static int bern(sl_dp_rng *r, u128 a, u128 b) { return below128(r, b) < a; }

/* Bernoulli(exp(-a/b)) for 0 <= a <= b (CKS20 algorithm 1, first part):
 * K counts successive Bernoulli(gamma/K) successes; K odd with probability
 * exp(-gamma). b * K stays below 2^128 because b < 2^100 and K < 2^20; the
 * K cap is reached with probability below 1/(2^20)!. */
static int bern_exp_le1(sl_dp_rng *r, u128 a, u128 b)
{
    uint64_t k = 1;
    while (k < (1u << 20) && bern(r, a, b * k))
        k++;
    return (int)(k & 1);
}

int sl_dp_dgauss_bern_exp(u128 num, u128 den, sl_dp_rng *rng)
{
    if (num <= den)
        return bern_exp_le1(rng, num, den);
    u128 whole = num / den; /* floor(gamma) exp(-1) coins, stop at the first 0 */
    for (u128 k = 0; k < whole; k++)
        if (!bern_exp_le1(rng, 1, 1))
            return 0;
    return bern_exp_le1(rng, num % den, den);
}

/* Discrete Laplace with integer scale t (CKS20 algorithm 2 with s = 1):
 * P[Y = y] proportional to exp(-|y| / t). */
static int64_t dlaplace(sl_dp_rng *r, uint64_t t)
{
    for (;;) {
        uint64_t u = sl_dp_rng_below(r, t);
        if (!bern_exp_le1(r, u, t))
            continue;
        uint64_t v = 0;
        while (bern_exp_le1(r, 1, 1))
            v++;
        /* X = u + t v cannot overflow in practice: v is geometric with
         * ratio 1/e, so v > 2^38 has probability below e^-(2^38). */
        uint64_t x = u + t * v;
        int neg = (int)(sl_dp_rng_u64(r) & 1);
        if (neg && x == 0)
            continue;
        if (x > (uint64_t)INT64_MAX)
            continue;
        return neg ? -(int64_t)x : (int64_t)x;
    }
}

static uint64_t isqrt64(uint64_t v)
{
    uint64_t x = (uint64_t)sqrt((double)v);
    while (x > 0 && (u128)x * x > v)
        x--;
    while ((u128)(x + 1) * (x + 1) <= v)
        x++;
    return x;
}

int sl_dp_dgauss_init(sl_dp_dgauss *g, uint64_t num, uint64_t den, sl_err *err)
{
    if (num == 0 || den == 0)
        return sl_err_set(err, SL_EINVAL, "discrete gaussian: variance %llu/%llu is not positive",
                          (unsigned long long)num, (unsigned long long)den);
    /* num / den <= 2^48 and num / den >= 2^-20, in integers. */
    if ((u128)num > ((u128)den << SL_DP_DGAUSS_MAX_VAR_LOG2))
        return sl_err_set(err, SL_ELIMIT,
                          "discrete gaussian: variance %llu/%llu above the limit 2^%d",
                          (unsigned long long)num, (unsigned long long)den,
                          SL_DP_DGAUSS_MAX_VAR_LOG2);
    if (((u128)num << -SL_DP_DGAUSS_MIN_VAR_LOG2) < den)
        return sl_err_set(err, SL_ELIMIT,
                          "discrete gaussian: variance %llu/%llu below the limit 2^%d",
                          (unsigned long long)num, (unsigned long long)den,
                          SL_DP_DGAUSS_MIN_VAR_LOG2);
    uint64_t t = isqrt64(num / den) + 1; /* floor(sqrt(q)) = floor(sqrt(floor(q))) */
    u128 b = (u128)num * den; /* < 2^128: both factors < 2^64 */
    const u128 lim = (u128)1 << 99;  /* 2 * num * den * t^2 < 2^100 */
    if (b >= lim || b * t >= lim || b * t * t >= lim)
        return sl_err_set(err, SL_ELIMIT,
                          "discrete gaussian: variance %llu/%llu needs more than 100-bit "
                          "intermediates (reduce the denominator)",
                          (unsigned long long)num, (unsigned long long)den);
    g->num = num;
    g->den = den;
    g->t = t;
    return 0;
}

int sl_dp_dgauss_from_variance(sl_dp_dgauss *g, double var, sl_err *err)
{
    if (!(var > 0) || !isfinite(var))
        return sl_err_set(err, SL_EINVAL, "discrete gaussian: variance %g is not positive", var);
    if (var > ldexp(1.0, SL_DP_DGAUSS_MAX_VAR_LOG2) || var < ldexp(1.0, SL_DP_DGAUSS_MIN_VAR_LOG2))
        return sl_err_set(err, SL_ELIMIT, "discrete gaussian: variance %g outside [2^%d, 2^%d]",
                          var, SL_DP_DGAUSS_MIN_VAR_LOG2, SL_DP_DGAUSS_MAX_VAR_LOG2);
    int e;
    (void)frexp(var, &e); /* var in [2^(e-1), 2^e) */
    int k = 31 - e;       /* num = ceil(var * 2^k) lies in [2^30, 2^31] */
    if (k < 0)
        k = 0;
    double scaled = ceil(ldexp(var, k)); /* exact: scaling by 2^k, then ceil */
    return sl_dp_dgauss_init(g, (uint64_t)scaled, (uint64_t)1 << k, err);
}

double sl_dp_dgauss_variance(const sl_dp_dgauss *g) { return (double)g->num / (double)g->den; }

int64_t sl_dp_dgauss_sample(const sl_dp_dgauss *g, sl_dp_rng *rng)
{
    const u128 lim63 = (u128)1 << 63;
    u128 b = 2 * (u128)g->num * g->den * g->t * g->t; /* < 2^100 by init */
    for (;;) {
        int64_t y = dlaplace(rng, g->t);
        uint64_t ay = y < 0 ? -(uint64_t)y : (uint64_t)y;
        u128 p = (u128)ay * g->den;
        if (p >= lim63 || p * g->t >= lim63)
            continue; /* gamma > 2^27 for our variances: see the header */
        p *= g->t;
        u128 a = p >= g->num ? p - g->num : g->num - p; /* < 2^63 */
        /* gamma = a^2 / (2 num den t^2) = (|y| - sigma^2/t)^2 / (2 sigma^2) */
        if (sl_dp_dgauss_bern_exp(a * a, b, rng))
            return y;
    }
}
