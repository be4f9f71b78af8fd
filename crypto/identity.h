/* crypto/identity.h - who is who: Ed25519 keys in PEM files, X.509
 * certificates (OpenSSL) issued by the deployment's own certificate
 * authority, certificate signing requests, revocation lists, and the
 * verification every handshake runs (chain to the CA, validity period, role,
 * revocation).
 *
 * Keys: the secret key is the libsodium Ed25519 form (32-byte seed followed
 * by the 32-byte public key). On disk it is an unencrypted PKCS#8 PEM file
 * ("BEGIN PRIVATE KEY", what `openssl genpkey -algorithm ed25519` writes),
 * created with O_EXCL and mode 0600; loading refuses a key file that is
 * readable or writable by group or others. Secret bytes are only ever written
 * to caller memory (the caller should keep them in sodium_malloc'd or
 * sodium_mlock'ed memory and sodium_memzero them) and never appear in
 * messages: errors name the file and, for keys, a public fingerprint.
 *
 * Certificates: subject CN is the site name (or "server"), the role is the
 * extended key usage (clientAuth for sites, serverAuth for the server), the
 * CA's CN carries the fingerprint of its key so that an error about a kit
 * from another or an older CA can name both CAs.
 *
 * Ownership: sl_cert and sl_trust are heap objects freed by their _free
 * (which accept NULL). Thread-safety: an sl_trust must not be used from two
 * threads at once; everything else is reentrant. */
#ifndef SL_IDENTITY_H
#define SL_IDENTITY_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "shared/err.h"

#define SL_IDENTITY_PK_BYTES 32
#define SL_IDENTITY_SK_BYTES 64
/* Largest PEM file (key, certificate, CSR, CRL) we read. */
#define SL_IDENTITY_MAX_PEM (256u * 1024u)
/* Largest DER certificate accepted (from files or the wire). */
#define SL_IDENTITY_MAX_DER 4096u
/* Site names: [a-z0-9][a-z0-9_-]{0,62}. */
#define SL_IDENTITY_NAME_MAX 63
#define SL_IDENTITY_DEFAULT_DAYS 365
#define SL_IDENTITY_MAX_DAYS (100 * 366)
/* Hex characters of a key fingerprint (first 8 bytes of BLAKE2b-256(pk)). */
#define SL_IDENTITY_FPR_CHARS 16
/* The name the server's certificate carries. */
#define SL_IDENTITY_SERVER_NAME "server"

typedef enum sl_identity_role {
    SL_IDENTITY_ROLE_SITE = 1,   /* extendedKeyUsage clientAuth */
    SL_IDENTITY_ROLE_SERVER = 2, /* extendedKeyUsage serverAuth */
    SL_IDENTITY_ROLE_CA = 3,     /* basicConstraints CA:TRUE */
} sl_identity_role;

/* ---- keys ---------------------------------------------------------------- */

/* Raw Ed25519 public key of the PEM certificate at cert_pem_path. Refuses
 * certificates whose key is not Ed25519. pk untouched on failure. */
int sl_identity_cert_pubkey(const char *cert_pem_path, uint8_t pk[SL_IDENTITY_PK_BYTES],
                            sl_err *err);
/* libsodium Ed25519 secret key (seed || public key) from a PEM private key
 * file, which must be a regular file not readable or writable by group or
 * others (mode 0600 or 0400). sk untouched on failure. */
int sl_identity_load_secret(const char *key_pem_path, uint8_t sk[SL_IDENTITY_SK_BYTES],
                            sl_err *err);
/* Writes sk as a PKCS#8 PEM file created with O_EXCL and mode 0600 (fsync'd,
 * folder fsync'd). Refuses to overwrite an existing file. */
int sl_identity_write_secret(const char *key_pem_path, const uint8_t sk[SL_IDENTITY_SK_BYTES],
                             sl_err *err);
/* Generates a fresh key pair into key_pem_path (as sl_identity_write_secret);
 * pk (may be NULL) receives the public key. */
int sl_identity_keygen(const char *key_pem_path, uint8_t pk[SL_IDENTITY_PK_BYTES], sl_err *err);
/* Fingerprint of a public key for messages and logs: 16 hex characters. */
void sl_identity_fingerprint(const uint8_t pk[SL_IDENTITY_PK_BYTES],
                             char out[SL_IDENTITY_FPR_CHARS + 1]);
/* 0 if name matches [a-z0-9][a-z0-9_-]{0,62}; else SL_EINVAL quoting it. */
int sl_identity_check_name(const char *name, sl_err *err);

/* ---- certificates -------------------------------------------------------- */

typedef struct sl_cert sl_cert; /* one parsed X.509 certificate */

typedef struct sl_cert_info {
    char name[SL_IDENTITY_NAME_MAX + 1]; /* subject CN */
    char issuer[128];                    /* issuer CN (e.g. "sealora CA 0123abcd...") */
    sl_identity_role role;               /* from basicConstraints / extendedKeyUsage */
    uint8_t pk[SL_IDENTITY_PK_BYTES];    /* Ed25519 public key */
    uint8_t serial[20];                  /* big-endian, serial_len bytes */
    size_t serial_len;
    int64_t not_before, not_after;       /* seconds since the epoch (UTC) */
} sl_cert_info;

int sl_identity_cert_read(const char *pem_path, sl_cert **out, sl_err *err);
/* Parses a DER certificate (e.g. from the wire); refuses n > SL_IDENTITY_MAX_DER
 * and trailing bytes. */
int sl_identity_cert_parse_der(const uint8_t *der, size_t n, sl_cert **out, sl_err *err);
/* DER encoding in a malloc'd buffer (free()). */
int sl_identity_cert_der(const sl_cert *c, uint8_t **der, size_t *n, sl_err *err);
/* Fields of c; refuses non-Ed25519 keys, a missing CN, names that are not
 * valid site names (except the CA's and "server"). */
int sl_identity_cert_info(const sl_cert *c, sl_cert_info *info, sl_err *err);
void sl_identity_cert_free(sl_cert *c);

/* ---- issuing (the certificate authority side) ----------------------------- */

typedef struct sl_identity_validity {
    time_t start; /* not-before; 0 means now */
    int days;     /* validity in days from start; 0 means SL_IDENTITY_DEFAULT_DAYS */
} sl_identity_validity;

/* Creates a CA: a fresh key written to key_path (O_EXCL 0600) and a
 * self-signed certificate "sealora CA <fingerprint>" written to cert_path
 * (O_EXCL 0644). */
int sl_identity_ca_create(const char *cert_path, const char *key_path,
                          const sl_identity_validity *v, sl_err *err);
/* Issues a certificate for pk with subject CN name and the given role
 * (SITE or SERVER), signed by the CA in ca_cert_path/ca_key_path, written
 * atomically to cert_path (0644). info (may be NULL) describes the result. */
int sl_identity_issue(const char *ca_cert_path, const char *ca_key_path, const char *name,
                      sl_identity_role role, const uint8_t pk[SL_IDENTITY_PK_BYTES],
                      const sl_identity_validity *v, const char *cert_path, sl_cert_info *info,
                      sl_err *err);
/* Writes a PEM certificate signing request for the key in key_path with
 * subject CN name (O_EXCL 0644). */
int sl_identity_csr_write(const char *key_path, const char *name, const char *csr_path,
                          sl_err *err);
/* Reads a CSR, checks its self-signature, its key type and its name; fills
 * name (SL_IDENTITY_NAME_MAX + 1 bytes) and pk. */
int sl_identity_csr_read(const char *csr_path, char *name, uint8_t pk[SL_IDENTITY_PK_BYTES],
                         sl_err *err);

/* One revoked certificate for sl_identity_crl_write. */
typedef struct sl_identity_revoked {
    uint8_t serial[20];
    size_t serial_len;
    time_t when;
} sl_identity_revoked;

/* Writes a CRL signed by the CA listing the given serials, atomically to
 * crl_path (0644). n may be 0 (an empty list still proves freshness). */
int sl_identity_crl_write(const char *ca_cert_path, const char *ca_key_path,
                          const sl_identity_revoked *rev, size_t n, const char *crl_path,
                          sl_err *err);

/* ---- verification ------------------------------------------------------- */

typedef struct sl_trust sl_trust; /* the CA certificate and, optionally, its CRL */

/* Loads the CA certificate and, if crl_path is non-NULL, the CRL (which
 * must be signed by that CA). With a CRL every verification checks
 * revocation; sl_identity_trust_refresh re-reads the CRL when the file
 * changed, so a revocation takes effect at the next handshake. */
int sl_identity_trust_load(const char *ca_cert_path, const char *crl_path, sl_trust **out,
                           sl_err *err);
/* Re-reads the CRL if its file changed (inode, size or mtime). *generation
 * (may be NULL) receives a counter that grows with every reload. A CRL that
 * fails to load keeps the previous one and returns the error. */
int sl_identity_trust_refresh(sl_trust *t, uint64_t *generation, sl_err *err);
/* Fingerprint of the trusted CA key (for messages). */
const char *sl_identity_trust_ca_name(const sl_trust *t);
/* Verifies c: signed by the trusted CA, within its validity at `now` (0 means
 * the current time), of the given role, not revoked (when a CRL is loaded).
 * Errors say which check failed, naming the certificate's subject; a
 * certificate from another CA names both CAs. info (may be NULL) is filled on
 * success. */
int sl_identity_verify(sl_trust *t, const sl_cert *c, sl_identity_role role, time_t now,
                       sl_cert_info *info, sl_err *err);
/* 1 if serial is on the loaded CRL, 0 otherwise. */
int sl_identity_trust_revoked(const sl_trust *t, const uint8_t *serial, size_t serial_len);
void sl_identity_trust_free(sl_trust *t);

/* ---- Ed25519 over bytes (thin libsodium wrappers used by the channel) ---- */

void sl_identity_sign(uint8_t sig[64], const void *msg, size_t n,
                      const uint8_t sk[SL_IDENTITY_SK_BYTES]);
/* 0 if sig is valid; SL_ECRYPTO otherwise. */
int sl_identity_verify_sig(const uint8_t sig[64], const void *msg, size_t n,
                           const uint8_t pk[SL_IDENTITY_PK_BYTES]);

#endif
