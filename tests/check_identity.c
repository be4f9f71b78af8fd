/* Identities: keys round-trip through PEM files with the right modes, a
 * certificate's key is the key it was issued for, verification accepts what
 * the CA issued and refuses (with a message naming the cause) a certificate
 * from another CA, an expired or not-yet-valid one, a revoked one, the wrong
 * role, non-Ed25519 keys, group-readable key files and malformed bytes. */
#include <check.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/identity.h"
#include "shared/fsutil.h"
#include "tests/fixtures.h"

static char g_dir[256];

static const char *path_in(const char *dir, const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* A CA in a fresh folder: ca.crt, ca.key. */
static const char *make_ca(void)
{
    const char *d = sl_test_tmpdir();
    snprintf(g_dir, sizeof g_dir, "%s", d);
    sl_err err = {0};
    ck_assert_msg(sl_identity_ca_create(path_in(g_dir, "ca.crt"), path_in(g_dir, "ca.key"), NULL,
                                        &err) == 0,
                  "%s", err.msg);
    return g_dir;
}

static void issue(const char *dir, const char *name, sl_identity_role role,
                  const sl_identity_validity *v, const char *key_name, const char *crt_name,
                  sl_cert_info *info)
{
    sl_err err = {0};
    uint8_t pk[32];
    ck_assert_msg(sl_identity_keygen(path_in(dir, key_name), pk, &err) == 0, "%s", err.msg);
    ck_assert_msg(sl_identity_issue(path_in(dir, "ca.crt"), path_in(dir, "ca.key"), name, role,
                                    pk, v, path_in(dir, crt_name), info, &err) == 0,
                  "%s", err.msg);
}

START_TEST(test_key_round_trip)
{
    ck_assert_int_ge(sodium_init(), 0);
    const char *d = sl_test_tmpdir();
    sl_err err = {0};
    uint8_t pk[32], sk[64], sk2[64];
    const char *kp = path_in(d, "k.key");
    ck_assert_int_eq(sl_identity_keygen(kp, pk, &err), 0);
    struct stat st;
    ck_assert_int_eq(stat(kp, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(sl_identity_load_secret(kp, sk, &err), 0);
    ck_assert_mem_eq(sk + 32, pk, 32); /* libsodium layout: seed || pk */
    /* The loaded key signs, and the signature verifies with pk. */
    uint8_t sig[64];
    sl_identity_sign(sig, "abc", 3, sk);
    ck_assert_int_eq(sl_identity_verify_sig(sig, "abc", 3, pk), 0);
    ck_assert_int_eq(sl_identity_verify_sig(sig, "abd", 3, pk), SL_ECRYPTO);
    /* Write an existing secret to a new file: same key back. */
    const char *kp2 = path_in(d, "k2.key");
    ck_assert_int_eq(sl_identity_write_secret(kp2, sk, &err), 0);
    ck_assert_int_eq(sl_identity_load_secret(kp2, sk2, &err), 0);
    ck_assert_mem_eq(sk, sk2, 64);
    /* O_EXCL: an existing key file is never overwritten. */
    ck_assert_int_eq(sl_identity_write_secret(kp2, sk, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "already exists"));
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(sk2, sizeof sk2);
}
END_TEST

START_TEST(test_issue_and_verify)
{
    const char *d = make_ca();
    sl_cert_info si, vi;
    issue(d, "site-a", SL_IDENTITY_ROLE_SITE, NULL, "a.key", "a.crt", &si);
    sl_err err = {0};
    uint8_t pk[32], sk[64];
    ck_assert_int_eq(sl_identity_cert_pubkey(path_in(d, "a.crt"), pk, &err), 0);
    ck_assert_int_eq(sl_identity_load_secret(path_in(d, "a.key"), sk, &err), 0);
    ck_assert_mem_eq(pk, sk + 32, 32);
    ck_assert_mem_eq(pk, si.pk, 32);
    ck_assert_str_eq(si.name, "site-a");
    ck_assert_int_eq(si.role, SL_IDENTITY_ROLE_SITE);
    /* Default validity: one year from now (allow a minute of clock drift). */
    ck_assert_int_le(llabs(si.not_after - si.not_before - 365LL * 86400), 0);
    ck_assert_int_le(llabs(si.not_before - (int64_t)time(NULL)), 60);

    sl_trust *t = NULL;
    ck_assert_int_eq(sl_identity_trust_load(path_in(d, "ca.crt"), NULL, &t, &err), 0);
    ck_assert_ptr_nonnull(strstr(sl_identity_trust_ca_name(t), "sealora CA "));
    sl_cert *c = NULL;
    ck_assert_int_eq(sl_identity_cert_read(path_in(d, "a.crt"), &c, &err), 0);
    ck_assert_msg(sl_identity_verify(t, c, SL_IDENTITY_ROLE_SITE, 0, &vi, &err) == 0, "%s",
                  err.msg);
    ck_assert_mem_eq(vi.serial, si.serial, si.serial_len);
    /* DER round trip gives the same certificate. */
    uint8_t *der;
    size_t n;
    ck_assert_int_eq(sl_identity_cert_der(c, &der, &n, &err), 0);
    sl_cert *c2 = NULL;
    ck_assert_int_eq(sl_identity_cert_parse_der(der, n, &c2, &err), 0);
    ck_assert_int_eq(sl_identity_verify(t, c2, SL_IDENTITY_ROLE_SITE, 0, &vi, &err), 0);
    ck_assert_mem_eq(vi.pk, pk, 32);
    /* A site certificate is not a server certificate. */
    ck_assert_int_eq(sl_identity_verify(t, c, SL_IDENTITY_ROLE_SERVER, 0, NULL, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "not a server certificate") != NULL, "%s", err.msg);
    /* And the server's is not a site's. */
    sl_cert *s = NULL;
    issue(d, "server", SL_IDENTITY_ROLE_SERVER, NULL, "s.key", "s.crt", NULL);
    ck_assert_int_eq(sl_identity_cert_read(path_in(d, "s.crt"), &s, &err), 0);
    ck_assert_int_eq(sl_identity_verify(t, s, SL_IDENTITY_ROLE_SERVER, 0, &vi, &err), 0);
    ck_assert_int_eq(vi.role, SL_IDENTITY_ROLE_SERVER);
    ck_assert_int_eq(sl_identity_verify(t, s, SL_IDENTITY_ROLE_SITE, 0, NULL, &err), SL_ECRYPTO);
    free(der);
    sl_identity_cert_free(c);
    sl_identity_cert_free(c2);
    sl_identity_cert_free(s);
    sl_identity_trust_free(t);
    sodium_memzero(sk, sizeof sk);
}
END_TEST

START_TEST(test_csr_round_trip)
{
    const char *d = make_ca();
    sl_err err = {0};
    uint8_t pk[32], pk2[32];
    char name[SL_IDENTITY_NAME_MAX + 1];
    ck_assert_int_eq(sl_identity_keygen(path_in(d, "e.key"), pk, &err), 0);
    ck_assert_int_eq(sl_identity_csr_write(path_in(d, "e.key"), "home_site", path_in(d, "e.csr"),
                                           &err),
                     0);
    ck_assert_int_eq(sl_identity_csr_read(path_in(d, "e.csr"), name, pk2, &err), 0);
    ck_assert_str_eq(name, "home_site");
    ck_assert_mem_eq(pk, pk2, 32);
    /* A tampered request (its key replaced) no longer verifies. */
    uint8_t *buf;
    size_t n;
    ck_assert_int_eq(sl_fs_read_all(path_in(d, "e.csr"), 1 << 20, &buf, &n, &err), 0);
    BIO *b = BIO_new_mem_buf(buf, (int)n);
    X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    ck_assert_ptr_nonnull(req);
    uint8_t other[32], osk[64];
    crypto_sign_keypair(other, osk);
    EVP_PKEY *op = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, other, 32);
    ck_assert_int_eq(X509_REQ_set_pubkey(req, op), 1);
    FILE *f = fopen(path_in(d, "t.csr"), "w");
    ck_assert_int_eq(PEM_write_X509_REQ(f, req), 1);
    fclose(f);
    ck_assert_int_eq(sl_identity_csr_read(path_in(d, "t.csr"), name, pk2, &err), SL_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err.msg, "self-signature"));
    EVP_PKEY_free(op);
    X509_REQ_free(req);
    BIO_free(b);
    free(buf);
}
END_TEST

START_TEST(test_revocation_takes_effect)
{
    const char *d = make_ca();
    sl_cert_info a, b;
    issue(d, "a", SL_IDENTITY_ROLE_SITE, NULL, "a.key", "a.crt", &a);
    issue(d, "b", SL_IDENTITY_ROLE_SITE, NULL, "b.key", "b.crt", &b);
    sl_err err = {0};
    char crl[512];
    snprintf(crl, sizeof crl, "%s/crl.pem", d);
    ck_assert_int_eq(sl_identity_crl_write(path_in(d, "ca.crt"), path_in(d, "ca.key"), NULL, 0,
                                           crl, &err),
                     0);
    sl_trust *t = NULL;
    ck_assert_msg(sl_identity_trust_load(path_in(d, "ca.crt"), crl, &t, &err) == 0, "%s", err.msg);
    sl_cert *ca = NULL, *cb = NULL;
    ck_assert_int_eq(sl_identity_cert_read(path_in(d, "a.crt"), &ca, &err), 0);
    ck_assert_int_eq(sl_identity_cert_read(path_in(d, "b.crt"), &cb, &err), 0);
    ck_assert_msg(sl_identity_verify(t, ca, SL_IDENTITY_ROLE_SITE, 0, NULL, &err) == 0, "%s",
                  err.msg);
    uint64_t g1, g2;
    ck_assert_int_eq(sl_identity_trust_refresh(t, &g1, &err), 0);
    /* Revoke a: the refreshed trust refuses a, still accepts b. */
    sl_identity_revoked r = {.serial_len = a.serial_len};
    memcpy(r.serial, a.serial, a.serial_len);
    ck_assert_int_eq(sl_identity_crl_write(path_in(d, "ca.crt"), path_in(d, "ca.key"), &r, 1, crl,
                                           &err),
                     0);
    ck_assert_int_eq(sl_identity_trust_refresh(t, &g2, &err), 0);
    ck_assert_msg(g2 > g1, "%llu %llu", (unsigned long long)g1, (unsigned long long)g2);
    ck_assert_int_eq(sl_identity_verify(t, ca, SL_IDENTITY_ROLE_SITE, 0, NULL, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "'a' is revoked") != NULL, "%s", err.msg);
    ck_assert_int_eq(sl_identity_trust_revoked(t, a.serial, a.serial_len), 1);
    ck_assert_int_eq(sl_identity_trust_revoked(t, b.serial, b.serial_len), 0);
    ck_assert_int_eq(sl_identity_verify(t, cb, SL_IDENTITY_ROLE_SITE, 0, NULL, &err), 0);
    /* A CRL signed by another CA is refused; the loaded one stays. */
    const char *d2 = sl_test_tmpdir();
    ck_assert_int_eq(sl_identity_ca_create(path_in(d2, "ca.crt"), path_in(d2, "ca.key"), NULL,
                                           &err),
                     0);
    ck_assert_int_eq(sl_identity_crl_write(path_in(d2, "ca.crt"), path_in(d2, "ca.key"), NULL, 0,
                                           crl, &err),
                     0);
    ck_assert_int_eq(sl_identity_trust_refresh(t, &g1, &err), SL_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err.msg, "not signed by the CA"));
    ck_assert(g1 == g2);
    ck_assert_int_eq(sl_identity_verify(t, ca, SL_IDENTITY_ROLE_SITE, 0, NULL, &err), SL_ECRYPTO);
    sl_identity_cert_free(ca);
    sl_identity_cert_free(cb);
    sl_identity_trust_free(t);
}
END_TEST

START_TEST(test_names)
{
    sl_err err = {0};
    const char *good[] = {"a", "0", "site-1", "a_b-c", "abcdefghijklmnopqrstuvwxyz0123456789"
                                                       "abcdefghijklmnopqrstuvwxyz0"};
    const char *bad[] = {"", "-a", "_a", "A", "a.b", "a b", "a/b", "../x", "é",
                         "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ck_assert_msg(sl_identity_check_name(good[i], &err) == 0, "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(sl_identity_check_name(bad[i], &err) == SL_EINVAL, "%s", bad[i]);
        ck_assert_ptr_nonnull(strstr(err.msg, "invalid site name"));
    }
    ck_assert_int_eq(strlen(good[4]), 63);
    /* The CA refuses to issue for a bad name or a non-server server name. */
    const char *d = make_ca();
    uint8_t pk[32];
    ck_assert_int_eq(sl_identity_keygen(path_in(d, "x.key"), pk, &err), 0);
    ck_assert_int_eq(sl_identity_issue(path_in(d, "ca.crt"), path_in(d, "ca.key"), "Bad",
                                       SL_IDENTITY_ROLE_SITE, pk, NULL, path_in(d, "x.crt"), NULL,
                                       &err),
                     SL_EINVAL);
    ck_assert_int_eq(sl_identity_issue(path_in(d, "ca.crt"), path_in(d, "ca.key"), "a",
                                       SL_IDENTITY_ROLE_SERVER, pk, NULL, path_in(d, "x.crt"),
                                       NULL, &err),
                     SL_EINVAL);
    ck_assert(!sl_fs_exists(path_in(d, "x.crt")));
}
END_TEST

START_TEST(test_validity_limits)
{
    /* A CA that has been valid for a month, so that verifying "as of" a
     * past date is meaningful. */
    const char *d = sl_test_tmpdir();
    sl_err err = {0};
    sl_identity_validity cav = {.start = time(NULL) - 30 * 86400, .days = 3650};
    ck_assert_int_eq(sl_identity_ca_create(path_in(d, "ca.crt"), path_in(d, "ca.key"), &cav, &err),
                     0);
    uint8_t pk[32];
    ck_assert_int_eq(sl_identity_keygen(path_in(d, "x.key"), pk, &err), 0);
    sl_identity_validity v = {.days = -1};
    ck_assert_int_eq(sl_identity_issue(path_in(d, "ca.crt"), path_in(d, "ca.key"), "x",
                                       SL_IDENTITY_ROLE_SITE, pk, &v, path_in(d, "x.crt"), NULL,
                                       &err),
                     SL_EINVAL);
    v.days = SL_IDENTITY_MAX_DAYS + 1;
    ck_assert_int_eq(sl_identity_issue(path_in(d, "ca.crt"), path_in(d, "ca.key"), "x",
                                       SL_IDENTITY_ROLE_SITE, pk, &v, path_in(d, "x.crt"), NULL,
                                       &err),
                     SL_EINVAL);
    /* Expired and not-yet-valid certificates are refused with their dates. */
    sl_trust *t = NULL;
    ck_assert_int_eq(sl_identity_trust_load(path_in(d, "ca.crt"), NULL, &t, &err), 0);
    sl_identity_validity old = {.start = time(NULL) - 10 * 86400, .days = 2};
    sl_cert_info info;
    issue(d, "old", SL_IDENTITY_ROLE_SITE, &old, "o.key", "o.crt", &info);
    sl_cert *c = NULL;
    ck_assert_int_eq(sl_identity_cert_read(path_in(d, "o.crt"), &c, &err), 0);
    ck_assert_int_eq(sl_identity_verify(t, c, SL_IDENTITY_ROLE_SITE, 0, NULL, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "'old' expired on") != NULL, "%s", err.msg);
    /* ... but was fine while it was valid. */
    ck_assert_int_eq(sl_identity_verify(t, c, SL_IDENTITY_ROLE_SITE, old.start + 86400, NULL, &err),
                     0);
    sl_identity_cert_free(c);
    sl_identity_validity future = {.start = time(NULL) + 10 * 86400, .days = 2};
    issue(d, "future", SL_IDENTITY_ROLE_SITE, &future, "f.key", "f.crt", &info);
    ck_assert_int_eq(sl_identity_cert_read(path_in(d, "f.crt"), &c, &err), 0);
    ck_assert_int_eq(sl_identity_verify(t, c, SL_IDENTITY_ROLE_SITE, 0, NULL, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "not valid before") != NULL, "%s", err.msg);
    sl_identity_cert_free(c);
    /* DER size limit. */
    uint8_t big[SL_IDENTITY_MAX_DER + 1];
    memset(big, 0x30, sizeof big);
    ck_assert_int_eq(sl_identity_cert_parse_der(big, sizeof big, &c, &err), SL_ELIMIT);
    sl_identity_trust_free(t);
}
END_TEST

START_TEST(test_other_ca_named)
{
    const char *d1 = make_ca();
    char d1s[256];
    snprintf(d1s, sizeof d1s, "%s", d1);
    issue(d1s, "a", SL_IDENTITY_ROLE_SITE, NULL, "a.key", "a.crt", NULL);
    const char *d2 = make_ca();
    sl_err err = {0};
    sl_trust *t = NULL;
    ck_assert_int_eq(sl_identity_trust_load(path_in(d2, "ca.crt"), NULL, &t, &err), 0);
    sl_cert *c = NULL;
    ck_assert_int_eq(sl_identity_cert_read(path_in(d1s, "a.crt"), &c, &err), 0);
    sl_cert_info info;
    ck_assert_int_eq(sl_identity_cert_info(c, &info, &err), 0);
    ck_assert_int_eq(sl_identity_verify(t, c, SL_IDENTITY_ROLE_SITE, 0, NULL, &err), SL_ECRYPTO);
    /* The message names both CAs and the likely cause. */
    ck_assert_msg(strstr(err.msg, info.issuer) != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, sl_identity_trust_ca_name(t)) != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "rotated") != NULL, "%s", err.msg);
    /* A CA refuses to sign with a key that is not its own. */
    uint8_t pk[32];
    ck_assert_int_eq(sl_identity_keygen(path_in(d2, "y.key"), pk, &err), 0);
    ck_assert_int_eq(sl_identity_issue(path_in(d2, "ca.crt"), path_in(d1s, "ca.key"), "y",
                                       SL_IDENTITY_ROLE_SITE, pk, NULL, path_in(d2, "y.crt"), NULL,
                                       &err),
                     SL_ECRYPTO);
    ck_assert_ptr_nonnull(strstr(err.msg, "does not belong"));
    sl_identity_cert_free(c);
    sl_identity_trust_free(t);
}
END_TEST

START_TEST(test_key_file_mode_refused)
{
    const char *d = sl_test_tmpdir();
    sl_err err = {0};
    uint8_t pk[32], sk[64], keep[64];
    const char *kp = path_in(d, "k.key");
    ck_assert_int_eq(sl_identity_keygen(kp, pk, &err), 0);
    memset(sk, 0x77, sizeof sk);
    memcpy(keep, sk, sizeof sk);
    const unsigned modes[] = {0640, 0604, 0644, 0660, 0602};
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        ck_assert_int_eq(chmod(kp, modes[i]), 0);
        ck_assert_int_eq(sl_identity_load_secret(kp, sk, &err), SL_EINVAL);
        ck_assert_msg(strstr(err.msg, "group or others") != NULL, "%s", err.msg);
        ck_assert_mem_eq(sk, keep, sizeof sk); /* untouched */
    }
    ck_assert_int_eq(chmod(kp, 0400), 0);
    ck_assert_int_eq(sl_identity_load_secret(kp, sk, &err), 0);
    ck_assert_int_eq(sl_identity_load_secret(path_in(d, "missing.key"), sk, &err), SL_ENOTFOUND);
}
END_TEST

START_TEST(test_non_ed25519_refused)
{
    const char *d = sl_test_tmpdir();
    sl_err err = {0};
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(ec);
    const char *kp = path_in(d, "ec.key");
    FILE *f = fopen(kp, "w");
    ck_assert_int_eq(PEM_write_PrivateKey(f, ec, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    ck_assert_int_eq(chmod(kp, 0600), 0);
    uint8_t sk[64], pk[32];
    ck_assert_int_eq(sl_identity_load_secret(kp, sk, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "only Ed25519") != NULL, "%s", err.msg);
    /* A self-signed EC certificate: its key is refused. */
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, ec);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"a", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    ck_assert_int_gt(X509_sign(x, ec, EVP_sha256()), 0);
    const char *cp = path_in(d, "ec.crt");
    f = fopen(cp, "w");
    ck_assert_int_eq(PEM_write_X509(f, x), 1);
    fclose(f);
    ck_assert_int_eq(sl_identity_cert_pubkey(cp, pk, &err), SL_ECRYPTO);
    ck_assert_msg(strstr(err.msg, "only Ed25519") != NULL, "%s", err.msg);
    X509_free(x);
    EVP_PKEY_free(ec);
}
END_TEST

START_TEST(test_malformed_bytes)
{
    const char *d = make_ca();
    sl_cert_info info;
    issue(d, "a", SL_IDENTITY_ROLE_SITE, NULL, "a.key", "a.crt", &info);
    sl_err err = {0};
    sl_cert *c = NULL;
    ck_assert_int_eq(sl_identity_cert_read(path_in(d, "a.crt"), &c, &err), 0);
    uint8_t *der;
    size_t n;
    ck_assert_int_eq(sl_identity_cert_der(c, &der, &n, &err), 0);
    sl_trust *t = NULL;
    ck_assert_int_eq(sl_identity_trust_load(path_in(d, "ca.crt"), NULL, &t, &err), 0);
    /* Every truncation is refused; trailing bytes are refused. */
    for (size_t cut = 0; cut < n; cut++) {
        sl_cert *x = NULL;
        ck_assert_int_ne(sl_identity_cert_parse_der(der, cut, &x, &err), 0);
        ck_assert_ptr_null(x);
    }
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, der, n);
    longer[n] = 0;
    sl_cert *x = NULL;
    ck_assert_int_eq(sl_identity_cert_parse_der(longer, n + 1, &x, &err), SL_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "trailing"));
    /* Any single flipped bit: refused by the parser or by verification. */
    sl_test_rng rng = {11};
    for (int it = 0; it < 300; it++) {
        memcpy(longer, der, n);
        size_t bit = sl_test_rand(&rng) % (n * 8);
        longer[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        x = NULL;
        if (sl_identity_cert_parse_der(longer, n, &x, &err) == 0) {
            sl_cert_info vi;
            int rc = sl_identity_verify(t, x, SL_IDENTITY_ROLE_SITE, 0, &vi, &err);
            /* A flip in an unsigned field could in theory leave it valid;
             * then the identity must still be exactly the issued one. */
            if (rc == 0) {
                ck_assert_mem_eq(vi.pk, info.pk, 32);
                ck_assert_str_eq(vi.name, info.name);
            }
            sl_identity_cert_free(x);
        }
    }
    /* Garbage files. */
    const char *g = sl_test_write(d, "junk.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n", 32);
    ck_assert_int_eq(sl_identity_cert_read(g, &x, &err), SL_EFORMAT);
    uint8_t pk[32], sk[64];
    ck_assert_int_eq(sl_identity_cert_pubkey(g, pk, &err), SL_EFORMAT);
    const char *gk = sl_test_write(d, "junk.key", "not a key", 9);
    ck_assert_int_eq(chmod(gk, 0600), 0);
    ck_assert_int_eq(sl_identity_load_secret(gk, sk, &err), SL_EFORMAT);
    ck_assert_int_eq(sl_identity_csr_read(g, (char[64]){0}, pk, &err), SL_EFORMAT);
    free(longer);
    free(der);
    sl_identity_cert_free(c);
    sl_identity_trust_free(t);
}
END_TEST

Suite *identity_suite(void)
{
    Suite *s = suite_create("identity");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_key_round_trip);
    tcase_add_test(core, test_issue_and_verify);
    tcase_add_test(core, test_csr_round_trip);
    tcase_add_test(core, test_revocation_takes_effect);
    tcase_set_timeout(core, 60);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_names);
    tcase_add_test(lim, test_validity_limits);
    tcase_set_timeout(lim, 60);
    suite_add_tcase(s, lim);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_other_ca_named);
    tcase_add_test(bad, test_key_file_mode_refused);
    tcase_add_test(bad, test_non_ed25519_refused);
    tcase_add_test(bad, test_malformed_bytes);
    tcase_set_timeout(bad, 60);
    suite_add_tcase(s, bad);
    return s;
}
