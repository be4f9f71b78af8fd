#include "crypto/dp_rng.h"

#include <sodium.h>
#include <string.h>

static void refill(sl_dp_rng *r)
{
    /* System mode: a fresh 256-bit key from the operating system every
     * SL_DP_RNG_REKEY chunks, expanded in user space like a seeded stream
     * (one getrandom() of 32 bytes per 1 MiB instead of one of 4 KiB per
     * 4 KiB: the kernel's generator was most of the DP encoding time). */
    if (!r->seeded && r->chunk % SL_DP_RNG_REKEY == 0)
        randombytes_buf(r->key, sizeof r->key);
    uint8_t sub[randombytes_SEEDBYTES], idx[8];
    for (int i = 0; i < 8; i++)
        idx[i] = (uint8_t)(r->chunk >> (8 * i));
    crypto_generichash(sub, sizeof sub, idx, sizeof idx, r->key, sizeof r->key);
    randombytes_buf_deterministic(r->buf, sizeof r->buf, sub);
    sodium_memzero(sub, sizeof sub);
    r->chunk++;
    r->pos = 0;
}

void sl_dp_rng_init_system(sl_dp_rng *r)
{
    memset(r, 0, sizeof *r);
    r->pos = sizeof r->buf; /* empty: first draw refills */
}

void sl_dp_rng_init_seeded(sl_dp_rng *r, const uint8_t seed[SL_DP_RNG_SEED_BYTES])
{
    memset(r, 0, sizeof *r);
    r->seeded = 1;
    memcpy(r->key, seed, sizeof r->key);
    r->pos = sizeof r->buf;
}

void sl_dp_rng_init_u64(sl_dp_rng *r, uint64_t seed)
{
    static const char ctx[] = "sealora dp_rng test seed v1";
    uint8_t in[8], key[SL_DP_RNG_SEED_BYTES];
    for (int i = 0; i < 8; i++)
        in[i] = (uint8_t)(seed >> (8 * i));
    crypto_generichash(key, sizeof key, in, sizeof in, (const uint8_t *)ctx, sizeof ctx - 1);
    sl_dp_rng_init_seeded(r, key);
    sodium_memzero(key, sizeof key);
}

void sl_dp_rng_fini(sl_dp_rng *r)
{
    if (r)
        sodium_memzero(r, sizeof *r);
}

void sl_dp_rng_bytes(sl_dp_rng *r, void *out, size_t n)
{
    uint8_t *o = out;
    while (n) {
        if (r->pos == sizeof r->buf)
            refill(r);
        size_t take = sizeof r->buf - r->pos;
        if (take > n)
            take = n;
        memcpy(o, r->buf + r->pos, take);
        sodium_memzero(r->buf + r->pos, take); /* a byte is handed out once */
        r->pos += take;
        o += take;
        n -= take;
    }
}

uint64_t sl_dp_rng_u64(sl_dp_rng *r)
{
    uint8_t b[8];
    sl_dp_rng_bytes(r, b, sizeof b);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

uint64_t sl_dp_rng_below(sl_dp_rng *r, uint64_t n)
{
    /* Accept v < n * floor(2^64 / n); then v % n is uniform. */
    uint64_t lim = UINT64_MAX - (UINT64_MAX % n + 1) % n;
    for (;;) {
        uint64_t v = sl_dp_rng_u64(r);
        if (v <= lim)
            return v % n;
    }
}

double sl_dp_rng_unit(sl_dp_rng *r)
{
    return (double)(sl_dp_rng_u64(r) >> 11) * 0x1.0p-53;
}
