/* crypto/secagg_keys.h - the key material of secure aggregation, all from
 * libsodium: X25519 key pairs (two per site and round: c for encrypting
 * shares, s for agreeing mask seeds), Ed25519 signatures binding them to the
 * site's long-term identity, the commitment to the self-mask seed, the
 * pairwise mask seed, and the AEAD (XChaCha20-Poly1305) that carries a pair
 * of Shamir shares from one site to another through the server. Every hash
 * and every AD starts with a domain string and names the round and the two
 * site ids, so nothing moves between rounds, pairs or purposes.
 * Stateless; thread-safe. Secret inputs are borrowed; derived secrets on
 * the stack are wiped before return. */
#ifndef SL_SECAGG_KEYS_H
#define SL_SECAGG_KEYS_H
#include <stdint.h>

#include "crypto/dp_rng.h"
#include "shared/err.h"

#define SL_SECAGG_KEY_BYTES 32      /* X25519 public or secret key */
#define SL_SECAGG_SIGN_PK_BYTES 32  /* Ed25519 public key */
#define SL_SECAGG_SIGN_SK_BYTES 64  /* Ed25519 secret key (libsodium layout) */
#define SL_SECAGG_SIG_BYTES 64
#define SL_SECAGG_COMMIT_BYTES 32
#define SL_SECAGG_SHARE_BYTES 33    /* Shamir x + 32 bytes */
/* Sealed pair of shares: nonce(24) || ciphertext of from u32, to u32,
 * round u64, self-mask seed share, key share (82 bytes) || tag(16). */
#define SL_SECAGG_BUNDLE_PLAIN 82
#define SL_SECAGG_BUNDLE_BYTES (24 + SL_SECAGG_BUNDLE_PLAIN + 16)

/* Fresh X25519 key pair from rng. */
void sl_secagg_keys_x25519(uint8_t pk[SL_SECAGG_KEY_BYTES], uint8_t sk[SL_SECAGG_KEY_BYTES],
                           sl_dp_rng *rng);
/* Ed25519 signature over (domain, round, site, c_pk, s_pk, commit). */
void sl_secagg_keys_sign_advert(uint8_t sig[SL_SECAGG_SIG_BYTES], uint64_t round, uint32_t site,
                                const uint8_t c_pk[32], const uint8_t s_pk[32],
                                const uint8_t commit[32], const uint8_t sign_sk[64]);
/* 0, or SL_ECRYPTO naming the site when the signature does not verify. */
int sl_secagg_keys_verify_advert(const uint8_t sig[SL_SECAGG_SIG_BYTES], uint64_t round,
                                 uint32_t site, const uint8_t c_pk[32], const uint8_t s_pk[32],
                                 const uint8_t commit[32], const uint8_t sign_pk[32], sl_err *err);
/* BLAKE2b commitment to a self-mask seed (the seed is 256 uniform bits, so
 * the hash hides it); the server checks a rebuilt seed against it. */
void sl_secagg_keys_commit(uint8_t out[SL_SECAGG_COMMIT_BYTES], const uint8_t seed[32],
                           uint64_t round, uint32_t site);
/* Mask seed shared by sites a and b: BLAKE2b over X25519(my_sk, their_pk)
 * and both public keys and ids in increasing id order. SL_ECRYPTO if the
 * peer key is a low-order point (all-zero shared secret). */
int sl_secagg_keys_pair_seed(uint8_t seed[32], const uint8_t my_sk[32], const uint8_t my_pk[32],
                             const uint8_t their_pk[32], uint32_t my_id, uint32_t their_id,
                             uint64_t round, sl_err *err);
/* Seals the 82-byte plaintext from `from` to `to` (ct gets
 * SL_SECAGG_BUNDLE_BYTES). The nonce comes from rng. */
int sl_secagg_keys_seal(uint8_t ct[SL_SECAGG_BUNDLE_BYTES], const uint8_t pt[SL_SECAGG_BUNDLE_PLAIN],
                        const uint8_t my_sk[32], const uint8_t my_pk[32],
                        const uint8_t their_pk[32], uint64_t round, uint32_t from, uint32_t to,
                        sl_dp_rng *rng, sl_err *err);
/* Opens a bundle sealed by `from` for `to` (the caller is `to`); checks the
 * tag and that the plaintext names the same round and sites. pt is
 * untouched on failure (SL_ECRYPTO). */
int sl_secagg_keys_open(uint8_t pt[SL_SECAGG_BUNDLE_PLAIN], const uint8_t ct[SL_SECAGG_BUNDLE_BYTES],
                        const uint8_t my_sk[32], const uint8_t my_pk[32],
                        const uint8_t their_pk[32], uint64_t round, uint32_t from, uint32_t to,
                        sl_err *err);

#endif
