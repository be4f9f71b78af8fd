/* crypto/dp_record.h - the per-round record of the privacy mechanism: every
 * raw parameter the privacy accountant (crypto/accountant, not here) needs
 * to charge a round, and the effective noise multiplier of the distributed
 * discrete Gaussian as Kairouz, Liu and Steinke 2021 define it. It holds no
 * epsilon: composition, subsampling and delta are the accountant's.
 *
 * Effective noise multiplier (KLS21, theorem 1 and proposition 14): with m
 * noise shares N_Z(0, v) in the sum (grid units), L2 sensitivity Delta2
 * (grid units) and rotation dimension D', the sum is
 * (alpha / 2) * (Delta2 / sqrt(m v) + tau sqrt(D'))^2 - Renyi DP of order
 * alpha, where tau = 10 sum_{k=1}^{m-1} exp(-2 pi^2 v k / (k + 1)) corrects
 * for a sum of discrete Gaussians not being one. We record
 * z_eff = 1 / (Delta2 / sqrt(m v) + tau sqrt(D')), the multiplier of the
 * Gaussian mechanism with the same bound. Central mode adds one discrete
 * Gaussian of variance V: tau = 0 and z_eff = sqrt(V) / Delta2. The other
 * bound of the same proposition, alpha Delta2^2 / (2 m v) + tau D', can be
 * recomputed from the recorded fields. m counts the noise actually in the
 * sum: one share per masked input (a site that later fails to answer the
 * unmasking request still added its noise). crypto/accountant is stricter
 * and counts only the sites that answered (survivors); both counts are
 * recorded (crypto/auditlog's sl_auditlog_mech_from_dp turns a record
 * into the accountant's mechanism).
 *
 * The JSON keys are documented in docs/secagg.md; the audit log embeds the
 * object. Plain data; thread-safe. */
#ifndef SL_DP_RECORD_H
#define SL_DP_RECORD_H
#include <jansson.h>
#include <stdint.h>

#include "crypto/dp.h"
#include "shared/err.h"

#define SL_DP_RECORD_VERSION 1

typedef struct sl_dp_round_record {
    uint64_t round;
    int mode;                   /* SL_DP_DISTRIBUTED or SL_DP_CENTRAL */
    double sampling_rate;       /* q in (0, 1]; < 0 when not given (JSON null) */
    double clip;                /* C, model units */
    double scale;               /* s, grid points per model unit */
    double sigma;               /* target noise multiplier for t contributors */
    double beta;                /* conditional rounding parameter (0 = none) */
    uint32_t dim;               /* D, update length */
    uint32_t rotation_dim;      /* D', Hadamard dimension and coordinates noised */
    double l2_sensitivity;      /* Delta2, grid units */
    uint64_t site_var_num, site_var_den;       /* exact per-site variance (0/1 if none) */
    uint64_t central_var_num, central_var_den; /* exact server variance (0/1 if none) */
    uint32_t sites_sampled;     /* sites invited to the round */
    uint32_t masked_inputs;     /* masked inputs in the sum = noise contributors */
    uint32_t survivors;         /* sites that answered the unmasking request */
    uint32_t threshold;         /* t */
    unsigned modulus_bits;
    double overflow_bound;      /* P[wrap] bound for sites_sampled sites */
    double tau;                 /* KLS21 correction term */
    double noise_multiplier_effective; /* z_eff, 0 without noise */
} sl_dp_round_record;

/* Fills r from the plan and the round's counts; computes tau and z_eff. */
void sl_dp_record_fill(sl_dp_round_record *r, const sl_dp_plan *pl, uint64_t round,
                       double sampling_rate, uint32_t sites_sampled, uint32_t masked_inputs,
                       uint32_t survivors);
/* New JSON object (caller owns the reference). */
int sl_dp_record_to_json(const sl_dp_round_record *r, json_t **out, sl_err *err);
/* Parses and checks an object written by sl_dp_record_to_json (types,
 * ranges, no unknown keys); r untouched on failure. */
int sl_dp_record_from_json(const json_t *obj, sl_dp_round_record *r, sl_err *err);

#endif
