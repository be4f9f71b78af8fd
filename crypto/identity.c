#include "crypto/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/fsutil.h"

struct sl_cert {
    X509 *x;
};

struct sl_trust {
    X509 *ca;
    X509_CRL *crl;       /* NULL when no CRL path was given */
    X509_STORE *store;   /* CA (+ CRL); rebuilt when the CRL changes */
    char crl_path[PATH_MAX];
    int has_crl;
    struct stat crl_st;  /* identity of the loaded CRL file */
    uint64_t generation; /* grows with every CRL (re)load */
    char ca_name[128];
};

/* ---- small helpers ------------------------------------------------------ */

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0; /* encrypted PEM keys are refused rather than prompted for */
}

/* First OpenSSL error as text, for messages (never contains key bytes). */
static const char *ossl_reason(void)
{
    static __thread char buf[160];
    unsigned long e = ERR_get_error();
    if (!e)
        return "no detail";
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

void sl_identity_fingerprint(const uint8_t pk[SL_IDENTITY_PK_BYTES],
                             char out[SL_IDENTITY_FPR_CHARS + 1])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, pk, SL_IDENTITY_PK_BYTES, NULL, 0);
    sodium_bin2hex(out, SL_IDENTITY_FPR_CHARS + 1, h, SL_IDENTITY_FPR_CHARS / 2);
}

int sl_identity_check_name(const char *name, sl_err *err)
{
    size_t n = name ? strlen(name) : 0;
    int ok = n >= 1 && n <= SL_IDENTITY_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        ok = alnum || (i > 0 && (c == '_' || c == '-'));
    }
    if (!ok)
        return sl_err_set(err, SL_EINVAL,
                          "invalid site name '%.80s': use 1 to %d characters from a-z 0-9 _ -, "
                          "starting with a letter or digit",
                          name ? name : "", SL_IDENTITY_NAME_MAX);
    return 0;
}

/* Creates path with O_EXCL and mode, writes n bytes, fsyncs file and folder.
 * A failure removes what it created. */
static int write_excl(const char *path, const void *buf, size_t n, unsigned mode, sl_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return errno == EEXIST
                   ? sl_err_set(err, SL_EINVAL, "%s: already exists; refusing to overwrite it",
                                path)
                   : sl_err_errno(err, "%s: create", path);
    int rc = 0;
    if (fchmod(fd, mode) != 0) {
        rc = sl_err_errno(err, "%s: chmod", path);
        goto out;
    }
    const uint8_t *p = buf;
    size_t left = n;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = sl_err_errno(err, "%s: write", path);
            goto out;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0)
        rc = sl_err_errno(err, "%s: fsync", path);
out:
    close(fd);
    if (rc) {
        unlink(path);
        return rc;
    }
    return sl_fs_sync_dir_of(path, err);
}

static int bio_bytes(BIO *b, const uint8_t **p, size_t *n)
{
    char *data = NULL;
    long len = BIO_get_mem_data(b, &data);
    if (len < 0 || !data)
        return -1;
    *p = (const uint8_t *)data;
    *n = (size_t)len;
    return 0;
}

static int read_pem_file(const char *path, uint8_t **buf, size_t *n, sl_err *err)
{
    return sl_fs_read_all(path, SL_IDENTITY_MAX_PEM, buf, n, err);
}

static X509 *read_x509_pem(const char *path, sl_err *err)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    if (read_pem_file(path, &buf, &n, err))
        return NULL;
    BIO *b = BIO_new_mem_buf(buf, (int)n);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, no_password, NULL) : NULL;
    if (!x)
        sl_err_set(err, SL_EFORMAT, "%s: not a PEM certificate (%s)", path, ossl_reason());
    BIO_free(b);
    free(buf);
    return x;
}

static int raw_pubkey(EVP_PKEY *pk, uint8_t out[32], const char *what, sl_err *err)
{
    if (!pk)
        return sl_err_set(err, SL_EFORMAT, "%s: no public key", what);
    if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_ED25519)
        return sl_err_set(err, SL_ECRYPTO, "%s: key type is %s, only Ed25519 is accepted", what,
                          EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "unknown");
    size_t len = 32;
    if (EVP_PKEY_get_raw_public_key(pk, out, &len) != 1 || len != 32)
        return sl_err_set(err, SL_ECRYPTO, "%s: cannot extract the Ed25519 public key", what);
    return 0;
}

/* ---- keys --------------------------------------------------------------- */

int sl_identity_cert_pubkey(const char *cert_pem_path, uint8_t pk[SL_IDENTITY_PK_BYTES],
                            sl_err *err)
{
    X509 *x = read_x509_pem(cert_pem_path, err);
    if (!x)
        return err ? err->code : SL_EFORMAT;
    uint8_t tmp[32];
    int rc = raw_pubkey(X509_get0_pubkey(x), tmp, cert_pem_path, err);
    X509_free(x);
    if (!rc)
        memcpy(pk, tmp, 32);
    return rc;
}

/* Reads a private key file after checking, on the open descriptor, that
 * nobody but its owner can read or write it. buf is zeroed by the caller. */
static int read_key_file(const char *path, uint8_t *buf, size_t cap, size_t *n, sl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? sl_err_set(err, SL_ENOTFOUND, "%s: no such key file", path)
                               : sl_err_errno(err, "%s: open", path);
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = sl_err_errno(err, "%s: stat", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = sl_err_set(err, SL_EINVAL, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_mode & 077) {
        rc = sl_err_set(err, SL_EINVAL,
                        "%s: private key is accessible by group or others (mode %04o); "
                        "refusing it: run chmod 600 %s",
                        path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    if ((size_t)st.st_size >= cap) {
        rc = sl_err_set(err, SL_ELIMIT, "%s: %lld bytes is too large for a key file", path,
                        (long long)st.st_size);
        goto out;
    }
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = sl_err_errno(err, "%s: read", path);
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got == cap - 1) {
            rc = sl_err_set(err, SL_ELIMIT, "%s: too large for a key file", path);
            goto out;
        }
    }
    *n = got;
out:
    close(fd);
    return rc;
}

int sl_identity_load_secret(const char *key_pem_path, uint8_t sk[SL_IDENTITY_SK_BYTES],
                            sl_err *err)
{
    enum { CAP = 16 * 1024 };
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
    uint8_t *buf = sodium_malloc(CAP);
    uint8_t seed[32], pk[32], tmp_sk[64];
    EVP_PKEY *key = NULL;
    BIO *b = NULL;
    size_t n = 0, len = 32;
    if (!buf)
        return sl_err_set(err, SL_ENOMEM, "%s: cannot allocate secure memory", key_pem_path);
    int rc = read_key_file(key_pem_path, buf, CAP, &n, err);
    if (rc)
        goto out;
    b = BIO_new_mem_buf(buf, (int)n);
    key = b ? PEM_read_bio_PrivateKey(b, NULL, no_password, NULL) : NULL;
    if (!key) {
        rc = sl_err_set(err, SL_EFORMAT,
                        "%s: not an unencrypted PEM private key (%s)", key_pem_path,
                        ossl_reason());
        goto out;
    }
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
        rc = sl_err_set(err, SL_ECRYPTO, "%s: key type is %s, only Ed25519 is accepted",
                        key_pem_path,
                        EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "unknown");
        goto out;
    }
    if (EVP_PKEY_get_raw_private_key(key, seed, &len) != 1 || len != 32) {
        rc = sl_err_set(err, SL_ECRYPTO, "%s: cannot extract the Ed25519 seed", key_pem_path);
        goto out;
    }
    crypto_sign_seed_keypair(pk, tmp_sk, seed);
    memcpy(sk, tmp_sk, 64);
out:
    BIO_free(b);
    EVP_PKEY_free(key);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(tmp_sk, sizeof tmp_sk);
    sodium_free(buf); /* zeroes the whole allocation */
    return rc;
}

int sl_identity_write_secret(const char *key_pem_path, const uint8_t sk[SL_IDENTITY_SK_BYTES],
                             sl_err *err)
{
    int rc = 0;
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32);
    BIO *b = BIO_new(BIO_s_secmem());
    const uint8_t *p;
    size_t n;
    if (!key || !b || !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) ||
        bio_bytes(b, &p, &n)) {
        rc = sl_err_set(err, SL_ECRYPTO, "%s: cannot encode the private key (%s)", key_pem_path,
                        ossl_reason());
        goto out;
    }
    rc = write_excl(key_pem_path, p, n, 0600, err);
out:
    BIO_free(b); /* secure-heap BIO: cleared on free */
    EVP_PKEY_free(key);
    return rc;
}

int sl_identity_keygen(const char *key_pem_path, uint8_t pk[SL_IDENTITY_PK_BYTES], sl_err *err)
{
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
    uint8_t *sk = sodium_malloc(64);
    uint8_t p[32];
    if (!sk)
        return sl_err_set(err, SL_ENOMEM, "cannot allocate secure memory");
    crypto_sign_keypair(p, sk);
    int rc = sl_identity_write_secret(key_pem_path, sk, err);
    sodium_free(sk);
    if (!rc && pk)
        memcpy(pk, p, 32);
    return rc;
}

/* A throwaway EVP_PKEY for the secret key in path (for OpenSSL signing). */
static EVP_PKEY *load_evp_secret(const char *path, sl_err *err)
{
    if (sodium_init() < 0) {
        sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
        return NULL;
    }
    uint8_t *sk = sodium_malloc(64);
    if (!sk) {
        sl_err_set(err, SL_ENOMEM, "cannot allocate secure memory");
        return NULL;
    }
    EVP_PKEY *key = NULL;
    if (sl_identity_load_secret(path, sk, err) == 0) {
        key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32);
        if (!key)
            sl_err_set(err, SL_ECRYPTO, "%s: OpenSSL refused the key (%s)", path, ossl_reason());
    }
    sodium_free(sk);
    return key;
}

static EVP_PKEY *evp_public(const uint8_t pk[32])
{
    return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
}

/* ---- certificates -------------------------------------------------------- */

static int cn_of(X509_NAME *nm, char *out, size_t cap)
{
    int i = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
    if (i < 0)
        return -1;
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i));
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int len = ASN1_STRING_length(s);
    if (!d || len <= 0 || (size_t)len >= cap)
        return -1;
    for (int k = 0; k < len; k++)
        if (d[k] < 0x20 || d[k] > 0x7e)
            return -1; /* printable ASCII only: names end up in messages */
    memcpy(out, d, (size_t)len);
    out[len] = 0;
    return 0;
}

static int64_t asn1_time_epoch(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return INT64_MIN;
    return (int64_t)timegm(&tm);
}

static void fmt_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, 32, "%lld", (long long)t);
}

static int x509_info(X509 *x, sl_cert_info *info, sl_err *err)
{
    sl_cert_info t;
    memset(&t, 0, sizeof t);
    if (cn_of(X509_get_subject_name(x), t.name, sizeof t.name))
        return sl_err_set(err, SL_EFORMAT, "certificate: missing or invalid subject CN");
    if (cn_of(X509_get_issuer_name(x), t.issuer, sizeof t.issuer))
        return sl_err_set(err, SL_EFORMAT, "certificate of '%s': missing or invalid issuer CN",
                          t.name);
    char what[96];
    snprintf(what, sizeof what, "certificate of '%s'", t.name);
    int rc = raw_pubkey(X509_get0_pubkey(x), t.pk, what, err);
    if (rc)
        return rc;
    uint32_t xku = X509_get_extended_key_usage(x);
    int is_client = (xku & XKU_SSL_CLIENT) != 0, is_server = (xku & XKU_SSL_SERVER) != 0;
    if (X509_check_ca(x) > 0)
        t.role = SL_IDENTITY_ROLE_CA;
    else if (is_client && !is_server)
        t.role = SL_IDENTITY_ROLE_SITE;
    else if (is_server && !is_client)
        t.role = SL_IDENTITY_ROLE_SERVER;
    else
        return sl_err_set(err, SL_EFORMAT,
                          "%s: extended key usage must be exactly one of clientAuth (site) or "
                          "serverAuth (server)",
                          what);
    if (t.role == SL_IDENTITY_ROLE_SITE && sl_identity_check_name(t.name, err))
        return sl_err_prefix(err, "%s", what);
    if (t.role == SL_IDENTITY_ROLE_SERVER && strcmp(t.name, SL_IDENTITY_SERVER_NAME) != 0)
        return sl_err_set(err, SL_EFORMAT, "%s: a server certificate must be named '%s'", what,
                          SL_IDENTITY_SERVER_NAME);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    int nb = bn ? BN_num_bytes(bn) : -1;
    if (nb < 1 || nb > (int)sizeof t.serial || BN_is_negative(bn)) {
        BN_free(bn);
        return sl_err_set(err, SL_EFORMAT, "%s: serial number missing, negative or longer than "
                          "20 bytes", what);
    }
    t.serial_len = (size_t)BN_bn2bin(bn, t.serial);
    BN_free(bn);
    t.not_before = asn1_time_epoch(X509_get0_notBefore(x));
    t.not_after = asn1_time_epoch(X509_get0_notAfter(x));
    if (t.not_before == INT64_MIN || t.not_after == INT64_MIN)
        return sl_err_set(err, SL_EFORMAT, "%s: unreadable validity period", what);
    *info = t;
    return 0;
}

int sl_identity_cert_read(const char *pem_path, sl_cert **out, sl_err *err)
{
    X509 *x = read_x509_pem(pem_path, err);
    if (!x)
        return err ? err->code : SL_EFORMAT;
    sl_cert *c = malloc(sizeof *c);
    if (!c) {
        X509_free(x);
        return sl_err_set(err, SL_ENOMEM, "%s: out of memory", pem_path);
    }
    c->x = x;
    *out = c;
    return 0;
}

int sl_identity_cert_parse_der(const uint8_t *der, size_t n, sl_cert **out, sl_err *err)
{
    if (n == 0 || n > SL_IDENTITY_MAX_DER)
        return sl_err_set(err, SL_ELIMIT, "certificate: %zu bytes (limit %u)", n,
                          SL_IDENTITY_MAX_DER);
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)n);
    if (!x)
        return sl_err_set(err, SL_EFORMAT, "certificate: not DER X.509 (%s)", ossl_reason());
    if (p != der + n) {
        X509_free(x);
        return sl_err_set(err, SL_EFORMAT, "certificate: %zu trailing bytes after the DER",
                          (size_t)(der + n - p));
    }
    sl_cert *c = malloc(sizeof *c);
    if (!c) {
        X509_free(x);
        return sl_err_set(err, SL_ENOMEM, "certificate: out of memory");
    }
    c->x = x;
    *out = c;
    return 0;
}

int sl_identity_cert_der(const sl_cert *c, uint8_t **der, size_t *n, sl_err *err)
{
    int len = i2d_X509(c->x, NULL);
    if (len <= 0 || (size_t)len > SL_IDENTITY_MAX_DER)
        return sl_err_set(err, SL_ELIMIT, "certificate: DER size %d outside 1..%u", len,
                          SL_IDENTITY_MAX_DER);
    uint8_t *buf = malloc((size_t)len);
    if (!buf)
        return sl_err_set(err, SL_ENOMEM, "certificate: out of memory");
    unsigned char *p = buf;
    if (i2d_X509(c->x, &p) != len) {
        free(buf);
        return sl_err_set(err, SL_ECRYPTO, "certificate: DER encoding failed");
    }
    *der = buf;
    *n = (size_t)len;
    return 0;
}

int sl_identity_cert_info(const sl_cert *c, sl_cert_info *info, sl_err *err)
{
    return x509_info(c->x, info, err);
}

void sl_identity_cert_free(sl_cert *c)
{
    if (!c)
        return;
    X509_free(c->x);
    free(c);
}

/* ---- issuing ------------------------------------------------------------ */

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!e)
        return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

static int set_random_serial(ASN1_INTEGER *serial)
{
    uint8_t b[16];
    if (sodium_init() < 0)
        return -1;
    randombytes_buf(b, sizeof b);
    b[0] = (uint8_t)((b[0] & 0x7f) | 0x40); /* positive, exactly 16 bytes */
    BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, serial) != NULL;
    BN_free(bn);
    return ok ? 0 : -1;
}

static int validity_range(const sl_identity_validity *v, int default_days, time_t *start,
                          time_t *end, sl_err *err)
{
    int days = v && v->days ? v->days : default_days;
    if (days < 1 || days > SL_IDENTITY_MAX_DAYS)
        return sl_err_set(err, SL_EINVAL, "validity of %d days outside 1..%d", days,
                          SL_IDENTITY_MAX_DAYS);
    *start = v && v->start ? v->start : time(NULL);
    *end = *start + (time_t)days * 86400;
    return 0;
}

/* Builds and signs a certificate. issuer == NULL makes it self-signed (CA). */
static int build_cert(X509 **out, const char *cn, sl_identity_role role, EVP_PKEY *subject,
                      X509 *issuer, EVP_PKEY *issuer_key, const sl_identity_validity *v,
                      sl_err *err)
{
    time_t start = 0, end = 0;
    int rc = validity_range(v, role == SL_IDENTITY_ROLE_CA ? 10 * 365 : SL_IDENTITY_DEFAULT_DAYS,
                            &start, &end, err);
    if (rc)
        return rc;
    X509 *x = X509_new();
    X509_NAME *nm = NULL;
    if (!x || !X509_set_version(x, 2) || set_random_serial(X509_get_serialNumber(x)) ||
        !ASN1_TIME_set(X509_getm_notBefore(x), start) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), end) || !X509_set_pubkey(x, subject))
        goto fail;
    nm = X509_NAME_new();
    if (!nm || !X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC, (const unsigned char *)"sealora",
                                           -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_subject_name(x, nm))
        goto fail;
    if (!X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : nm))
        goto fail;
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    if (role == SL_IDENTITY_ROLE_CA) {
        if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
            add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"))
            goto fail;
    } else {
        if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
            add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
            add_ext(x, &ctx, NID_ext_key_usage,
                    role == SL_IDENTITY_ROLE_SERVER ? "serverAuth" : "clientAuth"))
            goto fail;
    }
    if (add_ext(x, &ctx, NID_subject_key_identifier, "hash") ||
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"))
        goto fail;
    if (X509_sign(x, issuer_key, NULL) <= 0)
        goto fail;
    X509_NAME_free(nm);
    *out = x;
    return 0;
fail:
    rc = sl_err_set(err, SL_ECRYPTO, "cannot build the certificate for '%s' (%s)", cn,
                    ossl_reason());
    X509_NAME_free(nm);
    X509_free(x);
    return rc;
}

static int write_x509(X509 *x, const char *path, int excl, sl_err *err)
{
    BIO *b = BIO_new(BIO_s_mem());
    const uint8_t *p;
    size_t n;
    int rc;
    if (!b || !PEM_write_bio_X509(b, x) || bio_bytes(b, &p, &n))
        rc = sl_err_set(err, SL_ECRYPTO, "%s: cannot encode the certificate", path);
    else
        rc = excl ? write_excl(path, p, n, 0644, err) : sl_fs_write_atomic(path, p, n, 0644, err);
    BIO_free(b);
    return rc;
}

int sl_identity_ca_create(const char *cert_path, const char *key_path,
                          const sl_identity_validity *v, sl_err *err)
{
    if (sl_fs_exists(cert_path))
        return sl_err_set(err, SL_EINVAL, "%s: already exists; refusing to replace a CA",
                          cert_path);
    uint8_t pk[32];
    char fpr[SL_IDENTITY_FPR_CHARS + 1], cn[64];
    X509 *x = NULL;
    EVP_PKEY *key = NULL, *pub = NULL;
    int rc = sl_identity_keygen(key_path, pk, err);
    if (rc)
        return rc;
    sl_identity_fingerprint(pk, fpr);
    snprintf(cn, sizeof cn, "sealora CA %s", fpr);
    key = load_evp_secret(key_path, err);
    pub = evp_public(pk);
    if (!key || !pub) {
        rc = key ? sl_err_set(err, SL_ECRYPTO, "CA public key refused") : err->code;
        goto out;
    }
    rc = build_cert(&x, cn, SL_IDENTITY_ROLE_CA, pub, NULL, key, v, err);
    if (!rc)
        rc = write_x509(x, cert_path, 1, err);
out:
    if (rc)
        unlink(key_path); /* no half-made CA left behind */
    X509_free(x);
    EVP_PKEY_free(key);
    EVP_PKEY_free(pub);
    return rc;
}

int sl_identity_issue(const char *ca_cert_path, const char *ca_key_path, const char *name,
                      sl_identity_role role, const uint8_t pk[SL_IDENTITY_PK_BYTES],
                      const sl_identity_validity *v, const char *cert_path, sl_cert_info *info,
                      sl_err *err)
{
    if (role != SL_IDENTITY_ROLE_SITE && role != SL_IDENTITY_ROLE_SERVER)
        return sl_err_set(err, SL_EINVAL, "issue: role must be site or server");
    if (role == SL_IDENTITY_ROLE_SITE && sl_identity_check_name(name, err))
        return err ? err->code : SL_EINVAL;
    if (role == SL_IDENTITY_ROLE_SERVER && strcmp(name, SL_IDENTITY_SERVER_NAME) != 0)
        return sl_err_set(err, SL_EINVAL, "issue: the server certificate is named '%s'",
                          SL_IDENTITY_SERVER_NAME);
    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *key = NULL, *pub = NULL;
    uint8_t ca_pk[32];
    int rc = 0;
    ca = read_x509_pem(ca_cert_path, err);
    if (!ca) {
        rc = err ? err->code : SL_EFORMAT;
        goto out;
    }
    if ((rc = raw_pubkey(X509_get0_pubkey(ca), ca_pk, ca_cert_path, err)))
        goto out;
    key = load_evp_secret(ca_key_path, err);
    if (!key) {
        rc = err ? err->code : SL_ECRYPTO;
        goto out;
    }
    uint8_t key_pk[32];
    size_t len = 32;
    if (EVP_PKEY_get_raw_public_key(key, key_pk, &len) != 1 || sodium_memcmp(key_pk, ca_pk, 32)) {
        rc = sl_err_set(err, SL_ECRYPTO, "%s does not belong to the CA certificate %s",
                        ca_key_path, ca_cert_path);
        goto out;
    }
    pub = evp_public(pk);
    if (!pub) {
        rc = sl_err_set(err, SL_ECRYPTO, "issue: invalid Ed25519 public key for '%s'", name);
        goto out;
    }
    if ((rc = build_cert(&x, name, role, pub, ca, key, v, err)))
        goto out;
    sl_cert_info ti;
    if ((rc = x509_info(x, &ti, err)))
        goto out;
    if ((rc = write_x509(x, cert_path, 0, err)))
        goto out;
    if (info)
        *info = ti;
out:
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(pub);
    return rc;
}

int sl_identity_csr_write(const char *key_path, const char *name, const char *csr_path,
                          sl_err *err)
{
    if (sl_identity_check_name(name, err))
        return err ? err->code : SL_EINVAL;
    EVP_PKEY *key = load_evp_secret(key_path, err);
    if (!key)
        return err ? err->code : SL_ECRYPTO;
    int rc = 0;
    X509_REQ *req = X509_REQ_new();
    X509_NAME *nm = X509_NAME_new();
    BIO *b = BIO_new(BIO_s_mem());
    const uint8_t *p;
    size_t n;
    if (!req || !nm || !b || !X509_REQ_set_version(req, 0) ||
        !X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC, (const unsigned char *)"sealora", -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1,
                                    0) ||
        !X509_REQ_set_subject_name(req, nm) || !X509_REQ_set_pubkey(req, key) ||
        X509_REQ_sign(req, key, NULL) <= 0 || !PEM_write_bio_X509_REQ(b, req) ||
        bio_bytes(b, &p, &n)) {
        rc = sl_err_set(err, SL_ECRYPTO, "%s: cannot build the signing request (%s)", csr_path,
                        ossl_reason());
        goto out;
    }
    rc = write_excl(csr_path, p, n, 0644, err);
out:
    BIO_free(b);
    X509_NAME_free(nm);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    return rc;
}

int sl_identity_csr_read(const char *csr_path, char *name, uint8_t pk[SL_IDENTITY_PK_BYTES],
                         sl_err *err)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = read_pem_file(csr_path, &buf, &n, err);
    if (rc)
        return rc;
    BIO *b = BIO_new_mem_buf(buf, (int)n);
    X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, no_password, NULL) : NULL;
    char nm[SL_IDENTITY_NAME_MAX + 1];
    uint8_t p[32];
    if (!req) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: not a PEM certificate signing request (%s)",
                        csr_path, ossl_reason());
        goto out;
    }
    EVP_PKEY *key = X509_REQ_get0_pubkey(req);
    if ((rc = raw_pubkey(key, p, csr_path, err)))
        goto out;
    if (X509_REQ_verify(req, key) != 1) {
        rc = sl_err_set(err, SL_ECRYPTO, "%s: the request's self-signature does not verify",
                        csr_path);
        goto out;
    }
    if (cn_of(X509_REQ_get_subject_name(req), nm, sizeof nm)) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: missing or invalid subject CN", csr_path);
        goto out;
    }
    if (sl_identity_check_name(nm, err)) {
        rc = sl_err_prefix(err, "%s", csr_path);
        goto out;
    }
    memcpy(name, nm, strlen(nm) + 1);
    memcpy(pk, p, 32);
out:
    X509_REQ_free(req);
    BIO_free(b);
    free(buf);
    return rc;
}

int sl_identity_crl_write(const char *ca_cert_path, const char *ca_key_path,
                          const sl_identity_revoked *rev, size_t n, const char *crl_path,
                          sl_err *err)
{
    X509 *ca = read_x509_pem(ca_cert_path, err);
    if (!ca)
        return err ? err->code : SL_EFORMAT;
    int rc = 0;
    EVP_PKEY *key = load_evp_secret(ca_key_path, err);
    X509_CRL *crl = NULL;
    ASN1_TIME *now = NULL;
    BIO *b = NULL;
    if (!key) {
        rc = err ? err->code : SL_ECRYPTO;
        goto out;
    }
    crl = X509_CRL_new();
    now = ASN1_TIME_set(NULL, time(NULL));
    if (!crl || !now || !X509_CRL_set_version(crl, 1) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) ||
        !X509_CRL_set1_lastUpdate(crl, now) ||
        !X509_CRL_set1_nextUpdate(crl, X509_get0_notAfter(ca)))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        BIGNUM *bn = BN_bin2bn(rev[i].serial, (int)rev[i].serial_len, NULL);
        ASN1_INTEGER *s = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
        ASN1_TIME *when = ASN1_TIME_set(NULL, rev[i].when ? rev[i].when : time(NULL));
        int ok = r && s && when && X509_REVOKED_set_serialNumber(r, s) &&
                 X509_REVOKED_set_revocationDate(r, when) && X509_CRL_add0_revoked(crl, r);
        BN_free(bn);
        ASN1_INTEGER_free(s);
        ASN1_TIME_free(when);
        if (!ok) {
            X509_REVOKED_free(r);
            goto fail;
        }
    }
    const uint8_t *p;
    size_t len;
    b = BIO_new(BIO_s_mem());
    if (!X509_CRL_sort(crl) || X509_CRL_sign(crl, key, NULL) <= 0 || !b ||
        !PEM_write_bio_X509_CRL(b, crl) || bio_bytes(b, &p, &len))
        goto fail;
    rc = sl_fs_write_atomic(crl_path, p, len, 0644, err);
    goto out;
fail:
    rc = sl_err_set(err, SL_ECRYPTO, "%s: cannot build the revocation list (%s)", crl_path,
                    ossl_reason());
out:
    BIO_free(b);
    ASN1_TIME_free(now);
    X509_CRL_free(crl);
    EVP_PKEY_free(key);
    X509_free(ca);
    return rc;
}

/* ---- verification -------------------------------------------------------- */

static int load_crl(sl_trust *t, sl_err *err)
{
    struct stat st;
    if (stat(t->crl_path, &st) != 0)
        return sl_err_errno(err, "%s: revocation list", t->crl_path);
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = read_pem_file(t->crl_path, &buf, &n, err);
    if (rc)
        return rc;
    BIO *b = BIO_new_mem_buf(buf, (int)n);
    X509_CRL *crl = b ? PEM_read_bio_X509_CRL(b, NULL, no_password, NULL) : NULL;
    X509_STORE *store = NULL;
    BIO_free(b);
    free(buf);
    if (!crl)
        return sl_err_set(err, SL_EFORMAT, "%s: not a PEM revocation list (%s)", t->crl_path,
                          ossl_reason());
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(t->ca)) != 0 ||
        X509_CRL_verify(crl, X509_get0_pubkey(t->ca)) != 1) {
        rc = sl_err_set(err, SL_ECRYPTO, "%s: revocation list is not signed by the CA '%s'",
                        t->crl_path, t->ca_name);
        goto fail;
    }
    store = X509_STORE_new();
    if (!store || !X509_STORE_add_cert(store, t->ca) || !X509_STORE_add_crl(store, crl)) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: cannot build the trust store", t->crl_path);
        goto fail;
    }
    X509_STORE_free(t->store);
    X509_CRL_free(t->crl);
    t->store = store;
    t->crl = crl;
    t->crl_st = st;
    t->generation++;
    return 0;
fail:
    X509_STORE_free(store);
    X509_CRL_free(crl);
    return rc;
}

int sl_identity_trust_load(const char *ca_cert_path, const char *crl_path, sl_trust **out,
                           sl_err *err)
{
    sl_trust *t = calloc(1, sizeof *t);
    if (!t)
        return sl_err_set(err, SL_ENOMEM, "trust: out of memory");
    int rc = 0;
    t->ca = read_x509_pem(ca_cert_path, err);
    if (!t->ca) {
        rc = err ? err->code : SL_EFORMAT;
        goto fail;
    }
    sl_cert_info ci;
    if ((rc = x509_info(t->ca, &ci, err))) {
        sl_err_prefix(err, "%s", ca_cert_path);
        goto fail;
    }
    if (ci.role != SL_IDENTITY_ROLE_CA) {
        rc = sl_err_set(err, SL_EINVAL, "%s: '%s' is not a CA certificate", ca_cert_path,
                        ci.name);
        goto fail;
    }
    snprintf(t->ca_name, sizeof t->ca_name, "%s", ci.name);
    if (crl_path) {
        if (snprintf(t->crl_path, sizeof t->crl_path, "%s", crl_path) >= (int)sizeof t->crl_path) {
            rc = sl_err_set(err, SL_ELIMIT, "revocation list path too long");
            goto fail;
        }
        t->has_crl = 1;
        if ((rc = load_crl(t, err)))
            goto fail;
    } else {
        t->store = X509_STORE_new();
        if (!t->store || !X509_STORE_add_cert(t->store, t->ca)) {
            rc = sl_err_set(err, SL_ENOMEM, "trust: cannot build the store");
            goto fail;
        }
        t->generation = 1;
    }
    *out = t;
    return 0;
fail:
    sl_identity_trust_free(t);
    return rc;
}

int sl_identity_trust_refresh(sl_trust *t, uint64_t *generation, sl_err *err)
{
    int rc = 0;
    if (t->has_crl) {
        struct stat st;
        if (stat(t->crl_path, &st) != 0)
            rc = sl_err_errno(err, "%s: revocation list", t->crl_path);
        else if (st.st_ino != t->crl_st.st_ino || st.st_dev != t->crl_st.st_dev ||
                 st.st_size != t->crl_st.st_size ||
                 st.st_mtim.tv_sec != t->crl_st.st_mtim.tv_sec ||
                 st.st_mtim.tv_nsec != t->crl_st.st_mtim.tv_nsec)
            rc = load_crl(t, err);
    }
    if (generation)
        *generation = t->generation;
    return rc;
}

const char *sl_identity_trust_ca_name(const sl_trust *t) { return t->ca_name; }

int sl_identity_trust_revoked(const sl_trust *t, const uint8_t *serial, size_t serial_len)
{
    if (!t->crl || serial_len == 0 || serial_len > 20)
        return 0;
    BIGNUM *bn = BN_bin2bn(serial, (int)serial_len, NULL);
    ASN1_INTEGER *s = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    X509_REVOKED *r = NULL;
    int hit = s && X509_CRL_get0_by_serial(t->crl, &r, s) == 1;
    ASN1_INTEGER_free(s);
    BN_free(bn);
    return hit;
}

static const char *role_name(sl_identity_role r)
{
    return r == SL_IDENTITY_ROLE_SITE ? "site" : r == SL_IDENTITY_ROLE_SERVER ? "server" : "CA";
}

int sl_identity_verify(sl_trust *t, const sl_cert *c, sl_identity_role role, time_t now,
                       sl_cert_info *info, sl_err *err)
{
    sl_cert_info ci;
    int rc = x509_info(c->x, &ci, err);
    if (rc)
        return rc;
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!ctx || !X509_STORE_CTX_init(ctx, t->store, c->x, NULL)) {
        X509_STORE_CTX_free(ctx);
        return sl_err_set(err, SL_ENOMEM, "verify: cannot create a context");
    }
    X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(ctx);
    if (now)
        X509_VERIFY_PARAM_set_time(p, now);
    if (t->has_crl)
        X509_VERIFY_PARAM_set_flags(p, X509_V_FLAG_CRL_CHECK);
    X509_STORE_CTX_set_purpose(ctx, role == SL_IDENTITY_ROLE_SITE ? X509_PURPOSE_SSL_CLIENT
                                                                  : X509_PURPOSE_SSL_SERVER);
    int ok = X509_verify_cert(ctx) == 1;
    int e = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    char when[32];
    if (!ok) {
        switch (e) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
            fmt_time(ci.not_after, when);
            return sl_err_set(err, SL_ECRYPTO,
                              "certificate of '%s' expired on %s; renew it (sealora-server renew)",
                              ci.name, when);
        case X509_V_ERR_CERT_NOT_YET_VALID:
            fmt_time(ci.not_before, when);
            return sl_err_set(err, SL_ECRYPTO, "certificate of '%s' is not valid before %s",
                              ci.name, when);
        case X509_V_ERR_CERT_REVOKED:
            return sl_err_set(err, SL_ECRYPTO, "certificate of '%s' is revoked", ci.name);
        case X509_V_ERR_INVALID_PURPOSE:
            return sl_err_set(err, SL_ECRYPTO, "certificate of '%s' is not a %s certificate",
                              ci.name, role_name(role));
        case X509_V_ERR_CRL_HAS_EXPIRED:
        case X509_V_ERR_CRL_NOT_YET_VALID:
        case X509_V_ERR_UNABLE_TO_GET_CRL:
            return sl_err_set(err, SL_ECRYPTO,
                              "revocation list of CA '%s' is missing or out of date (%s)",
                              t->ca_name, X509_verify_cert_error_string(e));
        default:
            if (strcmp(ci.issuer, t->ca_name) != 0)
                return sl_err_set(err, SL_ECRYPTO,
                                  "certificate of '%s' was issued by '%s' but this side trusts "
                                  "'%s': the kit comes from another deployment or from a CA that "
                                  "was rotated; provision it again from the current CA",
                                  ci.name, ci.issuer, t->ca_name);
            return sl_err_set(err, SL_ECRYPTO,
                              "certificate of '%s' does not verify against CA '%s' (%s)", ci.name,
                              t->ca_name, X509_verify_cert_error_string(e));
        }
    }
    if (ci.role != role)
        return sl_err_set(err, SL_ECRYPTO, "certificate of '%s' is a %s certificate, not a %s one",
                          ci.name, role_name(ci.role), role_name(role));
    if (info)
        *info = ci;
    return 0;
}

void sl_identity_trust_free(sl_trust *t)
{
    if (!t)
        return;
    X509_STORE_free(t->store);
    X509_CRL_free(t->crl);
    X509_free(t->ca);
    free(t);
}

/* ---- signatures ---------------------------------------------------------- */

void sl_identity_sign(uint8_t sig[64], const void *msg, size_t n,
                      const uint8_t sk[SL_IDENTITY_SK_BYTES])
{
    crypto_sign_detached(sig, NULL, msg, n, sk);
}

int sl_identity_verify_sig(const uint8_t sig[64], const void *msg, size_t n,
                           const uint8_t pk[SL_IDENTITY_PK_BYTES])
{
    return crypto_sign_verify_detached(sig, msg, n, pk) == 0 ? 0 : SL_ECRYPTO;
}
