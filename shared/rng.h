/* shared/rng.h - deterministic, seedable generator for model initialisation,
 * batch sampling and dropout-free experiments (xoshiro256**, seeded through
 * splitmix64). NOT for secrets, keys, masks or DP noise: those use
 * libsodium's CSPRNG in crypto/. Caller-owned state; not thread-safe. */
#ifndef SL_RNG_H
#define SL_RNG_H
#include <stdint.h>

typedef struct sl_rng {
    uint64_t s[4];
} sl_rng;

void sl_rng_seed(sl_rng *r, uint64_t seed);
uint64_t sl_rng_u64(sl_rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t sl_rng_below(sl_rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double sl_rng_uniform(sl_rng *r);
/* Standard normal (Box-Muller on doubles). */
double sl_rng_normal(sl_rng *r);

#endif
