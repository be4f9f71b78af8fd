#include "shared/sha256.h"

#include <openssl/evp.h>
#include <stdlib.h>

struct sl_sha256_ctx {
    EVP_MD_CTX *md;
};

int sl_sha256(const void *buf, size_t n, uint8_t out[32], sl_err *err)
{
    unsigned int len = 0;
    if (EVP_Digest(buf, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return sl_err_set(err, SL_ENOMEM, "sha256: OpenSSL failed (out of memory?)");
    return 0;
}

int sl_sha256_begin(sl_sha256_ctx **out, sl_err *err)
{
    sl_sha256_ctx *c = malloc(sizeof *c);
    if (!c)
        return sl_err_set(err, SL_ENOMEM, "sha256: out of memory");
    c->md = EVP_MD_CTX_new();
    if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
        sl_sha256_free(c);
        return sl_err_set(err, SL_ENOMEM, "sha256: OpenSSL failed (out of memory?)");
    }
    *out = c;
    return 0;
}

int sl_sha256_update(sl_sha256_ctx *c, const void *buf, size_t n, sl_err *err)
{
    if (EVP_DigestUpdate(c->md, buf, n) != 1)
        return sl_err_set(err, SL_ENOMEM, "sha256: OpenSSL failed");
    return 0;
}

int sl_sha256_end(sl_sha256_ctx *c, uint8_t out[32], sl_err *err)
{
    unsigned int len = 0;
    int ok = EVP_DigestFinal_ex(c->md, out, &len) == 1 && len == 32;
    sl_sha256_free(c);
    return ok ? 0 : sl_err_set(err, SL_ENOMEM, "sha256: OpenSSL failed");
}

void sl_sha256_free(sl_sha256_ctx *c)
{
    if (!c)
        return;
    EVP_MD_CTX_free(c->md);
    free(c);
}
