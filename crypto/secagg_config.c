#include "crypto/secagg_config.h"

#include <math.h>
#include <string.h>

uint32_t sl_secagg_config_degree(const sl_secagg_config *c, uint32_t n_present)
{
    return c->degree < n_present - 1 ? c->degree : n_present - 1;
}

static uint32_t ceil_frac(double f, uint32_t n) { return (uint32_t)ceil(f * n - 1e-9); }

int sl_secagg_config_validate(const sl_secagg_config *c, sl_err *err)
{
    if (c->cohort < 2 || c->cohort > SL_SECAGG_MAX_SITES)
        return sl_err_set(err, SL_EINVAL, "secagg config: cohort %u outside 2..%u", c->cohort,
                          SL_SECAGG_MAX_SITES);
    if (c->dim == 0 || c->dim > SL_SECAGG_MAX_DIM)
        return sl_err_set(err, SL_EINVAL, "secagg config: dim %u outside 1..%u", c->dim,
                          SL_SECAGG_MAX_DIM);
    if (c->bits != 32 && c->bits != 64)
        return sl_err_set(err, SL_EINVAL, "secagg config: modulus bits %u (want 32 or 64)",
                          c->bits);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return sl_err_set(err, SL_EINVAL, "secagg config: dropout %g outside [0, 1)", c->dropout);
    uint32_t n = c->cohort, k = sl_secagg_config_degree(c, n);
    if (c->degree == 0)
        return sl_err_set(err, SL_EINVAL, "secagg config: degree 0 (every site needs neighbours)");
    if (k < n - 1 && (k % 2 || k < 2))
        return sl_err_set(err, SL_EINVAL,
                          "secagg config: degree %u must be even (a ring with k/2 neighbours on "
                          "each side) or at least cohort - 1 = %u (complete graph)", k, n - 1);
    if (k > SL_SECAGG_MAX_DEGREE)
        return sl_err_set(err, SL_EINVAL,
                          "secagg config: degree %u (cohort %u) needs %u Shamir shares per secret, "
                          "more than %u; use a degree of at most %u", k, n, k + 1,
                          SL_SECAGG_MAX_DEGREE + 1, SL_SECAGG_MAX_DEGREE);
    uint32_t g = k + 1, ts = c->share_threshold;
    if (ts == 0 || 2 * ts <= g)
        return sl_err_set(err, SL_EINVAL,
                          "secagg config: share threshold %u must exceed half of the %u-share group "
                          "(degree %u + the site), so the server can never collect both a site's "
                          "self-mask shares and its key shares", ts, g, k);
    uint32_t lost = ceil_frac(c->dropout, g);
    if (ts + lost > g)
        return sl_err_set(err, SL_EINVAL,
                          "secagg config: share threshold %u out of %u shares leaves room for %u "
                          "lost neighbours, but dropout %g loses %u; raise the degree or lower the "
                          "dropout", ts, g, g - ts, c->dropout, lost);
    if (c->threshold < 2 || c->threshold > n)
        return sl_err_set(err, SL_EINVAL,
                          "secagg config: threshold %u outside 2..cohort %u (a sum of one site "
                          "is that site's update)", c->threshold, n);
    uint32_t left = n - ceil_frac(c->dropout, n);
    if (c->threshold > left)
        return sl_err_set(err, SL_EINVAL,
                          "secagg config: threshold %u but dropout %g of %u sites leaves %u: every "
                          "such round would abort", c->threshold, c->dropout, n, left);
    if (c->min_cohort < c->threshold || c->min_cohort > n)
        return sl_err_set(err, SL_EINVAL, "secagg config: min cohort %u outside threshold %u.."
                          "cohort %u", c->min_cohort, c->threshold, n);
    /* At the smallest cohort the graph may shrink to a complete one over
     * fewer sites; by then n - min_cohort of the expected losses happened,
     * so only the rest can still hit a share group. */
    uint32_t gmin = c->min_cohort < g ? c->min_cohort : g;
    uint32_t lmin = ceil_frac(c->dropout, n) > n - c->min_cohort
                        ? ceil_frac(c->dropout, n) - (n - c->min_cohort) : 0;
    if (lmin > gmin)
        lmin = gmin;
    if (ts + lmin > gmin)
        return sl_err_set(err, SL_EINVAL,
                          "secagg config: with only min cohort %u sites a share group has %u "
                          "shares; share threshold %u plus %u more lost sites does not fit; raise "
                          "the min cohort", c->min_cohort, gmin, ts, lmin);
    return 0;
}

/* log P[Bin(m, p) >= x] by summing the tail in log space. */
static double log_binom_tail(uint32_t m, double p, uint32_t x)
{
    if (x == 0)
        return 0;
    if (x > m || p <= 0)
        return -INFINITY;
    double best = -INFINITY, sum = 0;
    double terms[SL_SECAGG_MAX_DEGREE + 2];
    for (uint32_t i = x; i <= m; i++) {
        terms[i - x] = lgamma(m + 1.0) - lgamma(i + 1.0) - lgamma(m - i + 1.0) + i * log(p) +
                       (m - i) * log1p(-p);
        if (terms[i - x] > best)
            best = terms[i - x];
    }
    for (uint32_t i = x; i <= m; i++)
        sum += exp(terms[i - x] - best);
    return best + log(sum);
}

int sl_secagg_config_default(sl_secagg_config *c, uint32_t cohort, uint32_t dim, double dropout,
                             unsigned bits, sl_err *err)
{
    sl_secagg_config d;
    memset(&d, 0, sizeof d);
    d.cohort = cohort;
    d.dim = dim;
    d.bits = bits;
    d.dropout = dropout;
    if (cohort >= 2 && dropout >= 0 && dropout < 1) {
        uint32_t left = cohort - ceil_frac(dropout, cohort);
        d.threshold = left < 2 ? 2 : left;
        d.min_cohort = d.threshold;
        uint32_t k = cohort - 1;
        if (cohort > SL_SECAGG_COMPLETE_MAX) {
            uint32_t lg = 0;
            while ((1u << lg) < cohort)
                lg++;
            for (k = 2 * lg; k < cohort - 1 && k <= SL_SECAGG_MAX_DEGREE; k += 2) {
                /* A dropped site needs share_threshold live neighbours. */
                uint32_t ts = (k + 1) / 2 + 1;
                double lp = log((double)cohort) + log_binom_tail(k, dropout, k - ts + 1);
                if (lp <= log(SL_SECAGG_GRAPH_FAIL_PROB))
                    break;
            }
            if (k >= cohort - 1)
                k = cohort - 1;
        }
        d.degree = k;
        d.share_threshold = (k + 1) / 2 + 1;
    }
    int rc = sl_secagg_config_validate(&d, err);
    if (rc)
        return rc;
    *c = d;
    return 0;
}

int sl_secagg_config_check_dp(const sl_secagg_config *c, const sl_dp_plan *pl,
                              double max_overflow, sl_err *err)
{
    if (pl->dim_padded != c->dim)
        return sl_err_set(err, SL_EINVAL, "secagg config: dim %u but the DP plan sends %u words "
                          "(update of %u padded to whole rotation blocks)", c->dim, pl->dim_padded,
                          pl->p.dim);
    if (pl->p.bits != c->bits)
        return sl_err_set(err, SL_EINVAL, "secagg config: modulus 2^%u but the DP plan rounds "
                          "for 2^%u", c->bits, pl->p.bits);
    if (pl->p.threshold != c->threshold)
        return sl_err_set(err, SL_EINVAL, "secagg config: threshold %u but the noise is "
                          "calibrated for %u contributors", c->threshold, pl->p.threshold);
    return sl_dp_check_modulus(pl, c->cohort, max_overflow, err);
}
