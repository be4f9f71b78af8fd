#include "crypto/secagg_prg.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct sl_secagg_prg {
    EVP_CIPHER_CTX **ctx; /* one per seed of the current call, reused */
    size_t nctx;
    uint8_t ks[SL_SECAGG_PRG_BLOCK]; /* keystream of one block */
};

/* EVP_EncryptUpdate XORs its input with the keystream: feed it zeros. */
static const uint8_t zeros[SL_SECAGG_PRG_BLOCK];

int sl_secagg_prg_create(sl_secagg_prg **out, sl_err *err)
{
    sl_secagg_prg *p = calloc(1, sizeof *p);
    if (!p)
        return sl_err_set(err, SL_ENOMEM, "secagg prg: out of memory");
    *out = p;
    return 0;
}

void sl_secagg_prg_free(sl_secagg_prg *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nctx; i++)
        EVP_CIPHER_CTX_free(p->ctx[i]);
    free(p->ctx);
    sodium_memzero(p->ks, sizeof p->ks);
    free(p);
}

static int ensure_ctx(sl_secagg_prg *p, size_t n, sl_err *err)
{
    if (n <= p->nctx)
        return 0;
    EVP_CIPHER_CTX **nc = realloc(p->ctx, n * sizeof *nc);
    if (!nc)
        return sl_err_set(err, SL_ENOMEM, "secagg prg: out of memory for %zu contexts", n);
    p->ctx = nc;
    while (p->nctx < n) {
        p->ctx[p->nctx] = EVP_CIPHER_CTX_new();
        if (!p->ctx[p->nctx])
            return sl_err_set(err, SL_ENOMEM, "secagg prg: EVP_CIPHER_CTX_new failed");
        p->nctx++;
    }
    return 0;
}

static int start(EVP_CIPHER_CTX *c, const uint8_t seed[SL_SECAGG_SEED_BYTES], sl_err *err)
{
    /* OpenSSL's 16-byte ChaCha20 IV is the 32-bit little-endian block
     * counter followed by the 96-bit nonce (RFC 8439 layout). */
    static const uint8_t iv[16] = {0};
    if (EVP_EncryptInit_ex(c, EVP_chacha20(), NULL, seed, iv) != 1)
        return sl_err_set(err, SL_ECRYPTO, "secagg prg: EVP_EncryptInit_ex(chacha20) failed");
    return 0;
}

static int stream(EVP_CIPHER_CTX *c, uint8_t *out, size_t n, sl_err *err)
{
    int outl = 0;
    if (EVP_EncryptUpdate(c, out, &outl, zeros, (int)n) != 1 || (size_t)outl != n)
        return sl_err_set(err, SL_ECRYPTO, "secagg prg: EVP_EncryptUpdate failed");
    return 0;
}

static inline uint32_t ld32(const uint8_t *b)
{
    uint32_t v;
    memcpy(&v, b, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline uint64_t ld64(const uint8_t *b)
{
    uint64_t v;
    memcpy(&v, b, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* Fixed-length kernels: the constant trip count lets the compiler's cheap
 * vectoriser (GCC -O2) turn them into SIMD adds. Words of v are accessed
 * with memcpy, so v need not be aligned (a client masks its vector inside
 * the message buffer, where the words start at byte 19); keystream words
 * are read little-endian (a plain load on the hosts we build for). */
#define W32 (SL_SECAGG_PRG_BLOCK / 4)
#define W64 (SL_SECAGG_PRG_BLOCK / 8)
static inline uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static void add32(uint8_t *restrict x, const uint8_t *restrict ks)
{
    for (size_t i = 0; i < W32; i++) {
        uint32_t a = get32(x + 4 * i) + ld32(ks + 4 * i);
        memcpy(x + 4 * i, &a, 4);
    }
}
static void sub32(uint8_t *restrict x, const uint8_t *restrict ks)
{
    for (size_t i = 0; i < W32; i++) {
        uint32_t a = get32(x + 4 * i) - ld32(ks + 4 * i);
        memcpy(x + 4 * i, &a, 4);
    }
}
static void add64(uint8_t *restrict x, const uint8_t *restrict ks)
{
    for (size_t i = 0; i < W64; i++) {
        uint64_t a = get64(x + 8 * i) + ld64(ks + 8 * i);
        memcpy(x + 8 * i, &a, 8);
    }
}
static void sub64(uint8_t *restrict x, const uint8_t *restrict ks)
{
    for (size_t i = 0; i < W64; i++) {
        uint64_t a = get64(x + 8 * i) - ld64(ks + 8 * i);
        memcpy(x + 8 * i, &a, 8);
    }
}

static void add_block(void *v, size_t off, unsigned bits, const uint8_t *ks, int sign)
{
    uint8_t *x = (uint8_t *)v + off * (bits / 8);
    if (bits == 32)
        (sign > 0 ? add32 : sub32)(x, ks);
    else
        (sign > 0 ? add64 : sub64)(x, ks);
}

static void add_tail(void *v, size_t off, size_t m, unsigned bits, const uint8_t *ks, int sign)
{
    uint8_t *x = (uint8_t *)v + off * (bits / 8);
    for (size_t i = 0; i < m; i++) {
        if (bits == 32) {
            uint32_t w = ld32(ks + 4 * i), a = get32(x + 4 * i);
            a = sign > 0 ? a + w : a - w;
            memcpy(x + 4 * i, &a, 4);
        } else {
            uint64_t w = ld64(ks + 8 * i), a = get64(x + 8 * i);
            a = sign > 0 ? a + w : a - w;
            memcpy(x + 8 * i, &a, 8);
        }
    }
}

int sl_secagg_prg_apply(sl_secagg_prg *p, void *v, size_t n, unsigned bits,
                        const uint8_t (*seeds)[SL_SECAGG_SEED_BYTES], const int *signs,
                        size_t nseeds, sl_err *err)
{
    if (bits != 32 && bits != 64)
        return sl_err_set(err, SL_EINVAL, "secagg prg: modulus bits %u (want 32 or 64)", bits);
    if (nseeds > SL_SECAGG_PRG_MAX_SEEDS)
        return sl_err_set(err, SL_ELIMIT, "secagg prg: %zu masks in one call (limit %d)", nseeds,
                          SL_SECAGG_PRG_MAX_SEEDS);
    for (size_t j = 0; j < nseeds; j++)
        if (signs[j] != 1 && signs[j] != -1)
            return sl_err_set(err, SL_EINVAL, "secagg prg: sign %d of mask %zu (want +1 or -1)",
                              signs[j], j);
    if (nseeds == 0 || n == 0)
        return 0;
    int rc = ensure_ctx(p, nseeds, err);
    if (rc)
        return rc;
    for (size_t j = 0; j < nseeds; j++)
        if ((rc = start(p->ctx[j], seeds[j], err)))
            goto out;
    size_t wb = bits / 8;                    /* bytes per word */
    size_t per = SL_SECAGG_PRG_BLOCK / wb;   /* words per block */
    for (size_t off = 0; off < n; off += per) {
        size_t m = n - off < per ? n - off : per;
        for (size_t j = 0; j < nseeds; j++) {
            if ((rc = stream(p->ctx[j], p->ks, m * wb, err)))
                goto out;
            if (m == per) /* full block: fixed trip count, which GCC vectorises at -O2 */
                add_block(v, off, bits, p->ks, signs[j]);
            else
                add_tail(v, off, m, bits, p->ks, signs[j]);
        }
    }
out:
    /* Drop the key schedules: the seeds are secrets. */
    for (size_t j = 0; j < nseeds; j++)
        EVP_CIPHER_CTX_reset(p->ctx[j]);
    sodium_memzero(p->ks, sizeof p->ks);
    return rc;
}

int sl_secagg_prg_keystream(sl_secagg_prg *p, uint8_t *out, size_t n,
                            const uint8_t seed[SL_SECAGG_SEED_BYTES], sl_err *err)
{
    int rc = ensure_ctx(p, 1, err);
    if (rc)
        return rc;
    if ((rc = start(p->ctx[0], seed, err)))
        goto out;
    while (n) {
        size_t m = n < SL_SECAGG_PRG_BLOCK ? n : SL_SECAGG_PRG_BLOCK;
        if ((rc = stream(p->ctx[0], out, m, err)))
            goto out;
        out += m;
        n -= m;
    }
out:
    EVP_CIPHER_CTX_reset(p->ctx[0]);
    return rc;
}
