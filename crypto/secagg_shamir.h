/* crypto/secagg_shamir.h - Shamir t-of-n secret sharing of short secrets
 * (the 32-byte self-mask seeds and mask private keys of secure aggregation).
 * None of our libraries provides it, so it is written here.
 *
 * Field: GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1; each byte
 * of the secret is shared with its own random polynomial of degree t-1, and
 * every share of byte i is evaluated at the same point x. A share is
 * x (1 byte, 1..255) followed by one field element per secret byte, so at
 * most SL_SECAGG_SHAMIR_MAX_SHARES shares exist. Any t shares give the
 * secret; fewer give no information about it (information-theoretic).
 * Side channels: field multiplication is a fixed sequence of shifts, XORs
 * and masks (no table lookups, no branches on data), so neither the secret,
 * the random coefficients nor the share values choose a branch or an
 * address. Only the public x coordinates pick loop bounds and branches.
 * Shares carry no integrity: callers check the combined secret against a
 * commitment (secure aggregation does: seed hash, public key). Stateless
 * and thread-safe; secrets on the stack are wiped before return. */
#ifndef SL_SECAGG_SHAMIR_H
#define SL_SECAGG_SHAMIR_H
#include <stddef.h>
#include <stdint.h>

#include "crypto/dp_rng.h"
#include "shared/err.h"

#define SL_SECAGG_SHAMIR_MAX_SHARES 255
#define SL_SECAGG_SHAMIR_MAX_SECRET 64 /* bytes */

/* Multiplication in GF(2^8) (exposed for known-answer tests). */
uint8_t sl_secagg_shamir_gf_mul(uint8_t a, uint8_t b);

/* Splits secret (len bytes) into n shares with threshold t (1 <= t <= n <=
 * 255); share i (0-based) is written to shares + i * (len + 1) and uses the
 * point x = i + 1. Coefficients come from rng. */
int sl_secagg_shamir_split(uint8_t *shares, const uint8_t *secret, size_t len, unsigned t,
                           unsigned n, sl_dp_rng *rng, sl_err *err);

/* Interpolates at 0 through the m given shares (each len + 1 bytes; their x
 * must be distinct and non-zero) and writes len bytes to secret. With m >= t
 * consistent shares this is the secret. On failure secret is untouched. */
int sl_secagg_shamir_combine(uint8_t *secret, size_t len, const uint8_t *const *shares,
                             unsigned m, sl_err *err);

#endif
