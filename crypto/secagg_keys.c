#include "crypto/secagg_keys.h"

#include <sodium.h>
#include <string.h>

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

void sl_secagg_keys_x25519(uint8_t pk[32], uint8_t sk[32], sl_dp_rng *rng)
{
    sl_dp_rng_bytes(rng, sk, 32);
    crypto_scalarmult_base(pk, sk); /* X25519 clamps the scalar itself */
}

#define ADVERT_DOM "sealora secagg advert v1"
enum { ADVERT_LEN = sizeof ADVERT_DOM - 1 + 8 + 4 + 32 + 32 + 32 };

static void advert_bytes(uint8_t out[ADVERT_LEN], uint64_t round, uint32_t site,
                         const uint8_t c_pk[32], const uint8_t s_pk[32], const uint8_t commit[32])
{
    uint8_t *p = out;
    memcpy(p, ADVERT_DOM, sizeof ADVERT_DOM - 1);
    p += sizeof ADVERT_DOM - 1;
    put64(p, round);
    put32(p + 8, site);
    memcpy(p + 12, c_pk, 32);
    memcpy(p + 44, s_pk, 32);
    memcpy(p + 76, commit, 32);
}

void sl_secagg_keys_sign_advert(uint8_t sig[64], uint64_t round, uint32_t site,
                                const uint8_t c_pk[32], const uint8_t s_pk[32],
                                const uint8_t commit[32], const uint8_t sign_sk[64])
{
    uint8_t m[ADVERT_LEN];
    advert_bytes(m, round, site, c_pk, s_pk, commit);
    crypto_sign_detached(sig, NULL, m, sizeof m, sign_sk);
}

int sl_secagg_keys_verify_advert(const uint8_t sig[64], uint64_t round, uint32_t site,
                                 const uint8_t c_pk[32], const uint8_t s_pk[32],
                                 const uint8_t commit[32], const uint8_t sign_pk[32], sl_err *err)
{
    uint8_t m[ADVERT_LEN];
    advert_bytes(m, round, site, c_pk, s_pk, commit);
    if (crypto_sign_verify_detached(sig, m, sizeof m, sign_pk) != 0)
        return sl_err_set(err, SL_ECRYPTO, "secagg: key advertisement of site %u (round %llu) "
                          "has a bad signature", site, (unsigned long long)round);
    return 0;
}

void sl_secagg_keys_commit(uint8_t out[32], const uint8_t seed[32], uint64_t round, uint32_t site)
{
    static const char dom[] = "sealora secagg self-mask commitment v1";
    uint8_t hdr[12];
    put64(hdr, round);
    put32(hdr + 8, site);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)dom, sizeof dom - 1);
    crypto_generichash_update(&st, hdr, sizeof hdr);
    crypto_generichash_update(&st, seed, 32);
    crypto_generichash_final(&st, out, 32);
    sodium_memzero(&st, sizeof st);
}

int sl_secagg_keys_pair_seed(uint8_t seed[32], const uint8_t my_sk[32], const uint8_t my_pk[32],
                             const uint8_t their_pk[32], uint32_t my_id, uint32_t their_id,
                             uint64_t round, sl_err *err)
{
    static const char dom[] = "sealora secagg pair mask v1";
    uint8_t shared[32];
    if (crypto_scalarmult(shared, my_sk, their_pk) != 0)
        return sl_err_set(err, SL_ECRYPTO, "secagg: site %u's mask key is a low-order point",
                          their_id);
    int me_first = my_id < their_id;
    uint8_t hdr[16];
    put64(hdr, round);
    put32(hdr + 8, me_first ? my_id : their_id);
    put32(hdr + 12, me_first ? their_id : my_id);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)dom, sizeof dom - 1);
    crypto_generichash_update(&st, hdr, sizeof hdr);
    crypto_generichash_update(&st, me_first ? my_pk : their_pk, 32);
    crypto_generichash_update(&st, me_first ? their_pk : my_pk, 32);
    crypto_generichash_update(&st, shared, 32);
    crypto_generichash_final(&st, seed, 32);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(shared, sizeof shared);
    return 0;
}

/* Direction-bound AEAD key: BLAKE2b(dom, X25519, pk_from, pk_to). */
static int bundle_key(uint8_t key[32], const uint8_t my_sk[32], const uint8_t from_pk[32],
                      const uint8_t to_pk[32], const uint8_t their_pk[32], uint32_t peer,
                      sl_err *err)
{
    static const char dom[] = "sealora secagg share bundle key v1";
    uint8_t shared[32];
    if (crypto_scalarmult(shared, my_sk, their_pk) != 0)
        return sl_err_set(err, SL_ECRYPTO, "secagg: site %u's share key is a low-order point",
                          peer);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)dom, sizeof dom - 1);
    crypto_generichash_update(&st, shared, 32);
    crypto_generichash_update(&st, from_pk, 32);
    crypto_generichash_update(&st, to_pk, 32);
    crypto_generichash_final(&st, key, 32);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(shared, sizeof shared);
    return 0;
}

static void bundle_ad(uint8_t ad[16], uint64_t round, uint32_t from, uint32_t to)
{
    put64(ad, round);
    put32(ad + 8, from);
    put32(ad + 12, to);
}

int sl_secagg_keys_seal(uint8_t ct[SL_SECAGG_BUNDLE_BYTES], const uint8_t pt[SL_SECAGG_BUNDLE_PLAIN],
                        const uint8_t my_sk[32], const uint8_t my_pk[32],
                        const uint8_t their_pk[32], uint64_t round, uint32_t from, uint32_t to,
                        sl_dp_rng *rng, sl_err *err)
{
    uint8_t key[32], ad[16];
    int rc = bundle_key(key, my_sk, my_pk, their_pk, their_pk, to, err);
    if (rc)
        return rc;
    bundle_ad(ad, round, from, to);
    sl_dp_rng_bytes(rng, ct, 24);
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct + 24, NULL, pt, SL_SECAGG_BUNDLE_PLAIN, ad,
                                               sizeof ad, NULL, ct, key);
    sodium_memzero(key, sizeof key);
    return 0;
}

int sl_secagg_keys_open(uint8_t pt[SL_SECAGG_BUNDLE_PLAIN], const uint8_t ct[SL_SECAGG_BUNDLE_BYTES],
                        const uint8_t my_sk[32], const uint8_t my_pk[32],
                        const uint8_t their_pk[32], uint64_t round, uint32_t from, uint32_t to,
                        sl_err *err)
{
    uint8_t key[32], ad[16], tmp[SL_SECAGG_BUNDLE_PLAIN];
    int rc = bundle_key(key, my_sk, their_pk, my_pk, their_pk, from, err);
    if (rc)
        return rc;
    bundle_ad(ad, round, from, to);
    unsigned long long n = 0;
    rc = crypto_aead_xchacha20poly1305_ietf_decrypt(tmp, &n, NULL, ct + 24,
                                                    SL_SECAGG_BUNDLE_BYTES - 24, ad, sizeof ad, ct,
                                                    key);
    sodium_memzero(key, sizeof key);
    if (rc != 0 || n != SL_SECAGG_BUNDLE_PLAIN)
        return sl_err_set(err, SL_ECRYPTO, "secagg: shares from site %u to site %u fail "
                          "authentication", from, to);
    if (get32(tmp) != from || get32(tmp + 4) != to || get64(tmp + 8) != round) {
        sodium_memzero(tmp, sizeof tmp);
        return sl_err_set(err, SL_ECRYPTO, "secagg: shares from site %u to site %u name another "
                          "round or pair", from, to);
    }
    memcpy(pt, tmp, sizeof tmp);
    sodium_memzero(tmp, sizeof tmp);
    return 0;
}
