#include "crypto/dp.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

int sl_dp_plan_init(sl_dp_plan *pl, const sl_dp_params *p, sl_err *err)
{
    if (p->dim == 0 || p->dim > SL_DP_MAX_DIM)
        return sl_err_set(err, SL_ELIMIT, "dp: dim %u outside 1..%u", p->dim, SL_DP_MAX_DIM);
    if (!(p->clip > 0) || !isfinite(p->clip))
        return sl_err_set(err, SL_EINVAL, "dp: clip norm %g is not a positive number", p->clip);
    if (!(p->scale > 0) || !isfinite(p->scale))
        return sl_err_set(err, SL_EINVAL, "dp: grid scale %g is not a positive number", p->scale);
    if (!(p->sigma >= 0) || !isfinite(p->sigma))
        return sl_err_set(err, SL_EINVAL, "dp: noise multiplier %g is negative or not a number",
                          p->sigma);
    if (p->threshold == 0)
        return sl_err_set(err, SL_EINVAL, "dp: threshold 0 (the noise needs >= 1 contributor)");
    if (!(p->beta >= 0 && p->beta < 1))
        return sl_err_set(err, SL_EINVAL, "dp: rounding beta %g outside [0, 1)", p->beta);
    if (p->mode != SL_DP_DISTRIBUTED && p->mode != SL_DP_CENTRAL)
        return sl_err_set(err, SL_EINVAL, "dp: mode %d (want distributed or central)", p->mode);
    if (p->bits != 32 && p->bits != 64)
        return sl_err_set(err, SL_EINVAL, "dp: modulus bits %u (want 32 or 64)", p->bits);
    sl_dp_plan q;
    memset(&q, 0, sizeof q);
    q.p = *p;
    q.dim_padded = sl_dp_layout(p->dim, &q.rot_block);
    if (q.dim_padded == 0)
        return sl_err_set(err, SL_ELIMIT, "dp: dim %u pads to more than %u", p->dim,
                          SL_DP_MAX_DIM);
    double cs = p->clip * p->scale, d = q.dim_padded;
    if (cs > 0x1.0p60)
        return sl_err_set(err, SL_ELIMIT, "dp: clip * scale = %g grid units (limit 2^60)", cs);
    double b1 = (cs + sqrt(d)) * (cs + sqrt(d)), b2 = b1;
    if (p->beta > 0)
        b2 = cs * cs + d / 4 + sqrt(2 * log(1 / p->beta)) * (cs + sqrt(d) / 2);
    double bound2 = b1 < b2 ? b1 : b2;
    q.l2_bound = sqrt(bound2);
    q.l2_bound2 = (u128)floor(bound2);
    int rc;
    double total = (p->sigma * cs) * (p->sigma * cs);
    if (p->sigma > 0 && p->mode == SL_DP_DISTRIBUTED) {
        if ((rc = sl_dp_dgauss_from_variance(&q.site_dg, total / p->threshold, err))) {
            sl_err_prefix(err, "dp: per-site noise variance (sigma C s)^2 / t");
            return rc; /* sl_err_prefix returns 0 when err is NULL */
        }
        q.site_noise = 1;
    }
    if (p->sigma > 0 && p->mode == SL_DP_CENTRAL) {
        if ((rc = sl_dp_dgauss_from_variance(&q.central_dg, total, err))) {
            sl_err_prefix(err, "dp: central noise variance (sigma C s)^2");
            return rc;
        }
        q.central_noise = 1;
    }
    *pl = q;
    return 0;
}

double sl_dp_l2norm(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return sqrt(s);
}

static double l2norm_d(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return sqrt(s);
}

int sl_dp_clip(float *x, size_t n, double clip, double *pre_norm, sl_err *err)
{
    if (!(clip > 0) || !isfinite(clip))
        return sl_err_set(err, SL_EINVAL, "dp: clip norm %g is not a positive number", clip);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return sl_err_set(err, SL_EINVAL, "dp: update value %zu is %g (not finite)", i,
                              (double)x[i]);
    double norm = sl_dp_l2norm(x, n);
    if (!isfinite(norm)) /* finite floats whose squares overflow double cannot happen, but */
        return sl_err_set(err, SL_EINVAL, "dp: update norm overflows");
    *pre_norm = norm;
    /* Scaling by clip/norm can land a hair above clip after float rounding;
     * shrink by a few ulps until the norm, as we compute it, is within. */
    double f = clip / norm * (1 - 0x1.0p-22);
    while (norm > clip) {
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(x[i] * f);
        norm = sl_dp_l2norm(x, n);
        f = 1 - 0x1.0p-20;
    }
    return 0;
}

/* Randomised-rotation signs: a stream keyed by BLAKE2b(seed, domain), one
 * bit per coordinate. */
static void apply_signs(double *x, size_t n, const uint8_t seed[32])
{
    static const char dom[] = "sealora dp rotation signs v1";
    uint8_t key[32];
    crypto_generichash(key, sizeof key, (const uint8_t *)dom, sizeof dom - 1, seed, 32);
    sl_dp_rng r;
    sl_dp_rng_init_seeded(&r, key);
    for (size_t i = 0; i < n; i += 64) {
        uint64_t bits = sl_dp_rng_u64(&r);
        size_t m = n - i < 64 ? n - i : 64;
        for (size_t j = 0; j < m; j++)
            if ((bits >> j) & 1) /* public seed: branching is fine */
                x[i + j] = -x[i + j];
    }
    sl_dp_rng_fini(&r);
    sodium_memzero(key, sizeof key);
}

/* Orthonormal fast Walsh-Hadamard transform. The first log2(BLK) stages
 * run block by block so they stay in cache; the rest stream. */
static void fwht(double *x, size_t n)
{
    enum { BLK = 4096 };
    size_t blk = n < BLK ? n : BLK;
    for (size_t base = 0; base < n; base += blk)
        for (size_t h = 1; h < blk; h <<= 1)
            for (size_t i = base; i < base + blk; i += 2 * h)
                for (size_t j = i; j < i + h; j++) {
                    double a = x[j], b = x[j + h];
                    x[j] = a + b;
                    x[j + h] = a - b;
                }
    for (size_t h = blk; h < n; h <<= 1)
        for (size_t i = 0; i < n; i += 2 * h)
            for (size_t j = i; j < i + h; j++) {
                double a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    double f = 1 / sqrt((double)n);
    for (size_t i = 0; i < n; i++)
        x[i] *= f;
}

uint32_t sl_dp_layout(uint32_t dim, uint32_t *block)
{
    *block = 0;
    if (dim == 0 || dim > SL_DP_MAX_DIM)
        return 0;
    uint32_t p2 = 1;
    while (p2 < dim)
        p2 <<= 1;
    uint32_t lo = p2 / SL_DP_MAX_BLOCKS;
    if (lo < SL_DP_MIN_BLOCK)
        lo = SL_DP_MIN_BLOCK;
    uint32_t best = p2, bb = p2;
    for (uint32_t b = p2 / 2; b >= lo; b /= 2) {
        uint32_t padded = (dim + b - 1) / b * b; /* <= p2: no overflow */
        if (padded < best) {
            best = padded;
            bb = b;
        }
    }
    *block = bb;
    return best;
}

static int check_layout(size_t n, size_t block, sl_err *err)
{
    if (block == 0 || (block & (block - 1)) || n == 0 || n % block || n > SL_DP_MAX_DIM)
        return sl_err_set(err, SL_EINVAL, "dp: rotation of %zu values in blocks of %zu: the block "
                          "must be a power of two dividing a length <= %u", n, block,
                          SL_DP_MAX_DIM);
    return 0;
}

int sl_dp_rotate(double *x, size_t n, size_t block, const uint8_t seed[32], sl_err *err)
{
    int rc = check_layout(n, block, err);
    if (rc)
        return rc;
    apply_signs(x, n, seed);
    for (size_t b = 0; b < n; b += block)
        fwht(x + b, block);
    return 0;
}

int sl_dp_unrotate(double *x, size_t n, size_t block, const uint8_t seed[32], sl_err *err)
{
    int rc = check_layout(n, block, err);
    if (rc)
        return rc;
    for (size_t b = 0; b < n; b += block)
        fwht(x + b, block); /* H / sqrt(B) is its own inverse */
    apply_signs(x, n, seed);
    return 0;
}

int sl_dp_round_conditional(int64_t *z, const double *x, size_t n, u128 bound2, sl_dp_rng *rng,
                            unsigned *tries, sl_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabs(x[i]) < 0x1.0p62))
            return sl_err_set(err, SL_ELIMIT, "dp: value %zu (%g grid units) cannot be rounded to "
                              "a 64-bit integer", i, x[i]);
    for (unsigned t = 1; t <= SL_DP_MAX_ROUNDING_TRIES; t++) {
        u128 sum = 0;
        for (size_t i = 0; i < n; i++) {
            double fl = floor(x[i]);
            int64_t v = (int64_t)fl + (sl_dp_rng_unit(rng) < x[i] - fl);
            z[i] = v;
            uint64_t a = v < 0 ? -(uint64_t)v : (uint64_t)v;
            sum += (u128)a * a;
        }
        if (sum <= bound2) {
            *tries = t;
            return 0;
        }
    }
    return sl_err_set(err, SL_EABORT,
                      "dp: no randomised rounding within the norm bound after %d tries (is the "
                      "vector clipped?)", SL_DP_MAX_ROUNDING_TRIES);
}

int sl_dp_encode(const sl_dp_plan *pl, const float *delta, void *words, sl_dp_rng *rng,
                 sl_dp_local_report *rep, sl_err *err)
{
    const sl_dp_params *p = &pl->p;
    size_t n = pl->dim_padded;
    double *x = calloc(n, sizeof *x);
    int64_t *z = malloc(n * sizeof *z);
    int rc = 0;
    if (!x || !z) {
        rc = sl_err_set(err, SL_ENOMEM, "dp: out of memory for %zu coordinates", n);
        goto out;
    }
    for (size_t i = 0; i < p->dim; i++) {
        if (!isfinite(delta[i])) {
            rc = sl_err_set(err, SL_EINVAL, "dp: update value %zu is %g (not finite)", i,
                            (double)delta[i]);
            goto out;
        }
        x[i] = delta[i];
    }
    /* Clip in double: the scaled values reach 2^31 grid units and more,
     * beyond float's 24-bit mantissa. */
    double norm = l2norm_d(x, p->dim), pre = norm;
    double f = p->clip / norm * (1 - 0x1.0p-40);
    while (norm > p->clip) {
        for (size_t i = 0; i < p->dim; i++)
            x[i] *= f;
        norm = l2norm_d(x, p->dim);
        f = 1 - 0x1.0p-40;
    }
    if ((rc = sl_dp_rotate(x, n, pl->rot_block, p->rotation_seed, err)))
        goto out;
    for (size_t i = 0; i < n; i++)
        x[i] *= p->scale;
    unsigned tries = 0;
    if ((rc = sl_dp_round_conditional(z, x, n, pl->l2_bound2, rng, &tries, err)))
        goto out;
    if (pl->site_noise)
        for (size_t i = 0; i < n; i++)
            z[i] += sl_dp_dgauss_sample(&pl->site_dg, rng); /* |z|, |noise| < 2^62 */
    if (p->bits == 32)
        for (size_t i = 0; i < n; i++)
            ((uint32_t *)words)[i] = (uint32_t)(uint64_t)z[i];
    else
        for (size_t i = 0; i < n; i++)
            ((uint64_t *)words)[i] = (uint64_t)z[i];
    if (rep) {
        rep->pre_clip_norm = pre;
        rep->rounding_tries = tries;
    }
out:
    if (x)
        sodium_memzero(x, n * sizeof *x);
    if (z)
        sodium_memzero(z, n * sizeof *z);
    free(x);
    free(z);
    return rc;
}

int sl_dp_add_central_noise(const sl_dp_plan *pl, void *sum, sl_dp_rng *rng, sl_err *err)
{
    if (!pl->central_noise)
        return sl_err_set(err, SL_ESTATE, "dp: the plan has no central noise (mode %s, sigma %g)",
                          pl->p.mode == SL_DP_CENTRAL ? "central" : "distributed", pl->p.sigma);
    for (size_t i = 0; i < pl->dim_padded; i++) {
        uint64_t v = (uint64_t)sl_dp_dgauss_sample(&pl->central_dg, rng);
        if (pl->p.bits == 32)
            ((uint32_t *)sum)[i] += (uint32_t)v;
        else
            ((uint64_t *)sum)[i] += v;
    }
    return 0;
}

int sl_dp_decode(const sl_dp_plan *pl, const void *sum, float *out, sl_err *err)
{
    size_t n = pl->dim_padded;
    double *y = malloc(n * sizeof *y);
    if (!y)
        return sl_err_set(err, SL_ENOMEM, "dp: out of memory for %zu coordinates", n);
    for (size_t i = 0; i < n; i++) {
        int64_t v = pl->p.bits == 32 ? (int64_t)(int32_t)((const uint32_t *)sum)[i]
                                     : (int64_t)((const uint64_t *)sum)[i];
        y[i] = (double)v / pl->p.scale;
    }
    int rc = sl_dp_unrotate(y, n, pl->rot_block, pl->p.rotation_seed, err);
    if (!rc)
        for (size_t i = 0; i < pl->p.dim; i++)
            out[i] = (float)y[i];
    free(y);
    return rc;
}

double sl_dp_overflow_bound(const sl_dp_plan *pl, uint32_t n_sites)
{
    double n = n_sites, d = pl->dim_padded, cs = pl->p.clip * pl->p.scale;
    double half = ldexp(1.0, (int)pl->p.bits - 1), margin = half - n;
    if (margin <= 0)
        return 1;
    double var = n * n * cs * cs / pl->rot_block; /* flattened within a block */
    if (pl->site_noise)
        var += n * sl_dp_dgauss_variance(&pl->site_dg);
    if (pl->central_noise)
        var += sl_dp_dgauss_variance(&pl->central_dg);
    if (var <= 0)
        return 0;
    double lp = log(2 * d) - margin * margin / (2 * var);
    return lp >= 0 ? 1 : exp(lp);
}

int sl_dp_check_modulus(const sl_dp_plan *pl, uint32_t n_sites, double max_prob, sl_err *err)
{
    double b = sl_dp_overflow_bound(pl, n_sites);
    if (b <= max_prob)
        return 0;
    return sl_err_set(err, SL_EINVAL,
                      "dp: modulus 2^%u too small: %u sites with clip %g, grid scale %g, sigma %g "
                      "and dim %u may wrap with probability up to %.3g (allowed %.3g); lower the "
                      "grid scale%s",
                      pl->p.bits, n_sites, pl->p.clip, pl->p.scale, pl->p.sigma, pl->dim_padded, b,
                      max_prob, pl->p.bits == 32 ? " or use a 64-bit modulus" : "");
}

int sl_dp_choose_scale(const sl_dp_params *p, uint32_t n_sites, double max_prob, double *scale,
                       sl_err *err)
{
    sl_dp_params q = *p;
    for (int e = 40; e >= -20; e--) {
        q.scale = ldexp(1.0, e);
        sl_dp_plan pl;
        if (sl_dp_plan_init(&pl, &q, NULL))
            continue;
        if (sl_dp_overflow_bound(&pl, n_sites) <= max_prob) {
            *scale = q.scale;
            return 0;
        }
    }
    return sl_err_set(err, SL_EINVAL,
                      "dp: no grid scale in [2^-20, 2^40] keeps %u sites within a 2^%u modulus "
                      "(clip %g, sigma %g, threshold %u, dim %u)",
                      n_sites, p->bits, p->clip, p->sigma, p->threshold, p->dim);
}
