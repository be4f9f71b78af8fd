#include "crypto/secagg_shamir.h"

#include <sodium.h>
#include <string.h>

uint8_t sl_secagg_shamir_gf_mul(uint8_t a, uint8_t b)
{
    uint8_t p = 0;
    for (int i = 0; i < 8; i++) {
        p ^= (uint8_t)(-(b & 1)) & a;           /* add a when bit i of b is set */
        uint8_t carry = (uint8_t)(-(a >> 7));   /* 0xff when a overflows */
        a = (uint8_t)((a << 1) ^ (carry & 0x1b)); /* a *= x, reduced */
        b >>= 1;
    }
    return p;
}

/* a^254 = a^-1 for a != 0 (Fermat in GF(2^8)); square-and-multiply with a
 * fixed exponent, so no data-dependent branch. */
static uint8_t gf_inv(uint8_t a)
{
    uint8_t r = 1, s = a;
    for (int i = 0; i < 8; i++) {
        if ((254 >> i) & 1) /* public exponent bits */
            r = sl_secagg_shamir_gf_mul(r, s);
        s = sl_secagg_shamir_gf_mul(s, s);
    }
    return r;
}

int sl_secagg_shamir_split(uint8_t *shares, const uint8_t *secret, size_t len, unsigned t,
                           unsigned n, sl_dp_rng *rng, sl_err *err)
{
    if (len == 0 || len > SL_SECAGG_SHAMIR_MAX_SECRET)
        return sl_err_set(err, SL_ELIMIT, "shamir: secret of %zu bytes (1..%d)", len,
                          SL_SECAGG_SHAMIR_MAX_SECRET);
    if (n == 0 || n > SL_SECAGG_SHAMIR_MAX_SHARES)
        return sl_err_set(err, SL_ELIMIT, "shamir: %u shares (1..%d)", n,
                          SL_SECAGG_SHAMIR_MAX_SHARES);
    if (t == 0 || t > n)
        return sl_err_set(err, SL_EINVAL, "shamir: threshold %u with %u shares", t, n);
    /* coef[j * len + i]: coefficient of x^(j+1) for secret byte i. */
    uint8_t coef[(SL_SECAGG_SHAMIR_MAX_SHARES - 1) * SL_SECAGG_SHAMIR_MAX_SECRET];
    size_t nc = (size_t)(t - 1) * len;
    sl_dp_rng_bytes(rng, coef, nc);
    for (unsigned s = 0; s < n; s++) {
        uint8_t x = (uint8_t)(s + 1);
        uint8_t *out = shares + (size_t)s * (len + 1);
        out[0] = x;
        for (size_t i = 0; i < len; i++) {
            /* Horner from the highest coefficient down to the secret. */
            uint8_t y = 0;
            for (unsigned j = t - 1; j >= 1; j--)
                y = sl_secagg_shamir_gf_mul(y, x) ^ coef[(size_t)(j - 1) * len + i];
            y = sl_secagg_shamir_gf_mul(y, x) ^ secret[i];
            out[1 + i] = y;
        }
    }
    sodium_memzero(coef, nc);
    return 0;
}

int sl_secagg_shamir_combine(uint8_t *secret, size_t len, const uint8_t *const *shares,
                             unsigned m, sl_err *err)
{
    if (len == 0 || len > SL_SECAGG_SHAMIR_MAX_SECRET)
        return sl_err_set(err, SL_ELIMIT, "shamir: secret of %zu bytes (1..%d)", len,
                          SL_SECAGG_SHAMIR_MAX_SECRET);
    if (m == 0 || m > SL_SECAGG_SHAMIR_MAX_SHARES)
        return sl_err_set(err, SL_ELIMIT, "shamir: %u shares to combine (1..%d)", m,
                          SL_SECAGG_SHAMIR_MAX_SHARES);
    uint8_t seen[256] = {0};
    for (unsigned i = 0; i < m; i++) {
        uint8_t x = shares[i][0];
        if (x == 0)
            return sl_err_set(err, SL_EFORMAT, "shamir: share %u has point x = 0", i);
        if (seen[x])
            return sl_err_set(err, SL_EFORMAT, "shamir: two shares at point x = %u", x);
        seen[x] = 1;
    }
    /* Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i); in
     * characteristic 2, subtraction is XOR. */
    uint8_t out[SL_SECAGG_SHAMIR_MAX_SECRET] = {0};
    for (unsigned i = 0; i < m; i++) {
        uint8_t num = 1, den = 1;
        for (unsigned j = 0; j < m; j++) {
            if (j == i)
                continue;
            num = sl_secagg_shamir_gf_mul(num, shares[j][0]);
            den = sl_secagg_shamir_gf_mul(den, shares[j][0] ^ shares[i][0]);
        }
        uint8_t l = sl_secagg_shamir_gf_mul(num, gf_inv(den));
        for (size_t b = 0; b < len; b++)
            out[b] ^= sl_secagg_shamir_gf_mul(l, shares[i][1 + b]);
    }
    memcpy(secret, out, len);
    sodium_memzero(out, sizeof out);
    return 0;
}
