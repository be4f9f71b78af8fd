/* crypto/dp_rng.h - the randomness source of the DP mechanisms and of the
 * secure-aggregation state machines. Two kinds:
 *  - system: a 256-bit key from libsodium's CSPRNG (randombytes_buf, the
 *    operating system's generator), replaced every SL_DP_RNG_REKEY chunks,
 *    expanded in 4 KiB chunks as below (ChaCha20 in user space): libsodium
 *    1.0.18 makes one getrandom() call per randombytes_buf, and reading
 *    every byte from the kernel dominated the DP encoding;
 *  - seeded: a deterministic stream for tests, simulations and reproducible
 *    benchmarks, built from randombytes_buf_deterministic on consecutive
 *    seeds derived from the 256-bit seed (BLAKE2b keyed by the seed over the
 *    chunk index). Never use it for real secrets.
 * No rand(), no floating point on the way to an integer draw. The buffer
 * holds future CSPRNG output, so sl_dp_rng_fini() wipes it. Owns nothing on
 * the heap. Not thread-safe: one generator per thread. */
#ifndef SL_DP_RNG_H
#define SL_DP_RNG_H
#include <stddef.h>
#include <stdint.h>

#define SL_DP_RNG_SEED_BYTES 32
#define SL_DP_RNG_CHUNK 4096 /* bytes drawn per refill */
#define SL_DP_RNG_REKEY 256  /* system mode: chunks (1 MiB) per operating-system key */

typedef struct sl_dp_rng {
    int seeded;                       /* 1: deterministic stream */
    uint8_t key[SL_DP_RNG_SEED_BYTES];/* stream key (system mode: from the OS) */
    uint64_t chunk;                   /* index of the next chunk */
    uint8_t buf[SL_DP_RNG_CHUNK];     /* unread bytes are buf[pos..] */
    size_t pos;                       /* invariant: pos <= SL_DP_RNG_CHUNK */
} sl_dp_rng;

/* libsodium must be initialised (sodium_init) before either init. */
void sl_dp_rng_init_system(sl_dp_rng *r);
void sl_dp_rng_init_seeded(sl_dp_rng *r, const uint8_t seed[SL_DP_RNG_SEED_BYTES]);
/* Seeded stream from a 64-bit test seed (expanded with BLAKE2b). */
void sl_dp_rng_init_u64(sl_dp_rng *r, uint64_t seed);
void sl_dp_rng_fini(sl_dp_rng *r); /* wipes key and buffer */

void sl_dp_rng_bytes(sl_dp_rng *r, void *out, size_t n);
uint64_t sl_dp_rng_u64(sl_dp_rng *r);
/* Uniform in [0, n) by rejection (no modulo bias); n must be > 0. */
uint64_t sl_dp_rng_below(sl_dp_rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits (for rounding coins only). */
double sl_dp_rng_unit(sl_dp_rng *r);

#endif
