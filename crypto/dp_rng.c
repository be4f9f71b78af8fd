#include "crypto/dp_rng.h"

#include <endian.h>
#include <sodium.h>
#include <string.h>

typedef unsigned __int128 u128;

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
    if (r->pos > sizeof r->buf - 8) { /* the chunk's tail: byte by byte */
        uint8_t b[8];
        sl_dp_rng_bytes(r, b, sizeof b);
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
            v = v << 8 | b[i];
        return v;
    }
    /* The hot path of the samplers (several draws per noise coordinate):
     * eight bytes read little-endian and cleared in place. The cleared
     * bytes are overwritten by the next refill and the whole buffer is
     * wiped by sl_dp_rng_fini, so a plain store is enough here. */
    uint64_t v;
    memcpy(&v, r->buf + r->pos, 8);
    v = le64toh(v);
    memset(r->buf + r->pos, 0, 8);
    r->pos += 8;
    return v;
}

static uint32_t u32(sl_dp_rng *r)
{
    if (r->pos > sizeof r->buf - 4) {
        uint8_t b[4];
        sl_dp_rng_bytes(r, b, sizeof b);
        return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    }
    uint32_t v;
    memcpy(&v, r->buf + r->pos, 4);
    memset(r->buf + r->pos, 0, 4);
    r->pos += 4;
    return le32toh(v);
}

uint64_t sl_dp_rng_below(sl_dp_rng *r, uint64_t n)
{
    /* Lemire's multiply-and-reject ("Fast random integer generation in an
     * interval", 2019): the high word of v * n is uniform in [0, n) once
     * draws whose low word falls below 2^64 mod n are rejected. Exact; the
     * division runs only in the rare near-rejection case. */
    if (n <= (uint64_t)1 << 32) { /* the same with 32-bit draws: half the keystream */
        uint64_t m32 = (uint64_t)u32(r) * n;
        uint32_t lo32 = (uint32_t)m32;
        if (lo32 < n) {
            uint32_t thresh = (uint32_t)(((uint64_t)1 << 32) % n);
            while (lo32 < thresh) {
                m32 = (uint64_t)u32(r) * n;
                lo32 = (uint32_t)m32;
            }
        }
        return m32 >> 32;
    }
    u128 m = (u128)sl_dp_rng_u64(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t thresh = -n % n; /* 2^64 mod n */
        while (lo < thresh) {
            m = (u128)sl_dp_rng_u64(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double sl_dp_rng_unit(sl_dp_rng *r)
{
    return (double)(sl_dp_rng_u64(r) >> 11) * 0x1.0p-53;
}
