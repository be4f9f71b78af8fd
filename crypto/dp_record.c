#include "crypto/dp_record.h"

#include <math.h>
#include <string.h>

void sl_dp_record_fill(sl_dp_round_record *r, const sl_dp_plan *pl, uint64_t round,
                       double sampling_rate, uint32_t sites_sampled, uint32_t masked_inputs,
                       uint32_t survivors)
{
    memset(r, 0, sizeof *r);
    r->round = round;
    r->mode = pl->p.mode;
    r->sampling_rate = sampling_rate > 0 ? sampling_rate : -1;
    r->clip = pl->p.clip;
    r->scale = pl->p.scale;
    r->sigma = pl->p.sigma;
    r->beta = pl->p.beta;
    r->dim = pl->p.dim;
    r->rotation_dim = pl->dim_padded;
    r->l2_sensitivity = pl->l2_bound;
    r->site_var_num = pl->site_noise ? pl->site_dg.num : 0;
    r->site_var_den = pl->site_noise ? pl->site_dg.den : 1;
    r->central_var_num = pl->central_noise ? pl->central_dg.num : 0;
    r->central_var_den = pl->central_noise ? pl->central_dg.den : 1;
    r->sites_sampled = sites_sampled;
    r->masked_inputs = masked_inputs;
    r->survivors = survivors;
    r->threshold = pl->p.threshold;
    r->modulus_bits = pl->p.bits;
    r->overflow_bound = sl_dp_overflow_bound(pl, sites_sampled);
    const double pi2 = M_PI * M_PI;
    if (pl->site_noise && masked_inputs > 0) {
        double v = sl_dp_dgauss_variance(&pl->site_dg), tau = 0;
        for (uint32_t k = 1; k < masked_inputs; k++)
            tau += exp(-2 * pi2 * v * k / (k + 1.0));
        tau *= 10;
        r->tau = tau;
        r->noise_multiplier_effective =
            1 / (pl->l2_bound / sqrt(masked_inputs * v) + tau * sqrt((double)pl->dim_padded));
    } else if (pl->central_noise) {
        r->noise_multiplier_effective = sqrt(sl_dp_dgauss_variance(&pl->central_dg)) / pl->l2_bound;
    }
}

static double var_of(uint64_t num, uint64_t den) { return den ? (double)num / (double)den : 0; }

int sl_dp_record_to_json(const sl_dp_round_record *r, json_t **out, sl_err *err)
{
    json_t *o = json_pack(
        "{s:i, s:I, s:s, s:o, s:f, s:f, s:f, s:f, s:I, s:I, s:f, s:f, s:I, s:I, s:f, s:I, s:I,"
        " s:I, s:I, s:I, s:I, s:i, s:f, s:f, s:f}",
        "version", SL_DP_RECORD_VERSION,
        "round", (json_int_t)r->round,
        "mode", r->mode == SL_DP_CENTRAL ? "central" : "distributed",
        "sampling_rate", r->sampling_rate > 0 ? json_real(r->sampling_rate) : json_null(),
        "clip_norm", r->clip,
        "grid_scale", r->scale,
        "noise_multiplier", r->sigma,
        "rounding_beta", r->beta,
        "dim", (json_int_t)r->dim,
        "rotation_dim", (json_int_t)r->rotation_dim,
        "l2_sensitivity_grid", r->l2_sensitivity,
        "site_noise_variance", var_of(r->site_var_num, r->site_var_den),
        "site_noise_variance_num", (json_int_t)r->site_var_num,
        "site_noise_variance_den", (json_int_t)r->site_var_den,
        "central_noise_variance", var_of(r->central_var_num, r->central_var_den),
        "central_noise_variance_num", (json_int_t)r->central_var_num,
        "central_noise_variance_den", (json_int_t)r->central_var_den,
        "sites_sampled", (json_int_t)r->sites_sampled,
        "masked_inputs", (json_int_t)r->masked_inputs,
        "survivors", (json_int_t)r->survivors,
        "threshold", (json_int_t)r->threshold,
        "modulus_bits", (int)r->modulus_bits,
        "overflow_bound", r->overflow_bound,
        "tau", r->tau,
        "noise_multiplier_effective", r->noise_multiplier_effective);
    if (!o)
        return sl_err_set(err, SL_ENOMEM, "dp record: cannot build the JSON object");
    *out = o;
    return 0;
}

static int get_num(const json_t *o, const char *k, double *v, sl_err *err)
{
    const json_t *j = json_object_get(o, k);
    if (!json_is_number(j))
        return sl_err_set(err, SL_EFORMAT, "dp record: field '%s' missing or not a number", k);
    *v = json_number_value(j);
    if (!isfinite(*v) || *v < 0)
        return sl_err_set(err, SL_EFORMAT, "dp record: field '%s' = %g is not a finite number >= 0",
                          k, *v);
    return 0;
}

static int get_int(const json_t *o, const char *k, uint64_t max, uint64_t *v, sl_err *err)
{
    const json_t *j = json_object_get(o, k);
    if (!json_is_integer(j))
        return sl_err_set(err, SL_EFORMAT, "dp record: field '%s' missing or not an integer", k);
    json_int_t x = json_integer_value(j);
    if (x < 0 || (uint64_t)x > max)
        return sl_err_set(err, SL_EFORMAT, "dp record: field '%s' = %lld outside 0..%llu", k,
                          (long long)x, (unsigned long long)max);
    *v = (uint64_t)x;
    return 0;
}

int sl_dp_record_from_json(const json_t *o, sl_dp_round_record *out, sl_err *err)
{
    static const char *const keys[] = {
        "version", "round", "mode", "sampling_rate", "clip_norm", "grid_scale",
        "noise_multiplier", "rounding_beta", "dim", "rotation_dim", "l2_sensitivity_grid",
        "site_noise_variance", "site_noise_variance_num", "site_noise_variance_den",
        "central_noise_variance", "central_noise_variance_num", "central_noise_variance_den",
        "sites_sampled", "masked_inputs", "survivors", "threshold", "modulus_bits",
        "overflow_bound", "tau", "noise_multiplier_effective"};
    if (!json_is_object(o))
        return sl_err_set(err, SL_EFORMAT, "dp record: not a JSON object");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)o, key, val) {
        size_t i = 0;
        while (i < sizeof keys / sizeof keys[0] && strcmp(keys[i], key) != 0)
            i++;
        if (i == sizeof keys / sizeof keys[0])
            return sl_err_set(err, SL_EFORMAT, "dp record: unknown field '%.64s'", key);
    }
    sl_dp_round_record r;
    memset(&r, 0, sizeof r);
    uint64_t u;
    int rc;
    if ((rc = get_int(o, "version", 1000, &u, err)))
        return rc;
    if (u != SL_DP_RECORD_VERSION)
        return sl_err_set(err, SL_EFORMAT, "dp record: version %llu (this build reads %d)",
                          (unsigned long long)u, SL_DP_RECORD_VERSION);
    if ((rc = get_int(o, "round", INT64_MAX, &r.round, err)))
        return rc;
    const char *mode = json_string_value(json_object_get(o, "mode"));
    if (!mode || (strcmp(mode, "central") && strcmp(mode, "distributed")))
        return sl_err_set(err, SL_EFORMAT, "dp record: field 'mode' is not \"distributed\" or "
                          "\"central\"");
    r.mode = strcmp(mode, "central") == 0 ? SL_DP_CENTRAL : SL_DP_DISTRIBUTED;
    const json_t *q = json_object_get(o, "sampling_rate");
    if (json_is_null(q))
        r.sampling_rate = -1;
    else if ((rc = get_num(o, "sampling_rate", &r.sampling_rate, err)))
        return rc;
    else if (!(r.sampling_rate > 0 && r.sampling_rate <= 1))
        return sl_err_set(err, SL_EFORMAT, "dp record: sampling_rate %g outside (0, 1]",
                          r.sampling_rate);
    struct { const char *k; double *v; } nums[] = {
        {"clip_norm", &r.clip}, {"grid_scale", &r.scale}, {"noise_multiplier", &r.sigma},
        {"rounding_beta", &r.beta}, {"l2_sensitivity_grid", &r.l2_sensitivity},
        {"overflow_bound", &r.overflow_bound}, {"tau", &r.tau},
        {"noise_multiplier_effective", &r.noise_multiplier_effective}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if ((rc = get_num(o, nums[i].k, nums[i].v, err)))
            return rc;
    double dummy;
    if ((rc = get_num(o, "site_noise_variance", &dummy, err)) ||
        (rc = get_num(o, "central_noise_variance", &dummy, err)))
        return rc;
    struct { const char *k; uint64_t max; uint64_t v; } ints[] = {
        {"dim", UINT32_MAX, 0}, {"rotation_dim", UINT32_MAX, 0},
        {"site_noise_variance_num", INT64_MAX, 0}, {"site_noise_variance_den", INT64_MAX, 0},
        {"central_noise_variance_num", INT64_MAX, 0}, {"central_noise_variance_den", INT64_MAX, 0},
        {"sites_sampled", UINT32_MAX, 0}, {"masked_inputs", UINT32_MAX, 0},
        {"survivors", UINT32_MAX, 0}, {"threshold", UINT32_MAX, 0}, {"modulus_bits", 64, 0}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if ((rc = get_int(o, ints[i].k, ints[i].max, &ints[i].v, err)))
            return rc;
    r.dim = (uint32_t)ints[0].v;
    r.rotation_dim = (uint32_t)ints[1].v;
    r.site_var_num = ints[2].v;
    r.site_var_den = ints[3].v;
    r.central_var_num = ints[4].v;
    r.central_var_den = ints[5].v;
    r.sites_sampled = (uint32_t)ints[6].v;
    r.masked_inputs = (uint32_t)ints[7].v;
    r.survivors = (uint32_t)ints[8].v;
    r.threshold = (uint32_t)ints[9].v;
    r.modulus_bits = (unsigned)ints[10].v;
    if (r.site_var_den == 0 || r.central_var_den == 0)
        return sl_err_set(err, SL_EFORMAT, "dp record: a noise variance denominator is 0");
    if (r.modulus_bits != 32 && r.modulus_bits != 64)
        return sl_err_set(err, SL_EFORMAT, "dp record: modulus_bits %u (want 32 or 64)",
                          r.modulus_bits);
    if (r.masked_inputs > r.sites_sampled || r.survivors > r.masked_inputs)
        return sl_err_set(err, SL_EFORMAT, "dp record: counts out of order (sampled %u, masked "
                          "%u, survivors %u)", r.sites_sampled, r.masked_inputs, r.survivors);
    *out = r;
    return 0;
}
