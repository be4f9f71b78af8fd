/* crypto/secagg_prg.h - mask expansion for secure aggregation. A 256-bit seed
 * becomes a vector in Z_{2^32} (or Z_{2^64}): the ChaCha20 keystream of RFC
 * 8439 (key = seed, 96-bit nonce = 0, block counter from 0) read as
 * little-endian 32-bit (64-bit) words. libsodium's crypto_stream_chacha20_ietf
 * produces the same bytes; we expand with OpenSSL 3's EVP_chacha20 because
 * its AVX-512 code is about three times faster on the machines we target
 * (docs/performance.md). Expansion is fused with the modular addition: the
 * vector is walked in SL_SECAGG_PRG_BLOCK-byte blocks and every mask of a
 * call is added to a block while it sits in L1, so a client with k masks
 * reads and writes its vector once instead of k times.
 *
 * Each seed must be used for one vector only (a fresh seed per round and
 * pair): the nonce is fixed. An sl_secagg_prg owns OpenSSL cipher contexts
 * and a keystream buffer (wiped on free); it is not thread-safe (one per
 * thread). */
#ifndef SL_SECAGG_PRG_H
#define SL_SECAGG_PRG_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define SL_SECAGG_SEED_BYTES 32
#define SL_SECAGG_PRG_BLOCK 8192   /* keystream bytes per fused step */
#define SL_SECAGG_PRG_MAX_SEEDS 4096 /* masks per call */

typedef struct sl_secagg_prg sl_secagg_prg;

int sl_secagg_prg_create(sl_secagg_prg **out, sl_err *err);
void sl_secagg_prg_free(sl_secagg_prg *p); /* accepts NULL */

/* v[i] += signs[j] * PRG(seeds[j])[i] mod 2^bits for every i < n and every
 * j < nseeds; v holds n words of `bits` (32 or 64) bits in host order
 * (any alignment); signs are +1 or -1. On failure v may be partly updated (only OpenSSL
 * failing can cause that; arguments are checked first). */
int sl_secagg_prg_apply(sl_secagg_prg *p, void *v, size_t n, unsigned bits,
                        const uint8_t (*seeds)[SL_SECAGG_SEED_BYTES], const int *signs,
                        size_t nseeds, sl_err *err);

/* Writes n bytes of the keystream of seed (from block counter 0) to out.
 * For tests and benchmarks. */
int sl_secagg_prg_keystream(sl_secagg_prg *p, uint8_t *out, size_t n,
                            const uint8_t seed[SL_SECAGG_SEED_BYTES], sl_err *err);

#endif
