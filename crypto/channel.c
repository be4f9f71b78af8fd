#include "crypto/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shared/fsutil.h"
#include "shared/transport.h"

/* ---- key schedule (docs/protocol.md, "Keys") ---------------------------- */

#define KDF_CTX "slchanv1" /* crypto_kdf context: 8 bytes */
enum { KDF_C2S = 1, KDF_S2C = 2, KDF_RESUME = 3, KDF_CONFIRM = 4 };

static const char L_HANDSHAKE[] = "sealora/v1 handshake";
static const char L_KEYS[] = "sealora/v1 keys";
static const char L_SERVER_SIG[] = "sealora/v1 server signature";
static const char L_CLIENT[] = "sealora/v1 client";
static const char L_CLIENT_SIG[] = "sealora/v1 client signature";
static const char L_RESUME_MAC[] = "sealora/v1 resume";
static const char L_RESUMPTION[] = "sealora/v1 resumption";
static const char L_RESUMED_KEYS[] = "sealora/v1 resumed keys";

/* Keys of one session (or one pending handshake), in sodium_malloc'd memory. */
typedef struct keyslot {
    uint8_t c2s[32], s2c[32]; /* XChaCha20-Poly1305 keys per direction */
    uint8_t rs[32];           /* resumption secret */
    uint8_t esk[32];          /* client: ephemeral X25519 secret while a handshake runs */
} keyslot;

static void h_update_lp(crypto_generichash_state *st, const void *p, size_t n)
{
    uint8_t len[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
    crypto_generichash_update(st, len, 4);
    crypto_generichash_update(st, p, n);
}

/* th1 = H(label, HELLO, HELLO_REPLY without its signature) */
static void transcript1(uint8_t th[32], const uint8_t *hello, size_t hn, const uint8_t *reply,
                        size_t rn)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)L_HANDSHAKE, sizeof L_HANDSHAKE);
    h_update_lp(&st, hello, hn);
    h_update_lp(&st, reply, rn);
    crypto_generichash_final(&st, th, 32);
}

/* th2 = H(label, th1, client certificate) */
static void transcript2(uint8_t th2[32], const uint8_t th1[32], const uint8_t *cert, size_t n)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)L_CLIENT, sizeof L_CLIENT);
    crypto_generichash_update(&st, th1, 32);
    h_update_lp(&st, cert, n);
    crypto_generichash_final(&st, th2, 32);
}

/* Ed25519 over label || th. */
static void sign_th(uint8_t sig[64], const char *label, size_t llen, const uint8_t th[32],
                    const uint8_t *sk)
{
    uint8_t msg[64 + 32];
    memcpy(msg, label, llen);
    memcpy(msg + llen, th, 32);
    crypto_sign_detached(sig, NULL, msg, llen + 32, sk);
}

static int verify_th(const uint8_t sig[64], const char *label, size_t llen, const uint8_t th[32],
                     const uint8_t pk[32])
{
    uint8_t msg[64 + 32];
    memcpy(msg, label, llen);
    memcpy(msg + llen, th, 32);
    return crypto_sign_verify_detached(sig, msg, llen + 32, pk);
}

/* Full handshake keys: prk = H_shared(label || th1). */
static void derive_full(keyslot *k, const uint8_t shared[32], const uint8_t th[32])
{
    uint8_t prk[32], msg[sizeof L_KEYS + 32];
    memcpy(msg, L_KEYS, sizeof L_KEYS);
    memcpy(msg + sizeof L_KEYS, th, 32);
    crypto_generichash(prk, 32, msg, sizeof msg, shared, 32);
    crypto_kdf_derive_from_key(k->c2s, 32, KDF_C2S, KDF_CTX, prk);
    crypto_kdf_derive_from_key(k->s2c, 32, KDF_S2C, KDF_CTX, prk);
    crypto_kdf_derive_from_key(k->rs, 32, KDF_RESUME, KDF_CTX, prk);
    sodium_memzero(prk, sizeof prk);
}

/* Resumed keys: prk = H_{shared || rs}(label || th_r); confirm key for the
 * RESUME_OK MAC. k->rs is replaced by the next resumption secret. */
static void derive_resumed(keyslot *k, uint8_t confirm[32], const uint8_t shared[32],
                           const uint8_t th[32])
{
    uint8_t prk[32], key[64], msg[sizeof L_RESUMED_KEYS + 32];
    memcpy(key, shared, 32);
    memcpy(key + 32, k->rs, 32);
    memcpy(msg, L_RESUMED_KEYS, sizeof L_RESUMED_KEYS);
    memcpy(msg + sizeof L_RESUMED_KEYS, th, 32);
    crypto_generichash(prk, 32, msg, sizeof msg, key, 64);
    crypto_kdf_derive_from_key(k->c2s, 32, KDF_C2S, KDF_CTX, prk);
    crypto_kdf_derive_from_key(k->s2c, 32, KDF_S2C, KDF_CTX, prk);
    crypto_kdf_derive_from_key(k->rs, 32, KDF_RESUME, KDF_CTX, prk);
    crypto_kdf_derive_from_key(confirm, 32, KDF_CONFIRM, KDF_CTX, prk);
    sodium_memzero(prk, sizeof prk);
    sodium_memzero(key, sizeof key);
}

/* MAC of a RESUME frame (all bytes before the MAC) under rs. */
static void resume_mac(uint8_t mac[32], const uint8_t *frame, size_t n, const uint8_t rs[32])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, rs, 32, 32);
    crypto_generichash_update(&st, (const uint8_t *)L_RESUME_MAC, sizeof L_RESUME_MAC);
    crypto_generichash_update(&st, frame, n);
    crypto_generichash_final(&st, mac, 32);
}

static void transcript_resume(uint8_t th[32], const uint8_t *resume, size_t rn,
                              const uint8_t *ok, size_t on)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)L_RESUMPTION, sizeof L_RESUMPTION);
    h_update_lp(&st, resume, rn);
    h_update_lp(&st, ok, on);
    crypto_generichash_final(&st, th, 32);
}

static void confirm_mac(uint8_t mac[32], const uint8_t confirm[32], const uint8_t th[32])
{
    crypto_generichash(mac, 32, th, 32, confirm, 32);
}

/* ---- sealed frames ------------------------------------------------------- */

/* Writes the sealed-frame header (fresh random nonce, returned in nonce)
 * in front of ptlen plaintext bytes at frame + SL_WIRE_SEALED_HDR. */
static void seal_header(uint8_t *frame, uint8_t type, const uint8_t sid[16], uint64_t ctr,
                        uint64_t ack, size_t ptlen, uint8_t nonce[SL_WIRE_AEAD_NONCE_BYTES])
{
    sl_wire_sealed h;
    memcpy(h.sid, sid, 16);
    h.counter = ctr;
    h.ack = ack;
    randombytes_buf(h.nonce, sizeof h.nonce);
    h.ct = NULL;
    h.ct_len = ptlen + SL_WIRE_TAG_BYTES;
    sl_wire_sealed_header(frame, type, &h);
    memcpy(nonce, h.nonce, sizeof h.nonce);
}

/* Encrypts the plaintext of src (header written by seal_header) into out,
 * which may be src itself: header copied, ciphertext, tag. The same inputs
 * give the same bytes, so a frame can be sealed again for a re-send. */
static void seal_to(uint8_t *out, const uint8_t *src, size_t ptlen,
                    const uint8_t nonce[SL_WIRE_AEAD_NONCE_BYTES], const uint8_t key[32])
{
    if (out != src)
        memcpy(out, src, SL_WIRE_SEALED_HDR);
    uint8_t *ct = out + SL_WIRE_SEALED_HDR;
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ct, ct + ptlen, NULL,
                                                        src + SL_WIRE_SEALED_HDR, ptlen, out,
                                                        SL_WIRE_SEALED_HDR, NULL, nonce, key);
}

/* frame = [header 64][plaintext ptlen][tag 16]; the plaintext is already in
 * place. Encrypts in place with a fresh random nonce. */
static void seal_in_place(uint8_t *frame, uint8_t type, const uint8_t sid[16], uint64_t ctr,
                          uint64_t ack, size_t ptlen, const uint8_t key[32])
{
    uint8_t nonce[SL_WIRE_AEAD_NONCE_BYTES];
    seal_header(frame, type, sid, ctr, ack, ptlen, nonce);
    seal_to(frame, frame, ptlen, nonce, key);
}

/* Decrypts the ciphertext of a decoded sealed frame in place. verify_only
 * checks the tag without touching the bytes. */
static int open_in_place(uint8_t *frame, const sl_wire_sealed *h, const uint8_t key[32],
                         int verify_only, uint8_t **pt, size_t *ptlen)
{
    uint8_t *ct = frame + SL_WIRE_SEALED_HDR;
    size_t mlen = h->ct_len - SL_WIRE_TAG_BYTES;
    if (h->ct != ct)
        return SL_EFORMAT; /* the codec guarantees this layout */
    if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(verify_only ? NULL : ct, NULL, ct,
                                                            mlen, ct + mlen, frame,
                                                            SL_WIRE_SEALED_HDR, h->nonce,
                                                            key) != 0)
        return SL_ECRYPTO;
    if (pt) {
        *pt = ct;
        *ptlen = mlen;
    }
    return 0;
}

static uint64_t mono_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void hex8(const uint8_t *b, char out[17])
{
    sodium_bin2hex(out, 17, b, 8);
}

static void default_log(void *ctx, sl_chan_log_level level, const char *line)
{
    (void)ctx;
    fprintf(stderr, "sealora channel: %s%s\n", level == SL_CHAN_LOG_WARN ? "warning: " : "",
            line);
}

static void vlogf(sl_chan_log_fn fn, void *ctx, sl_chan_log_level level, const char *fmt,
                  va_list ap)
{
    char line[SL_ERR_MSG_MAX + 128];
    vsnprintf(line, sizeof line, fmt, ap);
    (fn ? fn : default_log)(ctx, level, line);
}

/* ---- configuration files ------------------------------------------------ */

typedef struct ini_ctx {
    const char *path;
    char dir[SL_CHAN_PATH_MAX];
    int is_server;
    sl_chan_server_cfg *s;
    sl_chan_client_cfg *c;
    char bad[300]; /* first problem, for the error message */
    unsigned seen; /* bit per required key */
} ini_ctx;

static int set_path(ini_ctx *x, char *dst, const char *value)
{
    int n = value[0] == '/' ? snprintf(dst, SL_CHAN_PATH_MAX, "%s", value)
                            : snprintf(dst, SL_CHAN_PATH_MAX, "%s/%s", x->dir, value);
    return n > 0 && n < SL_CHAN_PATH_MAX;
}

static int set_u32(const char *value, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (!*value || *end || errno || v < lo || v > hi || value[0] == '-')
        return 0;
    *out = (uint32_t)v;
    return 1;
}

static int set_str(char *dst, size_t cap, const char *value)
{
    int n = snprintf(dst, cap, "%s", value);
    return n >= 0 && (size_t)n < cap;
}

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx *x = user;
    int ok = 0, known = 1;
    uint32_t u = 0;
    /* server.ini's [run] section belongs to the federated runtime's own
     * loader (server/runcfg), which refuses what it does not know. */
    if (x->is_server && strcmp(section, "run") == 0)
        return 1;
    if (x->is_server && strcmp(section, "server") == 0) {
        sl_chan_server_cfg *s = x->s;
        if (!strcmp(name, "listen"))
            ok = set_str(s->listen, sizeof s->listen, value), x->seen |= 1;
        else if (!strcmp(name, "cert"))
            ok = set_path(x, s->cert, value), x->seen |= 2;
        else if (!strcmp(name, "key"))
            ok = set_path(x, s->key, value), x->seen |= 4;
        else if (!strcmp(name, "ca"))
            ok = set_path(x, s->ca, value), x->seen |= 8;
        else if (!strcmp(name, "crl"))
            ok = value[0] ? set_path(x, s->crl, value) : (s->crl[0] = 0, 1);
        else if (!strcmp(name, "session_ttl"))
            ok = set_u32(value, 1, SL_CHAN_MAX_TTL, &s->session_ttl);
        else if (!strcmp(name, "ticket_ttl"))
            ok = set_u32(value, 1, SL_CHAN_MAX_TTL, &s->ticket_ttl);
        else if (!strcmp(name, "max_sessions"))
            ok = set_u32(value, 1, SL_CHAN_MAX_SESSIONS, &s->max_sessions);
        else
            known = 0;
    } else if (!x->is_server && strcmp(section, "site") == 0) {
        sl_chan_client_cfg *c = x->c;
        if (!strcmp(name, "name"))
            ok = set_str(c->name, sizeof c->name, value) && sl_identity_check_name(value, NULL) == 0,
            x->seen |= 1;
        else if (!strcmp(name, "cert"))
            ok = set_path(x, c->cert, value), x->seen |= 2;
        else if (!strcmp(name, "key"))
            ok = set_path(x, c->key, value), x->seen |= 4;
        else if (!strcmp(name, "ca"))
            ok = set_path(x, c->ca, value), x->seen |= 8;
        else if (!strcmp(name, "crl"))
            ok = value[0] ? set_path(x, c->crl, value) : (c->crl[0] = 0, 1);
        else
            known = 0;
    } else if (!x->is_server && strcmp(section, "server") == 0) {
        sl_chan_client_cfg *c = x->c;
        if (!strcmp(name, "address"))
            ok = set_str(c->server, sizeof c->server, value), x->seen |= 16;
        else if (!strcmp(name, "timeout")) {
            ok = set_u32(value, 1, 86400, &u);
            c->timeout_ms = (int)u * 1000;
        } else if (!strcmp(name, "resend_interval")) {
            ok = set_u32(value, 1, 86400, &u);
            c->resend_ivl_ms = (int)u * 1000;
        } else
            known = 0;
    } else {
        known = 0;
    }
    if (!known) {
        snprintf(x->bad, sizeof x->bad, "unknown key '%.60s' in section [%.60s]", name, section);
        return 0;
    }
    if (!ok) {
        snprintf(x->bad, sizeof x->bad, "bad value '%.100s' for %.60s", value, name);
        return 0;
    }
    return 1;
}

static int load_ini(const char *path, ini_ctx *x, unsigned required, const char *const *names,
                    sl_err *err)
{
    x->path = path;
    char tmp[SL_CHAN_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return sl_err_set(err, SL_ELIMIT, "%.80s...: path too long", path);
    char *slash = strrchr(tmp, '/');
    if (slash)
        *slash = 0;
    snprintf(x->dir, sizeof x->dir, "%s", slash ? (tmp[0] ? tmp : "/") : ".");
    if (!sl_fs_exists(path))
        return sl_err_set(err, SL_ENOTFOUND, "%s: no such configuration file", path);
    int line = ini_parse(path, ini_cb, x);
    if (line < 0)
        return sl_err_errno(err, "%s: cannot read", path);
    if (line > 0)
        return sl_err_set(err, SL_EINVAL, "%s:%d: %s", path, line,
                          x->bad[0] ? x->bad : "syntax error");
    for (int i = 0; names[i]; i++)
        if ((required & (1u << i)) && !(x->seen & (1u << i)))
            return sl_err_set(err, SL_EINVAL, "%s: missing required key '%s'", path, names[i]);
    return 0;
}

int sl_chan_server_config_load(const char *ini_path, sl_chan_server_cfg *cfg, sl_err *err)
{
    sl_chan_server_cfg t;
    memset(&t, 0, sizeof t);
    ini_ctx x;
    memset(&x, 0, sizeof x);
    x.is_server = 1;
    x.s = &t;
    static const char *const names[] = {"[server] listen", "[server] cert", "[server] key",
                                        "[server] ca", NULL};
    int rc = load_ini(ini_path, &x, 0xf, names, err);
    if (rc)
        return rc;
    *cfg = t;
    return 0;
}

int sl_chan_client_config_load(const char *ini_path, sl_chan_client_cfg *cfg, sl_err *err)
{
    sl_chan_client_cfg t;
    memset(&t, 0, sizeof t);
    ini_ctx x;
    memset(&x, 0, sizeof x);
    x.c = &t;
    static const char *const names[] = {"[site] name", "[site] cert", "[site] key", "[site] ca",
                                        "[server] address", NULL};
    int rc = load_ini(ini_path, &x, 0x1f, names, err);
    if (rc)
        return rc;
    *cfg = t;
    return 0;
}

/* ---- identity loading shared by both ends -------------------------------- */

typedef struct own_identity {
    uint8_t *sk;       /* sodium_malloc'd, 64 bytes */
    uint8_t *cert_der; /* malloc'd */
    size_t cert_len;
    sl_cert_info info;
    sl_trust *trust;
} own_identity;

static void own_free(own_identity *o)
{
    sodium_free(o->sk);
    free(o->cert_der);
    sl_identity_trust_free(o->trust);
    memset(o, 0, sizeof *o);
}

static int own_load(own_identity *o, const char *cert, const char *key, const char *ca,
                    const char *crl, sl_identity_role role, sl_err *err)
{
    memset(o, 0, sizeof *o);
    if (sodium_init() < 0)
        return sl_err_set(err, SL_ECRYPTO, "libsodium failed to initialise");
    sl_cert *c = NULL;
    int rc = 0;
    o->sk = sodium_malloc(SL_IDENTITY_SK_BYTES);
    if (!o->sk) {
        rc = sl_err_set(err, SL_ENOMEM, "cannot allocate secure memory for the key");
        goto fail;
    }
    if ((rc = sl_identity_load_secret(key, o->sk, err)))
        goto fail;
    if ((rc = sl_identity_trust_load(ca, crl && crl[0] ? crl : NULL, &o->trust, err)))
        goto fail;
    if ((rc = sl_identity_cert_read(cert, &c, err)))
        goto fail;
    /* Our own certificate must verify too: a kit from an old CA or an
     * expired certificate is reported here, before any network traffic. */
    if ((rc = sl_identity_verify(o->trust, c, role, 0, &o->info, err))) {
        sl_err_prefix(err, "%s", cert);
        goto fail;
    }
    if (sodium_memcmp(o->info.pk, o->sk + 32, 32) != 0) {
        rc = sl_err_set(err, SL_ECRYPTO, "%s does not belong to the certificate %s", key, cert);
        goto fail;
    }
    if ((rc = sl_identity_cert_der(c, &o->cert_der, &o->cert_len, err)))
        goto fail;
    sl_identity_cert_free(c);
    return 0;
fail:
    sl_identity_cert_free(c);
    own_free(o);
    return rc;
}

/* ---- server ---------------------------------------------------------------- */

enum { LAST_NONE = 0 };

/* An earlier DATA a session accepted and the answer sent to it, kept so a
 * re-send of any request still in a site's window is answered from here. */
typedef struct answered {
    uint64_t counter;
    uint8_t nonce[SL_WIRE_AEAD_NONCE_BYTES];
    uint8_t tag[SL_WIRE_TAG_BYTES];
    uint8_t route[SL_TRANSPORT_ROUTE_MAX];
    size_t route_len;
    uint8_t *reply; /* malloc; NULL when the slot is free */
    size_t reply_len;
} answered;

typedef struct sess {
    int used;
    int ready;  /* keys usable: not expired, not closed */
    int ticket; /* resumption allowed */
    uint8_t sid[16];
    char peer[SL_IDENTITY_NAME_MAX + 1];
    uint8_t serial[20];
    size_t serial_len;
    int64_t cert_not_after; /* wall clock, seconds */
    uint64_t rx_last;       /* last accepted client counter */
    uint64_t tx_next;       /* next server counter */
    uint64_t crl_gen;       /* CRL generation the serial was last checked against */
    uint64_t born_ms, expires_ms, ticket_expires_ms, used_ms;
    uint8_t last_kind; /* type of the last accepted client frame */
    uint8_t last_nonce[SL_WIRE_AEAD_NONCE_BYTES];
    uint8_t last_tag[SL_WIRE_TAG_BYTES];
    uint8_t last_hash[32]; /* RESUME frame that created this session */
    uint8_t resumed_from[16];
    uint8_t route[SL_TRANSPORT_ROUTE_MAX]; /* where the last accepted frame came from */
    size_t route_len;
    uint8_t *reply; /* cached answer to the last accepted frame (malloc) */
    size_t reply_len;
    /* answers to the SL_CHAN_WINDOW - 1 DATA frames accepted before it */
    answered older[SL_CHAN_WINDOW - 1];
    unsigned older_next; /* slot the next one goes to */
} sess;

typedef struct pend {
    int used;
    uint8_t sid[16];
    uint8_t hello_hash[32];
    uint8_t th[32];
    uint8_t *reply; /* cached HELLO_REPLY */
    size_t reply_len;
    uint64_t born_ms;
    uint8_t route[SL_TRANSPORT_ROUTE_MAX];
    size_t route_len;
} pend;

typedef struct xfile {
    char name[SL_WIRE_MAX_NAME + 1];
    char path[SL_CHAN_PATH_MAX];
    int fd;
    struct stat st;
    uint8_t digest[32];
} xfile;

struct sl_chan_server {
    sl_chan_server_cfg cfg;
    own_identity id;
    char fpr[SL_IDENTITY_FPR_CHARS + 1];
    uint64_t crl_gen;
    uint32_t nsess;
    sess *sess;
    pend pend[SL_CHAN_MAX_PENDING];
    keyslot *keys; /* nsess + SL_CHAN_MAX_PENDING slots, sodium_allocarray */
    xfile files[SL_CHAN_MAX_FILES];
    int nfiles;
    uint8_t *scratch; /* last ERROR or one-off frame (malloc) */
    size_t scratch_len;
    const uint8_t *route; /* route of the frame being processed (borrowed) */
    size_t route_len;
    size_t *route_kept; /* the route length stored for the answer being sent, or NULL */
    int cur; /* session whose request awaits its reply, -1 if none */
    uint64_t cur_counter;
    sl_transport *tp;
    sl_transport_msg msg; /* the request frame awaiting its reply */
    sl_chan_server_stats stats;
};

static void slog(sl_chan_server *s, sl_chan_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void slog(sl_chan_server *s, sl_chan_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlogf(s->cfg.log, s->cfg.log_ctx, level, fmt, ap);
    va_end(ap);
}

static uint64_t snow(const sl_chan_server *s)
{
    return s->cfg.clock ? s->cfg.clock(s->cfg.clock_ctx) : mono_ms(NULL);
}

static keyslot *skeys(sl_chan_server *s, uint32_t slot) { return &s->keys[slot]; }

static void older_clear(sess *x)
{
    for (unsigned j = 0; j < SL_CHAN_WINDOW - 1; j++) {
        free(x->older[j].reply);
        memset(&x->older[j], 0, sizeof x->older[j]);
    }
    x->older_next = 0;
}

/* A new DATA is accepted: the answer to the previous one moves to the
 * ring of older answers (the oldest there is forgotten). */
static void older_push(sess *x)
{
    if (x->last_kind != SL_WIRE_DATA || !x->reply) {
        free(x->reply);
        x->reply = NULL;
        x->reply_len = 0;
        return;
    }
    answered *o = &x->older[x->older_next];
    x->older_next = (x->older_next + 1) % (SL_CHAN_WINDOW - 1);
    free(o->reply);
    o->counter = x->rx_last;
    memcpy(o->nonce, x->last_nonce, sizeof o->nonce);
    memcpy(o->tag, x->last_tag, sizeof o->tag);
    memcpy(o->route, x->route, x->route_len);
    o->route_len = x->route_len;
    o->reply = x->reply;
    o->reply_len = x->reply_len;
    x->reply = NULL;
    x->reply_len = 0;
}

static void sess_destroy(sl_chan_server *s, int i)
{
    sess *x = &s->sess[i];
    sodium_memzero(skeys(s, (uint32_t)i), sizeof(keyslot));
    older_clear(x);
    free(x->reply);
    memset(x, 0, sizeof *x);
}

static void pend_destroy(sl_chan_server *s, int i)
{
    pend *p = &s->pend[i];
    sodium_memzero(skeys(s, s->nsess + (uint32_t)i), sizeof(keyslot));
    free(p->reply);
    memset(p, 0, sizeof *p);
}

int sl_chan_server_create(const sl_chan_server_cfg *cfg, sl_chan_server **out, sl_err *err)
{
    sl_chan_server *s = calloc(1, sizeof *s);
    if (!s)
        return sl_err_set(err, SL_ENOMEM, "server: out of memory");
    s->cfg = *cfg;
    if (!s->cfg.session_ttl)
        s->cfg.session_ttl = SL_CHAN_DEFAULT_SESSION_TTL;
    if (!s->cfg.ticket_ttl)
        s->cfg.ticket_ttl = SL_CHAN_DEFAULT_TICKET_TTL;
    if (!s->cfg.max_sessions)
        s->cfg.max_sessions = SL_CHAN_DEFAULT_MAX_SESSIONS;
    s->cur = -1;
    for (int i = 0; i < (int)SL_CHAN_MAX_FILES; i++)
        s->files[i].fd = -1;
    int rc = 0;
    if (s->cfg.session_ttl > SL_CHAN_MAX_TTL || s->cfg.ticket_ttl > SL_CHAN_MAX_TTL ||
        s->cfg.max_sessions > SL_CHAN_MAX_SESSIONS) {
        rc = sl_err_set(err, SL_ELIMIT, "server: session_ttl/ticket_ttl at most %u s, "
                        "max_sessions at most %u", SL_CHAN_MAX_TTL, SL_CHAN_MAX_SESSIONS);
        goto fail;
    }
    if ((rc = own_load(&s->id, cfg->cert, cfg->key, cfg->ca, cfg->crl, SL_IDENTITY_ROLE_SERVER,
                       err)))
        goto fail;
    sl_identity_fingerprint(s->id.info.pk, s->fpr);
    sl_identity_trust_refresh(s->id.trust, &s->crl_gen, NULL);
    s->nsess = s->cfg.max_sessions;
    s->sess = calloc(s->nsess, sizeof *s->sess);
    s->keys = sodium_allocarray(s->nsess + SL_CHAN_MAX_PENDING, sizeof(keyslot));
    if (!s->sess || !s->keys) {
        rc = sl_err_set(err, SL_ENOMEM, "server: cannot allocate %u sessions", s->nsess);
        goto fail;
    }
    sodium_memzero(s->keys, (s->nsess + SL_CHAN_MAX_PENDING) * sizeof(keyslot));
    *out = s;
    return 0;
fail:
    sl_chan_server_free(s);
    return rc;
}

void sl_chan_server_free(sl_chan_server *s)
{
    if (!s)
        return;
    if (s->sess)
        for (uint32_t i = 0; i < s->nsess; i++)
            if (s->sess[i].used)
                sess_destroy(s, (int)i);
    if (s->keys)
        for (int i = 0; i < (int)SL_CHAN_MAX_PENDING; i++)
            if (s->pend[i].used)
                pend_destroy(s, i);
    for (int i = 0; i < (int)SL_CHAN_MAX_FILES; i++)
        if (s->files[i].fd >= 0)
            close(s->files[i].fd);
    sodium_free(s->keys); /* zeroes */
    free(s->sess);
    free(s->scratch);
    sl_transport_msg_free(&s->msg);
    sl_transport_close(s->tp);
    own_free(&s->id);
    free(s);
}

void sl_chan_server_get_stats(const sl_chan_server *s, sl_chan_server_stats *st)
{
    *st = s->stats;
    st->sessions = 0;
    for (uint32_t i = 0; i < s->nsess; i++)
        st->sessions += s->sess[i].used && s->sess[i].ready;
}

static void keep_route(sl_chan_server *s, uint8_t *route, size_t *route_len)
{
    if (s->route_len)
        memcpy(route, s->route, s->route_len);
    *route_len = s->route_len;
    s->route_kept = route_len;
}

/* A re-send that came along the route of the frame it repeats is a REQ timer
 * re-send on a live connection: the answer is already on that connection,
 * so nothing is sent (*reply NULL). From another route (a reconnect) the
 * cached answer goes out again and the route is remembered. */
static void answer_resend(sl_chan_server *s, uint8_t *route, size_t *route_len,
                          const uint8_t *cached, size_t cached_len, const uint8_t **reply,
                          size_t *rlen)
{
    s->stats.resent++;
    if (s->route_len && s->route_len == *route_len && memcmp(s->route, route, *route_len) == 0) {
        *reply = NULL;
        *rlen = 0;
        return;
    }
    keep_route(s, route, route_len);
    *reply = cached;
    *rlen = cached_len;
}


static void set_scratch(sl_chan_server *s, uint8_t *buf, size_t n)
{
    free(s->scratch);
    s->scratch = buf;
    s->scratch_len = n;
}

/* Answers with an ERROR frame and returns code, err set to the reason. */
static int refuse(sl_chan_server *s, int code, uint16_t wire_code, const uint8_t **reply,
                  size_t *rlen, sl_err *err, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static int refuse(sl_chan_server *s, int code, uint16_t wire_code, const uint8_t **reply,
                  size_t *rlen, sl_err *err, const char *fmt, ...)
{
    sl_wire_msg m;
    memset(&m, 0, sizeof m);
    m.type = SL_WIRE_ERROR;
    m.u.error.code = wire_code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m.u.error.msg, sizeof m.u.error.msg, fmt, ap);
    va_end(ap);
    for (char *p = m.u.error.msg; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    s->stats.refused++;
    slog(s, SL_CHAN_LOG_WARN, "refused (%s): %s", sl_wire_code_name(wire_code), m.u.error.msg);
    uint8_t *buf = NULL;
    size_t n = 0;
    if (sl_wire_encode(&m, &buf, &n, NULL) == 0)
        set_scratch(s, buf, n);
    else
        set_scratch(s, NULL, 0);
    *reply = s->scratch;
    *rlen = s->scratch_len;
    return sl_err_set(err, code, "%s", m.u.error.msg);
}

static int find_sess(const sl_chan_server *s, const uint8_t sid[16])
{
    for (uint32_t i = 0; i < s->nsess; i++)
        if (s->sess[i].used && memcmp(s->sess[i].sid, sid, 16) == 0)
            return (int)i;
    return -1;
}

static int find_pend(const sl_chan_server *s, const uint8_t sid[16])
{
    for (int i = 0; i < (int)SL_CHAN_MAX_PENDING; i++)
        if (s->pend[i].used && memcmp(s->pend[i].sid, sid, 16) == 0)
            return i;
    return -1;
}

static void fresh_sid(const sl_chan_server *s, uint8_t sid[16])
{
    do
        randombytes_buf(sid, 16);
    while (find_sess(s, sid) >= 0 || find_pend(s, sid) >= 0);
}

/* Drops what has expired: pending handshakes, sessions whose ticket ran
 * out; wipes the traffic keys of sessions past their expiry. */
static void housekeeping(sl_chan_server *s, uint64_t now)
{
    for (int i = 0; i < (int)SL_CHAN_MAX_PENDING; i++)
        if (s->pend[i].used && now - s->pend[i].born_ms > SL_CHAN_PENDING_TTL_MS)
            pend_destroy(s, i);
    for (uint32_t i = 0; i < s->nsess; i++) {
        sess *x = &s->sess[i];
        if (!x->used)
            continue;
        if (now >= x->ticket_expires_ms && now >= x->expires_ms) {
            sess_destroy(s, (int)i);
        } else if (x->ready && now >= x->expires_ms) {
            keyslot *k = skeys(s, i);
            sodium_memzero(k->c2s, 32);
            sodium_memzero(k->s2c, 32);
            x->ready = 0;
            older_clear(x); /* an expired session answers no re-send */
        }
    }
}

/* Expiry of a new session: ttl from now, capped by the certificate. */
static uint64_t capped(uint64_t now, uint32_t ttl_s, int64_t not_after)
{
    int64_t left = not_after - (int64_t)time(NULL);
    uint64_t cap = left > 0 ? (uint64_t)left * 1000u : 0;
    uint64_t t = (uint64_t)ttl_s * 1000u;
    return now + (t < cap ? t : cap);
}

/* A slot for a new session of peer: the peer's oldest beyond its quota
 * goes first, then any session without a live ticket, then the least
 * recently used expired one. -1 if all are live. */
static int new_slot(sl_chan_server *s, const char *peer, uint64_t now)
{
    int count = 0, oldest = -1;
    for (uint32_t i = 0; i < s->nsess; i++) {
        sess *x = &s->sess[i];
        if (x->used && strcmp(x->peer, peer) == 0) {
            count++;
            if (oldest < 0 || x->used_ms < s->sess[oldest].used_ms)
                oldest = (int)i;
        }
    }
    if (count >= (int)SL_CHAN_SESSIONS_PER_PEER && oldest >= 0) {
        sess_destroy(s, oldest);
        return oldest;
    }
    int lru = -1;
    for (uint32_t i = 0; i < s->nsess; i++) {
        sess *x = &s->sess[i];
        if (!x->used)
            return (int)i;
        if (!x->ready && (lru < 0 || x->used_ms < s->sess[lru].used_ms))
            lru = (int)i;
    }
    (void)now;
    if (lru >= 0)
        sess_destroy(s, lru);
    return lru;
}

static int on_hello(sl_chan_server *s, const sl_wire_msg *m, const uint8_t *frame, size_t n,
                    const uint8_t **reply, size_t *rlen, sl_err *err)
{
    uint64_t now = snow(s);
    uint8_t hh[32];
    crypto_generichash(hh, 32, frame, n, NULL, 0);
    for (int i = 0; i < (int)SL_CHAN_MAX_PENDING; i++)
        if (s->pend[i].used && sodium_memcmp(s->pend[i].hello_hash, hh, 32) == 0) {
            /* REQ re-sent the HELLO: the same answer, or none (see above) */
            answer_resend(s, s->pend[i].route, &s->pend[i].route_len, s->pend[i].reply,
                          s->pend[i].reply_len, reply, rlen);
            return 0;
        }
    int slot = -1;
    for (int i = 0; i < (int)SL_CHAN_MAX_PENDING && slot < 0; i++)
        if (!s->pend[i].used)
            slot = i;
    if (slot < 0) { /* full: the oldest unfinished handshake goes */
        slot = 0;
        for (int i = 1; i < (int)SL_CHAN_MAX_PENDING; i++)
            if (s->pend[i].born_ms < s->pend[slot].born_ms)
                slot = i;
        pend_destroy(s, slot);
    }
    uint8_t esk[32], shared[32];
    sl_wire_msg r;
    memset(&r, 0, sizeof r);
    r.type = SL_WIRE_HELLO_REPLY;
    sl_wire_hello_reply *h = &r.u.hello_reply;
    fresh_sid(s, h->sid);
    randombytes_buf(esk, 32);
    crypto_scalarmult_base(h->eph, esk);
    randombytes_buf(h->rand, sizeof h->rand);
    h->session_ttl = s->cfg.session_ttl;
    h->ticket_ttl = s->cfg.ticket_ttl;
    h->cert = s->id.cert_der;
    h->cert_len = s->id.cert_len;
    int bad_point = crypto_scalarmult(shared, esk, m->u.hello.eph) != 0;
    sodium_memzero(esk, sizeof esk);
    if (bad_point) {
        sodium_memzero(shared, sizeof shared);
        return refuse(s, SL_ECRYPTO, SL_WIRE_ERR_AUTH, reply, rlen, err,
                      "HELLO: ephemeral key is a low-order point");
    }
    uint8_t *buf = NULL;
    size_t bn = 0;
    int rc = sl_wire_encode(&r, &buf, &bn, err);
    if (rc) {
        sodium_memzero(shared, sizeof shared);
        return refuse(s, rc, SL_WIRE_ERR_MALFORMED, reply, rlen, NULL, "server: cannot encode");
    }
    pend *p = &s->pend[slot];
    transcript1(p->th, frame, n, buf, bn - SL_WIRE_SIG_BYTES);
    sign_th(buf + bn - SL_WIRE_SIG_BYTES, L_SERVER_SIG, sizeof L_SERVER_SIG, p->th, s->id.sk);
    derive_full(skeys(s, s->nsess + (uint32_t)slot), shared, p->th);
    sodium_memzero(shared, sizeof shared);
    p->used = 1;
    memcpy(p->sid, h->sid, 16);
    memcpy(p->hello_hash, hh, 32);
    p->reply = buf;
    p->reply_len = bn;
    p->born_ms = now;
    keep_route(s, p->route, &p->route_len);
    *reply = buf;
    *rlen = bn;
    return 0;
}

/* Seals an inner message for session i into a fresh malloc'd frame that
 * becomes the session's cached reply. */
static int sess_seal(sl_chan_server *s, int i, uint8_t type, uint64_t ack, const uint8_t *pt,
                     size_t ptlen, uint64_t counter, sl_err *err)
{
    sess *x = &s->sess[i];
    uint8_t *buf = malloc(SL_WIRE_SEALED_HDR + ptlen + SL_WIRE_TAG_BYTES);
    if (!buf)
        return sl_err_set(err, SL_ENOMEM, "server: cannot allocate a %zu-byte reply", ptlen);
    if (ptlen)
        memcpy(buf + SL_WIRE_SEALED_HDR, pt, ptlen);
    seal_in_place(buf, type, x->sid, counter, ack, ptlen, skeys(s, (uint32_t)i)->s2c);
    free(x->reply);
    x->reply = buf;
    x->reply_len = SL_WIRE_SEALED_HDR + ptlen + SL_WIRE_TAG_BYTES;
    return 0;
}

/* 1 if frame is a re-send of the last frame session x accepted: same
 * counter, nonce and tag, and it authenticates. */
static int is_resend(sl_chan_server *s, int i, uint8_t *frame, const sl_wire_sealed *h,
                     uint8_t type)
{
    sess *x = &s->sess[i];
    /* No cached answer yet: a request the application deferred (answered
     * later along the route the re-send leaves behind). */
    if (x->last_kind != type || h->counter != x->rx_last)
        return 0;
    const uint8_t *tag = h->ct + h->ct_len - SL_WIRE_TAG_BYTES;
    if (sodium_memcmp(x->last_nonce, h->nonce, sizeof x->last_nonce) != 0 ||
        sodium_memcmp(x->last_tag, tag, sizeof x->last_tag) != 0)
        return 0;
    return open_in_place(frame, h, skeys(s, (uint32_t)i)->c2s, 1, NULL, NULL) == 0;
}

/* The ring entry frame re-sends (an earlier DATA of the window: same
 * counter, nonce and tag, and it authenticates), or NULL. */
static answered *older_resend(sl_chan_server *s, int i, uint8_t *frame, const sl_wire_sealed *h)
{
    sess *x = &s->sess[i];
    const uint8_t *tag = h->ct + h->ct_len - SL_WIRE_TAG_BYTES;
    for (unsigned j = 0; j < SL_CHAN_WINDOW - 1; j++) {
        answered *o = &x->older[j];
        if (o->reply && o->counter == h->counter &&
            sodium_memcmp(o->nonce, h->nonce, sizeof o->nonce) == 0 &&
            sodium_memcmp(o->tag, tag, sizeof o->tag) == 0)
            return open_in_place(frame, h, skeys(s, (uint32_t)i)->c2s, 1, NULL, NULL) == 0 ? o
                                                                                         : NULL;
    }
    return NULL;
}

static int on_finish(sl_chan_server *s, const sl_wire_msg *m, uint8_t *frame,
                     const uint8_t **reply, size_t *rlen, sl_err *err)
{
    const sl_wire_sealed *h = &m->u.sealed;
    uint64_t now = snow(s);
    int si = find_sess(s, h->sid);
    if (si >= 0) {
        if (is_resend(s, si, frame, h, SL_WIRE_FINISH)) {
            sess *x = &s->sess[si];
            answer_resend(s, x->route, &x->route_len, x->reply, x->reply_len, reply, rlen);
            return 0;
        }
        return refuse(s, SL_ESTATE, SL_WIRE_ERR_STATE, reply, rlen, err,
                      "FINISH for a session that is already established");
    }
    int pi = find_pend(s, h->sid);
    if (pi < 0)
        return refuse(s, SL_ESTATE, SL_WIRE_ERR_SESSION, reply, rlen, err,
                      "FINISH for an unknown or expired handshake; start again with HELLO");
    if (h->counter != 0)
        return refuse(s, SL_EFORMAT, SL_WIRE_ERR_MALFORMED, reply, rlen, err,
                      "FINISH: counter %llu, expected 0", (unsigned long long)h->counter);
    keyslot *pk = skeys(s, s->nsess + (uint32_t)pi);
    uint8_t nonce[24], tag[16];
    memcpy(nonce, h->nonce, 24);
    memcpy(tag, h->ct + h->ct_len - 16, 16);
    uint8_t *pt;
    size_t ptlen;
    if (open_in_place(frame, h, pk->c2s, 0, &pt, &ptlen))
        return refuse(s, SL_ECRYPTO, SL_WIRE_ERR_AUTH, reply, rlen, err,
                      "FINISH does not authenticate (altered, truncated or forged)");
    sl_wire_finish f;
    sl_err e2 = {0};
    if (sl_wire_finish_decode(pt, ptlen, &f, &e2))
        return refuse(s, SL_EFORMAT, SL_WIRE_ERR_MALFORMED, reply, rlen, err, "%s", e2.msg);
    /* From here on the peer proved it holds the handshake keys: a failure
     * ends this handshake. */
    sl_cert *cert = NULL;
    sl_cert_info ci;
    int rc = sl_identity_cert_parse_der(f.cert, f.cert_len, &cert, &e2);
    if (!rc)
        rc = sl_identity_verify(s->id.trust, cert, SL_IDENTITY_ROLE_SITE, 0, &ci, &e2);
    sl_identity_cert_free(cert);
    if (rc) {
        pend_destroy(s, pi);
        return refuse(s, SL_ECRYPTO, SL_WIRE_ERR_DENIED, reply, rlen, err,
                      "site certificate refused: %s", e2.msg);
    }
    uint8_t th2[32];
    transcript2(th2, s->pend[pi].th, f.cert, f.cert_len);
    if (verify_th(f.sig, L_CLIENT_SIG, sizeof L_CLIENT_SIG, th2, ci.pk) != 0) {
        pend_destroy(s, pi);
        char fpr[SL_IDENTITY_FPR_CHARS + 1];
        sl_identity_fingerprint(ci.pk, fpr);
        return refuse(s, SL_ECRYPTO, SL_WIRE_ERR_AUTH, reply, rlen, err,
                      "transcript signature of site '%s' (key %s) does not verify: wrong private "
                      "key or tampered handshake",
                      ci.name, fpr);
    }
    int slot = new_slot(s, ci.name, now);
    if (slot < 0) {
        pend_destroy(s, pi);
        return refuse(s, SL_ELIMIT, SL_WIRE_ERR_BUSY, reply, rlen, err,
                      "no room for another session (%u live); try again later", s->nsess);
    }
    sess *x = &s->sess[slot];
    memset(x, 0, sizeof *x);
    x->used = x->ready = x->ticket = 1;
    memcpy(x->sid, h->sid, 16);
    snprintf(x->peer, sizeof x->peer, "%s", ci.name);
    memcpy(x->serial, ci.serial, ci.serial_len);
    x->serial_len = ci.serial_len;
    x->cert_not_after = ci.not_after;
    x->crl_gen = s->crl_gen;
    x->born_ms = x->used_ms = now;
    x->expires_ms = capped(now, s->cfg.session_ttl, ci.not_after);
    x->ticket_expires_ms = capped(now, s->cfg.ticket_ttl, ci.not_after);
    x->tx_next = 1;
    memcpy(skeys(s, (uint32_t)slot), pk, sizeof(keyslot));
    pend_destroy(s, pi);
    x->last_kind = SL_WIRE_FINISH;
    keep_route(s, x->route, &x->route_len);
    x->rx_last = 0;
    memcpy(x->last_nonce, nonce, 24);
    memcpy(x->last_tag, tag, 16);
    sl_wire_finish_ok fo;
    memset(&fo, 0, sizeof fo);
    fo.session_ttl = s->cfg.session_ttl;
    fo.ticket_ttl = s->cfg.ticket_ttl;
    snprintf(fo.peer, sizeof fo.peer, "%s", ci.name);
    uint8_t *inner = NULL;
    size_t in_n = 0;
    if ((rc = sl_wire_finish_ok_encode(&fo, &inner, &in_n, err)) ||
        (rc = sess_seal(s, slot, SL_WIRE_FINISH_OK, 0, inner, in_n, 0, err))) {
        free(inner);
        sess_destroy(s, slot);
        return rc;
    }
    free(inner);
    s->stats.handshakes++;
    char sidhex[17];
    hex8(x->sid, sidhex);
    slog(s, SL_CHAN_LOG_INFO, "site '%s' authenticated (session %s)", x->peer, sidhex);
    *reply = x->reply;
    *rlen = x->reply_len;
    return 0;
}

/* Re-checks a session's certificate when the CRL changed since. */
static int still_trusted(sl_chan_server *s, sess *x)
{
    if (x->crl_gen == s->crl_gen)
        return 1;
    x->crl_gen = s->crl_gen;
    return !sl_identity_trust_revoked(s->id.trust, x->serial, x->serial_len);
}

static int on_resume(sl_chan_server *s, const sl_wire_msg *m, const uint8_t *frame, size_t n,
                     const uint8_t **reply, size_t *rlen, sl_err *err)
{
    const sl_wire_resume *q = &m->u.resume;
    uint64_t now = snow(s);
    uint8_t hh[32];
    crypto_generichash(hh, 32, frame, n, NULL, 0);
    for (uint32_t i = 0; i < s->nsess; i++) {
        sess *x = &s->sess[i];
        if (x->used && x->last_kind == SL_WIRE_RESUME && x->reply &&
            memcmp(x->resumed_from, q->ticket, 16) == 0 &&
            sodium_memcmp(x->last_hash, hh, 32) == 0) {
            answer_resend(s, x->route, &x->route_len, x->reply, x->reply_len, reply, rlen);
            return 0;
        }
    }
    int i = find_sess(s, q->ticket);
    if (i < 0 || !s->sess[i].ticket)
        return refuse(s, SL_ESTATE, SL_WIRE_ERR_SESSION, reply, rlen, err,
                      "unknown or already used resumption ticket; a full handshake is needed");
    sess *x = &s->sess[i];
    keyslot *k = skeys(s, (uint32_t)i);
    uint8_t mac[32];
    resume_mac(mac, frame, n - SL_WIRE_MAC_BYTES, k->rs);
    if (crypto_verify_32(mac, q->mac) != 0)
        return refuse(s, SL_ECRYPTO, SL_WIRE_ERR_AUTH, reply, rlen, err,
                      "RESUME does not authenticate");
    if (now >= x->ticket_expires_ms) {
        sess_destroy(s, i);
        return refuse(s, SL_ESTATE, SL_WIRE_ERR_SESSION, reply, rlen, err,
                      "resumption ticket expired; a full handshake is needed");
    }
    if (!still_trusted(s, x)) {
        char peer[SL_IDENTITY_NAME_MAX + 1];
        snprintf(peer, sizeof peer, "%s", x->peer);
        sess_destroy(s, i);
        return refuse(s, SL_ECRYPTO, SL_WIRE_ERR_DENIED, reply, rlen, err,
                      "certificate of '%s' is revoked", peer);
    }
    uint8_t esk[32], shared[32], confirm[32], th[32];
    sl_wire_msg r;
    memset(&r, 0, sizeof r);
    r.type = SL_WIRE_RESUME_OK;
    sl_wire_resume_ok *o = &r.u.resume_ok;
    fresh_sid(s, o->sid);
    randombytes_buf(esk, 32);
    crypto_scalarmult_base(o->eph, esk);
    randombytes_buf(o->rand, sizeof o->rand);
    o->session_ttl = s->cfg.session_ttl;
    o->ticket_ttl = s->cfg.ticket_ttl;
    int bad_point = crypto_scalarmult(shared, esk, q->eph) != 0;
    sodium_memzero(esk, sizeof esk);
    if (bad_point)
        return refuse(s, SL_ECRYPTO, SL_WIRE_ERR_AUTH, reply, rlen, err,
                      "RESUME: ephemeral key is a low-order point");
    uint8_t *buf = NULL;
    size_t bn = 0;
    int rc = sl_wire_encode(&r, &buf, &bn, err);
    if (rc) {
        sodium_memzero(shared, sizeof shared);
        return rc;
    }
    transcript_resume(th, frame, n, buf, bn - SL_WIRE_MAC_BYTES);
    derive_resumed(k, confirm, shared, th); /* replaces the keys and rs */
    confirm_mac(buf + bn - SL_WIRE_MAC_BYTES, confirm, th);
    sodium_memzero(shared, sizeof shared);
    sodium_memzero(confirm, sizeof confirm);
    memcpy(x->resumed_from, q->ticket, 16);
    memcpy(x->sid, o->sid, 16);
    older_clear(x);
    x->ready = 1;
    x->rx_last = 0;
    x->tx_next = 1;
    x->used_ms = now;
    x->expires_ms = capped(now, s->cfg.session_ttl, x->cert_not_after);
    x->last_kind = SL_WIRE_RESUME;
    keep_route(s, x->route, &x->route_len);
    memcpy(x->last_hash, hh, 32);
    free(x->reply);
    x->reply = buf;
    x->reply_len = bn;
    s->stats.resumptions++;
    char sidhex[17];
    hex8(x->sid, sidhex);
    slog(s, SL_CHAN_LOG_INFO, "site '%s' resumed its session (now %s)", x->peer, sidhex);
    *reply = buf;
    *rlen = bn;
    return 0;
}

static xfile *find_file(sl_chan_server *s, const char *name)
{
    for (int i = 0; i < s->nfiles; i++)
        if (strcmp(s->files[i].name, name) == 0)
            return &s->files[i];
    return NULL;
}

static int seal_app(sl_chan_server *s, int i, uint16_t type, const void *p, size_t n,
                    uint64_t ack, sl_err *err);

static int seal_app_error(sl_chan_server *s, int i, uint16_t code, uint64_t ack, const char *msg,
                          sl_err *err)
{
    sl_wire_error e;
    memset(&e, 0, sizeof e);
    e.code = code;
    snprintf(e.msg, sizeof e.msg, "%s", msg);
    for (char *p = e.msg; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = sl_wire_app_error_encode(&e, &buf, &n, err);
    if (!rc)
        rc = seal_app(s, i, SL_WIRE_APP_ERROR, buf, n, ack, err);
    free(buf);
    return rc;
}

/* The frame [hdr][app hdr][payload][tag] for session i, counter tx_next. */
static int seal_app(sl_chan_server *s, int i, uint16_t type, const void *p, size_t n,
                    uint64_t ack, sl_err *err)
{
    sess *x = &s->sess[i];
    size_t ptlen = SL_WIRE_APP_HDR + n;
    uint8_t *buf = malloc(SL_WIRE_SEALED_HDR + ptlen + SL_WIRE_TAG_BYTES);
    if (!buf)
        return sl_err_set(err, SL_ENOMEM, "server: cannot allocate a %zu-byte reply", n);
    sl_wire_app_header(buf + SL_WIRE_SEALED_HDR, type);
    if (n)
        memcpy(buf + SL_WIRE_SEALED_HDR + SL_WIRE_APP_HDR, p, n);
    seal_in_place(buf, SL_WIRE_REPLY, x->sid, x->tx_next++, ack, ptlen,
                  skeys(s, (uint32_t)i)->s2c);
    free(x->reply);
    x->reply = buf;
    x->reply_len = SL_WIRE_SEALED_HDR + ptlen + SL_WIRE_TAG_BYTES;
    return 0;
}

static int file_unchanged(xfile *f)
{
    struct stat st;
    return fstat(f->fd, &st) == 0 && st.st_size == f->st.st_size && st.st_ino == f->st.st_ino &&
           st.st_mtim.tv_sec == f->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == f->st.st_mtim.tv_nsec;
}

/* Channel-internal application messages (file transfer, close). */
static int internal(sl_chan_server *s, int i, const sl_wire_app *a, uint64_t ack, sl_err *err)
{
    sl_err e2 = {0};
    switch (a->type) {
    case SL_WIRE_APP_FILE_INFO_REQ:
    case SL_WIRE_APP_CHUNK_REQ: {
        sl_wire_file_req q;
        if (sl_wire_file_req_decode(a->payload, a->len, &q, &e2))
            return seal_app_error(s, i, SL_WIRE_ERR_MALFORMED, ack, e2.msg, err);
        xfile *f = find_file(s, q.name);
        if (!f) {
            snprintf(e2.msg, sizeof e2.msg, "no file '%s' is offered by this server", q.name);
            return seal_app_error(s, i, SL_WIRE_ERR_NOTFOUND, ack, e2.msg, err);
        }
        if (!file_unchanged(f)) {
            snprintf(e2.msg, sizeof e2.msg,
                     "file '%s' changed on the server since it was offered; fetch again later",
                     q.name);
            return seal_app_error(s, i, SL_WIRE_ERR_APP, ack, e2.msg, err);
        }
        uint64_t size = (uint64_t)f->st.st_size;
        if (a->type == SL_WIRE_APP_FILE_INFO_REQ) {
            sl_wire_file_info fi = {.size = size, .chunk = SL_CHAN_DEFAULT_CHUNK};
            memcpy(fi.digest, f->digest, 32);
            uint8_t *buf = NULL;
            size_t n = 0;
            int rc = sl_wire_file_info_encode(&fi, &buf, &n, err);
            if (!rc)
                rc = seal_app(s, i, SL_WIRE_APP_FILE_INFO, buf, n, ack, err);
            free(buf);
            return rc;
        }
        if (q.offset > size) {
            snprintf(e2.msg, sizeof e2.msg, "offset %llu is past the end of '%s' (%llu bytes)",
                     (unsigned long long)q.offset, q.name, (unsigned long long)size);
            return seal_app_error(s, i, SL_WIRE_ERR_APP, ack, e2.msg, err);
        }
        size_t len = q.len;
        if (len > size - q.offset)
            len = (size_t)(size - q.offset);
        /* Read straight into the reply frame: one copy of the data. */
        sess *x = &s->sess[i];
        size_t ptlen = SL_WIRE_APP_HDR + SL_WIRE_CHUNK_HDR + len;
        uint8_t *buf = malloc(SL_WIRE_SEALED_HDR + ptlen + SL_WIRE_TAG_BYTES);
        if (!buf)
            return sl_err_set(err, SL_ENOMEM, "server: cannot allocate a %zu-byte chunk", len);
        uint8_t *pt = buf + SL_WIRE_SEALED_HDR;
        sl_wire_app_header(pt, SL_WIRE_APP_CHUNK);
        sl_wire_chunk_header(pt + SL_WIRE_APP_HDR, q.offset);
        size_t got = 0;
        while (got < len) {
            ssize_t r = pread(f->fd, pt + SL_WIRE_APP_HDR + SL_WIRE_CHUNK_HDR + got, len - got,
                              (off_t)(q.offset + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got != len) {
            free(buf);
            snprintf(e2.msg, sizeof e2.msg, "cannot read '%s' at offset %llu", q.name,
                     (unsigned long long)q.offset);
            return seal_app_error(s, i, SL_WIRE_ERR_APP, ack, e2.msg, err);
        }
        seal_in_place(buf, SL_WIRE_REPLY, x->sid, x->tx_next++, ack, ptlen,
                      skeys(s, (uint32_t)i)->s2c);
        free(x->reply);
        x->reply = buf;
        x->reply_len = SL_WIRE_SEALED_HDR + ptlen + SL_WIRE_TAG_BYTES;
        return 0;
    }
    case SL_WIRE_APP_CLOSE:
        return seal_app(s, i, SL_WIRE_APP_CLOSE_OK, NULL, 0, ack, err);
    default:
        snprintf(e2.msg, sizeof e2.msg, "application type 0x%04x is reserved", a->type);
        return seal_app_error(s, i, SL_WIRE_ERR_MALFORMED, ack, e2.msg, err);
    }
}

static int on_data(sl_chan_server *s, const sl_wire_msg *m, uint8_t *frame, sl_chan_request *req,
                   const uint8_t **reply, size_t *rlen, sl_err *err)
{
    const sl_wire_sealed *h = &m->u.sealed;
    uint64_t now = snow(s);
    int i = find_sess(s, h->sid);
    if (i < 0) {
        if (find_pend(s, h->sid) >= 0)
            return refuse(s, SL_ESTATE, SL_WIRE_ERR_STATE, reply, rlen, err,
                          "DATA before the handshake finished");
        return refuse(s, SL_ESTATE, SL_WIRE_ERR_SESSION, reply, rlen, err,
                      "unknown session (expired, closed or from before a restart); reconnect");
    }
    sess *x = &s->sess[i];
    if (!still_trusted(s, x)) {
        char peer[SL_IDENTITY_NAME_MAX + 1];
        snprintf(peer, sizeof peer, "%s", x->peer);
        sess_destroy(s, i);
        return refuse(s, SL_ECRYPTO, SL_WIRE_ERR_DENIED, reply, rlen, err,
                      "certificate of '%s' is revoked; session ended", peer);
    }
    if (!x->ready || now >= x->expires_ms)
        return refuse(s, SL_ESTATE, SL_WIRE_ERR_SESSION, reply, rlen, err,
                      "session of '%s' expired; resume or reconnect", x->peer);
    if (h->counter <= x->rx_last) {
        if (h->counter == x->rx_last && is_resend(s, i, frame, h, SL_WIRE_DATA)) {
            /* REQ re-sent it: never processed twice (see answer_resend) */
            answer_resend(s, x->route, &x->route_len, x->reply, x->reply_len, reply, rlen);
            return 0;
        }
        answered *o = older_resend(s, i, frame, h);
        if (o) { /* an earlier request of the site's window, re-sent */
            answer_resend(s, o->route, &o->route_len, o->reply, o->reply_len, reply, rlen);
            return 0;
        }
        return refuse(s, SL_ECRYPTO, SL_WIRE_ERR_REPLAY, reply, rlen, err,
                      "replayed or reordered message: counter %llu is not above %llu",
                      (unsigned long long)h->counter, (unsigned long long)x->rx_last);
    }
    uint8_t nonce[24], tag[16];
    memcpy(nonce, h->nonce, 24);
    memcpy(tag, h->ct + h->ct_len - 16, 16);
    uint8_t *pt;
    size_t ptlen;
    if (open_in_place(frame, h, skeys(s, (uint32_t)i)->c2s, 0, &pt, &ptlen))
        return refuse(s, SL_ECRYPTO, SL_WIRE_ERR_AUTH, reply, rlen, err,
                      "message does not authenticate (altered, truncated or forged)");
    sl_wire_app a;
    sl_err e2 = {0};
    if (sl_wire_app_decode(pt, ptlen, &a, &e2))
        return refuse(s, SL_EFORMAT, SL_WIRE_ERR_MALFORMED, reply, rlen, err, "%s", e2.msg);
    older_push(x);
    /* The site has the answers to everything below its ack: a frame of
     * those is a replay from now on, not a re-send. */
    for (unsigned j = 0; j < SL_CHAN_WINDOW - 1; j++)
        if (x->older[j].reply && x->older[j].counter < h->ack) {
            free(x->older[j].reply);
            memset(&x->older[j], 0, sizeof x->older[j]);
        }
    x->last_kind = SL_WIRE_DATA;
    keep_route(s, x->route, &x->route_len);
    x->rx_last = h->counter;
    memcpy(x->last_nonce, nonce, 24);
    memcpy(x->last_tag, tag, 16);
    x->used_ms = now;
    free(x->reply);
    x->reply = NULL;
    x->reply_len = 0;
    s->stats.requests++;
    if (a.type > SL_WIRE_APP_MAX) {
        int rc = internal(s, i, &a, h->counter, err);
        if (rc)
            return rc;
        *reply = x->reply;
        *rlen = x->reply_len;
        if (a.type == SL_WIRE_APP_CLOSE) { /* answer, then forget everything */
            uint8_t *copy = malloc(x->reply_len);
            if (copy)
                memcpy(copy, x->reply, x->reply_len);
            set_scratch(s, copy, copy ? x->reply_len : 0);
            slog(s, SL_CHAN_LOG_INFO, "site '%s' closed its session", x->peer);
            sess_destroy(s, i);
            *reply = s->scratch;
            *rlen = s->scratch_len;
        }
        return 0;
    }
    req->type = a.type;
    req->payload = a.payload;
    req->len = a.len;
    snprintf(req->peer, sizeof req->peer, "%s", x->peer);
    memcpy(req->sid, x->sid, 16);
    s->cur = i;
    s->cur_counter = h->counter;
    return 0;
}

int sl_chan_server_process(sl_chan_server *s, uint8_t *frame, size_t n, const uint8_t *route,
                           size_t route_len, sl_chan_request *req, const uint8_t **reply,
                           size_t *reply_len, sl_err *err)
{
    memset(req, 0, sizeof *req);
    if (route_len > SL_TRANSPORT_ROUTE_MAX)
        route_len = 0;
    s->route = route;
    s->route_len = route ? route_len : 0;
    s->route_kept = NULL;
    *reply = NULL;
    *reply_len = 0;
    s->cur = -1;
    set_scratch(s, NULL, 0);
    uint64_t now = snow(s);
    sl_err e2 = {0};
    if (sl_identity_trust_refresh(s->id.trust, &s->crl_gen, &e2))
        slog(s, SL_CHAN_LOG_WARN, "keeping the previous revocation list: %s", e2.msg);
    housekeeping(s, now);
    sl_wire_msg m;
    int rc = sl_wire_decode(frame, n, &m, &e2);
    if (rc)
        return refuse(s, rc, n >= 3 && frame[2] != SL_WIRE_VERSION ? SL_WIRE_ERR_VERSION
                                                                   : SL_WIRE_ERR_MALFORMED,
                      reply, reply_len, err, "%s", e2.msg);
    switch (m.type) {
    case SL_WIRE_HELLO:
        return on_hello(s, &m, frame, n, reply, reply_len, err);
    case SL_WIRE_FINISH:
        return on_finish(s, &m, frame, reply, reply_len, err);
    case SL_WIRE_RESUME:
        return on_resume(s, &m, frame, n, reply, reply_len, err);
    case SL_WIRE_DATA:
        return on_data(s, &m, frame, req, reply, reply_len, err);
    default:
        return refuse(s, SL_ESTATE, SL_WIRE_ERR_STATE, reply, reply_len, err,
                      "the server does not accept %s frames", sl_wire_type_name(m.type));
    }
}

static int check_reply(uint16_t type, size_t n, sl_err *err)
{
    if (type == SL_WIRE_APP_NONE || type > SL_WIRE_APP_MAX)
        return sl_err_set(err, SL_EINVAL, "server: reply type 0x%04x outside 1..0x%04x", type,
                          SL_WIRE_APP_MAX);
    if (n > SL_WIRE_MAX_PAYLOAD)
        return sl_err_set(err, SL_ELIMIT, "server: reply of %zu bytes exceeds %u", n,
                          SL_WIRE_MAX_PAYLOAD);
    return 0;
}

int sl_chan_server_seal_reply(sl_chan_server *s, uint16_t type, const void *payload, size_t n,
                              const uint8_t **reply, size_t *reply_len, sl_err *err)
{
    if (s->cur < 0)
        return sl_err_set(err, SL_ESTATE, "server: no request is waiting for a reply");
    int rc = check_reply(type, n, err);
    if (rc)
        return rc;
    rc = seal_app(s, s->cur, type, payload, n, s->cur_counter, err);
    if (rc)
        return rc;
    sess *x = &s->sess[s->cur];
    s->cur = -1;
    *reply = x->reply;
    *reply_len = x->reply_len;
    return 0;
}

int sl_chan_server_seal_error(sl_chan_server *s, uint16_t code, const char *msg,
                              const uint8_t **reply, size_t *reply_len, sl_err *err)
{
    if (s->cur < 0)
        return sl_err_set(err, SL_ESTATE, "server: no request is waiting for a reply");
    int rc = seal_app_error(s, s->cur, code, s->cur_counter, msg, err);
    if (rc)
        return rc;
    sess *x = &s->sess[s->cur];
    s->cur = -1;
    *reply = x->reply;
    *reply_len = x->reply_len;
    return 0;
}

int sl_chan_server_defer(sl_chan_server *s, sl_chan_deferred *d, sl_err *err)
{
    if (s->cur < 0)
        return sl_err_set(err, SL_ESTATE, "server: no request is waiting for a reply");
    sess *x = &s->sess[s->cur];
    memset(d, 0, sizeof *d);
    d->slot = s->cur;
    memcpy(d->sid, x->sid, sizeof d->sid);
    d->counter = s->cur_counter;
    s->cur = -1;
    sl_transport_msg_free(&s->msg); /* socket level: the frame is not needed any more */
    return 0;
}

/* The session a deferred request can still be answered in, or -1 with err
 * set: the same session (slot and id), still usable, whose last accepted
 * request is this one and still unanswered. */
static int deferred_slot(sl_chan_server *s, const sl_chan_deferred *d, sl_err *err)
{
    if (d->slot < 0 || (uint32_t)d->slot >= s->nsess || !s->sess[d->slot].used ||
        sodium_memcmp(s->sess[d->slot].sid, d->sid, sizeof d->sid) != 0) {
        sl_err_set(err, SL_ESTATE, "server: the session of a deferred request has ended");
        return -1;
    }
    sess *x = &s->sess[d->slot];
    if (!x->ready || x->last_kind != SL_WIRE_DATA || x->rx_last != d->counter || x->reply) {
        sl_err_set(err, SL_ESTATE, "server: site '%s' has moved on from request %llu", x->peer,
                   (unsigned long long)d->counter);
        return -1;
    }
    return d->slot;
}

int sl_chan_server_seal_deferred(sl_chan_server *s, const sl_chan_deferred *d, uint16_t type,
                                 const void *payload, size_t n, const uint8_t **reply,
                                 size_t *reply_len, sl_err *err)
{
    int rc = check_reply(type, n, err);
    if (rc)
        return rc;
    int i = deferred_slot(s, d, err);
    if (i < 0)
        return SL_ESTATE;
    rc = seal_app(s, i, type, payload, n, d->counter, err);
    if (rc)
        return rc;
    *reply = s->sess[i].reply;
    *reply_len = s->sess[i].reply_len;
    return 0;
}

/* Sends session i's cached answer along the route its request last came
 * on; if it cannot leave, a re-send on that route gets it from the cache. */
static int send_deferred(sl_chan_server *s, int i, sl_err *err)
{
    sess *x = &s->sess[i];
    sl_transport_msg to;
    memset(&to, 0, sizeof to);
    memcpy(to.route, x->route, x->route_len);
    to.route_len = x->route_len;
    int rc = sl_transport_reply(s->tp, &to, x->reply, x->reply_len, err);
    if (rc)
        x->route_len = 0;
    return rc;
}

int sl_chan_server_reply_deferred(sl_chan_server *s, const sl_chan_deferred *d, uint16_t type,
                                  const void *payload, size_t n, sl_err *err)
{
    if (!s->tp)
        return sl_err_set(err, SL_ESTATE, "server: not listening");
    const uint8_t *reply;
    size_t rlen;
    int rc = sl_chan_server_seal_deferred(s, d, type, payload, n, &reply, &rlen, err);
    return rc ? rc : send_deferred(s, d->slot, err);
}

int sl_chan_server_reply_deferred_error(sl_chan_server *s, const sl_chan_deferred *d,
                                        uint16_t code, const char *msg, sl_err *err)
{
    if (!s->tp)
        return sl_err_set(err, SL_ESTATE, "server: not listening");
    int i = deferred_slot(s, d, err);
    if (i < 0)
        return SL_ESTATE;
    int rc = seal_app_error(s, i, code, d->counter, msg, err);
    return rc ? rc : send_deferred(s, i, err);
}

int sl_chan_server_listen(sl_chan_server *s, sl_err *err)
{
    if (s->tp)
        return sl_err_set(err, SL_ESTATE, "server: already listening");
    sl_transport_opts o = {.max_msg = SL_WIRE_MAX_FRAME, .sockbuf_bytes = 4 << 20};
    int rc = sl_transport_listen(s->cfg.listen, &o, &s->tp, err);
    if (!rc)
        slog(s, SL_CHAN_LOG_INFO, "listening on %s (server key %s)", sl_transport_where(s->tp),
             s->fpr);
    return rc;
}

int sl_chan_server_next(sl_chan_server *s, int timeout_ms, sl_chan_request *req, sl_err *err)
{
    memset(req, 0, sizeof *req);
    if (!s->tp)
        return sl_err_set(err, SL_ESTATE, "server: not listening");
    if (s->msg.data)
        return sl_err_set(err, SL_ESTATE, "server: reply to the previous request first");
    uint64_t deadline = mono_ms(NULL) + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        uint64_t now = mono_ms(NULL);
        int left = timeout_ms < 0 ? -1 : now >= deadline ? 0 : (int)(deadline - now);
        if (left == 0 && timeout_ms >= 0)
            return 0;
        sl_transport_msg msg;
        int rc = sl_transport_recv(s->tp, left, &msg, err);
        if (rc)
            return rc;
        if (!msg.data)
            return 0;
        const uint8_t *reply = NULL;
        size_t rlen = 0;
        sl_err e2 = {0};
        int prc = sl_chan_server_process(s, msg.data, msg.len, msg.route, msg.route_len, req,
                                         &reply, &rlen, &e2);
        if (prc == 0 && req->type) {
            s->msg = msg; /* payload views into it until the reply */
            return 0;
        }
        if (prc && prc != SL_ECRYPTO && prc != SL_EFORMAT && prc != SL_ESTATE &&
            prc != SL_ELIMIT)
            slog(s, SL_CHAN_LOG_WARN, "internal error: %s", e2.msg);
        if (reply && sl_transport_reply(s->tp, &msg, reply, rlen, &e2)) {
            /* The answer did not leave: a re-send on this route must get it. */
            if (s->route_kept)
                *s->route_kept = 0;
            slog(s, SL_CHAN_LOG_WARN, "%s", e2.msg);
        }
        sl_transport_msg_free(&msg);
    }
}

static int send_current(sl_chan_server *s, int rc, const uint8_t *reply, size_t n, sl_err *err)
{
    if (!rc && (rc = sl_transport_reply(s->tp, &s->msg, reply, n, err)) && s->route_kept)
        *s->route_kept = 0; /* not sent: a re-send on this route must get it */
    sl_transport_msg_free(&s->msg);
    return rc;
}

int sl_chan_server_reply(sl_chan_server *s, uint16_t type, const void *payload, size_t n,
                         sl_err *err)
{
    if (!s->tp || !s->msg.data)
        return sl_err_set(err, SL_ESTATE, "server: no request is waiting for a reply");
    const uint8_t *reply = NULL;
    size_t rlen = 0;
    int rc = sl_chan_server_seal_reply(s, type, payload, n, &reply, &rlen, err);
    return send_current(s, rc, reply, rlen, err);
}

int sl_chan_server_reply_error(sl_chan_server *s, uint16_t code, const char *msg, sl_err *err)
{
    if (!s->tp || !s->msg.data)
        return sl_err_set(err, SL_ESTATE, "server: no request is waiting for a reply");
    const uint8_t *reply = NULL;
    size_t rlen = 0;
    int rc = sl_chan_server_seal_error(s, code, msg, &reply, &rlen, err);
    return send_current(s, rc, reply, rlen, err);
}

int sl_chan_server_add_file(sl_chan_server *s, const char *name, const char *path, sl_err *err)
{
    int rc = sl_wire_check_file_name(name, err);
    if (rc)
        return rc;
    if (find_file(s, name))
        return sl_err_set(err, SL_EINVAL, "transfer name '%s' is already in use", name);
    if (s->nfiles >= (int)SL_CHAN_MAX_FILES)
        return sl_err_set(err, SL_ELIMIT, "at most %u files can be offered", SL_CHAN_MAX_FILES);
    xfile f;
    memset(&f, 0, sizeof f);
    snprintf(f.name, sizeof f.name, "%s", name);
    if (snprintf(f.path, sizeof f.path, "%s", path) >= (int)sizeof f.path)
        return sl_err_set(err, SL_ELIMIT, "%.80s...: path too long", path);
    f.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f.fd < 0)
        return errno == ENOENT ? sl_err_set(err, SL_ENOTFOUND, "%s: no such file", path)
                               : sl_err_errno(err, "%s: open", path);
    uint8_t *buf = NULL;
    if (fstat(f.fd, &f.st) != 0 || !S_ISREG(f.st.st_mode)) {
        rc = sl_err_set(err, SL_EINVAL, "%s: not a regular file", path);
        goto fail;
    }
    buf = malloc(1 << 20);
    if (!buf) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    uint64_t off = 0;
    for (;;) {
        ssize_t r = pread(f.fd, buf, 1 << 20, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = sl_err_errno(err, "%s: read", path);
            goto fail;
        }
        if (r == 0)
            break;
        crypto_generichash_update(&st, buf, (size_t)r);
        off += (uint64_t)r;
    }
    crypto_generichash_final(&st, f.digest, 32);
    if (off != (uint64_t)f.st.st_size || !file_unchanged(&f)) {
        rc = sl_err_set(err, SL_EIO, "%s: changed while its digest was computed", path);
        goto fail;
    }
    free(buf);
    s->files[s->nfiles++] = f;
    char hex[17];
    hex8(f.digest, hex);
    slog(s, SL_CHAN_LOG_INFO, "offering '%s' (%llu bytes, BLAKE2b %s...)", name,
         (unsigned long long)off, hex);
    return 0;
fail:
    free(buf);
    close(f.fd);
    return rc;
}

/* ---- client --------------------------------------------------------------- */

/* A request of the stream in flight (socket level, see sl_chan_client_send). */
typedef struct flight {
    uint64_t counter;
    uint32_t rid;       /* request id of its last (re)send on the raw socket */
    uint64_t seq;       /* order of its last (re)send among all sends */
    uint8_t *frame;     /* header and plaintext, kept for sealing re-sends (malloc, see
                         * frame_get); each (re)send seals them into a new transport buffer */
    size_t len, cap;    /* len: the sealed frame's length */
    uint8_t nonce[SL_WIRE_AEAD_NONCE_BYTES];
    uint8_t sid[16];    /* the session it was sealed in */
    sl_transport_msg held; /* its answer when it came before an earlier one's */
} flight;

struct sl_chan_client {
    sl_chan_client_cfg cfg;
    own_identity id;
    sl_chan_client_state state;
    keyslot *k; /* sodium_malloc'd */
    uint8_t sid[16];
    uint64_t tx_next, rx_last;
    uint64_t win[SL_CHAN_WINDOW]; /* counters of the DATA awaiting replies, oldest first */
    unsigned nwin;
    uint32_t session_ttl, ticket_ttl;
    uint64_t ready_ms;
    char peer[SL_WIRE_MAX_NAME + 1];
    /* handshake in flight */
    uint8_t hs_frame[160]; /* HELLO or RESUME as sent */
    size_t hs_len;
    uint8_t th[32];
    uint8_t pending_sid[16];
    uint32_t pending_sttl, pending_tttl;
    keyslot *nk; /* keys of the handshake in flight (sodium_malloc'd) */
    /* resumption ticket */
    int has_ticket;
    uint8_t ticket[16];
    uint64_t ticket_expires_ms;
    sl_transport *tp;
    /* the stream: a raw REQ socket with requests in flight (fl[k] is win[k]) */
    sl_transport *ptp;
    uint8_t *resv; /* frame of sl_chan_client_reserve, payload filled by the caller */
    size_t resv_len, resv_cap;
    /* frame buffers of finished requests, reused: a fresh 1 MiB buffer per
     * message costs 256 page faults, more than the copy into it */
    uint8_t *spare[SL_CHAN_WINDOW + 1];
    size_t spare_cap[SL_CHAN_WINDOW + 1];
    flight fl[SL_CHAN_WINDOW];
    unsigned nfl;
    uint32_t next_rid;
    uint64_t send_seq;
};

static void clog_(sl_chan_client *c, sl_chan_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void clog_(sl_chan_client *c, sl_chan_log_level level, const char *fmt, ...)
{
    if (!c->cfg.log)
        return; /* the client is quiet unless asked: callers report errors */
    va_list ap;
    va_start(ap, fmt);
    vlogf(c->cfg.log, c->cfg.log_ctx, level, fmt, ap);
    va_end(ap);
}

static uint64_t cnow(const sl_chan_client *c)
{
    return c->cfg.clock ? c->cfg.clock(c->cfg.clock_ctx) : mono_ms(NULL);
}

int sl_chan_client_create(const sl_chan_client_cfg *cfg, sl_chan_client **out, sl_err *err)
{
    sl_chan_client *c = calloc(1, sizeof *c);
    if (!c)
        return sl_err_set(err, SL_ENOMEM, "client: out of memory");
    c->cfg = *cfg;
    if (!c->cfg.timeout_ms)
        c->cfg.timeout_ms = SL_CHAN_DEFAULT_TIMEOUT_MS;
    int rc = own_load(&c->id, cfg->cert, cfg->key, cfg->ca, cfg->crl, SL_IDENTITY_ROLE_SITE, err);
    if (rc)
        goto fail;
    if (cfg->name[0] && strcmp(cfg->name, c->id.info.name) != 0) {
        rc = sl_err_set(err, SL_EINVAL, "%s is the certificate of site '%s', not of '%s'",
                        cfg->cert, c->id.info.name, cfg->name);
        goto fail;
    }
    c->k = sodium_malloc(sizeof(keyslot));
    c->nk = sodium_malloc(sizeof(keyslot));
    if (!c->k || !c->nk) {
        rc = sl_err_set(err, SL_ENOMEM, "client: cannot allocate secure memory");
        goto fail;
    }
    sodium_memzero(c->k, sizeof(keyslot));
    sodium_memzero(c->nk, sizeof(keyslot));
    *out = c;
    return 0;
fail:
    sl_chan_client_free(c);
    return rc;
}

static void stream_abandon(sl_chan_client *c);

void sl_chan_client_free(sl_chan_client *c)
{
    if (!c)
        return;
    stream_abandon(c);
    free(c->resv);
    for (unsigned k = 0; k <= SL_CHAN_WINDOW; k++)
        free(c->spare[k]);
    sl_transport_close(c->ptp);
    sodium_free(c->k);
    sodium_free(c->nk);
    sl_transport_close(c->tp);
    own_free(&c->id);
    free(c);
}

sl_chan_client_state sl_chan_client_get_state(const sl_chan_client *c) { return c->state; }

const char *sl_chan_client_peer(const sl_chan_client *c) { return c->peer; }

static uint64_t margin_ms(uint32_t ttl_s)
{
    uint64_t t = (uint64_t)ttl_s * 100u; /* a tenth of the lifetime ... */
    return t < 60000u ? t : 60000u;      /* ... at most a minute */
}

int sl_chan_client_session_fresh(const sl_chan_client *c)
{
    if (c->state != SL_CHAN_READY && c->state != SL_CHAN_REQUEST_SENT)
        return 0;
    uint64_t age = cnow(c) - c->ready_ms;
    return age + margin_ms(c->session_ttl) < (uint64_t)c->session_ttl * 1000u;
}

static void drop_session(sl_chan_client *c)
{
    sodium_memzero(c->k->c2s, 32);
    sodium_memzero(c->k->s2c, 32);
    c->state = SL_CHAN_IDLE;
    c->nwin = 0;
    memset(c->sid, 0, sizeof c->sid);
}

static void drop_ticket(sl_chan_client *c)
{
    sodium_memzero(c->k->rs, 32);
    c->has_ticket = 0;
}

static uint8_t *alloc_frame(size_t n, sl_err *err)
{
    uint8_t *f = sl_transport_alloc(n);
    if (!f)
        sl_err_set(err, SL_ENOMEM, "client: cannot allocate a %zu-byte frame", n);
    return f;
}

int sl_chan_client_start(sl_chan_client *c, int resume, uint8_t **frame, size_t *n, sl_err *err)
{
    uint8_t *buf = NULL;
    size_t bn = 0;
    sl_wire_msg m;
    memset(&m, 0, sizeof m);
    int use_ticket = resume && c->has_ticket && cnow(c) < c->ticket_expires_ms;
    sodium_memzero(c->nk, sizeof(keyslot));
    if (use_ticket) {
        m.type = SL_WIRE_RESUME;
        memcpy(m.u.resume.ticket, c->ticket, 16);
        randombytes_buf(c->nk->esk, 32);
        crypto_scalarmult_base(m.u.resume.eph, c->nk->esk);
        randombytes_buf(m.u.resume.rand, sizeof m.u.resume.rand);
    } else {
        m.type = SL_WIRE_HELLO;
        randombytes_buf(c->nk->esk, 32);
        crypto_scalarmult_base(m.u.hello.eph, c->nk->esk);
        randombytes_buf(m.u.hello.rand, sizeof m.u.hello.rand);
    }
    int rc = sl_wire_encode(&m, &buf, &bn, err);
    if (rc)
        return rc;
    if (use_ticket)
        resume_mac(buf + bn - SL_WIRE_MAC_BYTES, buf, bn - SL_WIRE_MAC_BYTES, c->k->rs);
    uint8_t *f = bn <= sizeof c->hs_frame ? alloc_frame(bn, err) : NULL;
    if (!f) {
        free(buf);
        return err ? err->code : SL_ENOMEM;
    }
    memcpy(f, buf, bn);
    memcpy(c->hs_frame, buf, bn);
    c->hs_len = bn;
    free(buf);
    drop_session(c);
    c->state = use_ticket ? SL_CHAN_RESUME_SENT : SL_CHAN_HELLO_SENT;
    *frame = f;
    *n = bn;
    return 0;
}

/* Maps a server's ERROR frame to a return code and message. */
static int server_error(sl_chan_client *c, const sl_wire_error *e, sl_err *err)
{
    int code;
    switch (e->code) {
    case SL_WIRE_ERR_SESSION:
        code = SL_ESTATE;
        break;
    case SL_WIRE_ERR_AUTH:
    case SL_WIRE_ERR_REPLAY:
    case SL_WIRE_ERR_DENIED:
        code = SL_ECRYPTO;
        break;
    case SL_WIRE_ERR_BUSY:
        code = SL_ELIMIT;
        break;
    case SL_WIRE_ERR_STATE:
        code = SL_ESTATE;
        break;
    default:
        code = SL_EFORMAT;
    }
    (void)c;
    return sl_err_set(err, code, "server %s refused (%s): %s", c->cfg.server,
                      sl_wire_code_name(e->code), e->msg);
}

static int handle_hello_reply(sl_chan_client *c, uint8_t *frame, size_t n,
                              const sl_wire_hello_reply *h, uint8_t **next, size_t *next_n,
                              sl_err *err)
{
    if (h->session_ttl == 0 || h->session_ttl > SL_CHAN_MAX_TTL || h->ticket_ttl == 0 ||
        h->ticket_ttl > SL_CHAN_MAX_TTL)
        return sl_err_set(err, SL_EFORMAT, "HELLO_REPLY: lifetimes %u/%u s outside 1..%u",
                          h->session_ttl, h->ticket_ttl, SL_CHAN_MAX_TTL);
    sl_cert *cert = NULL;
    sl_cert_info si;
    sl_err e2 = {0};
    int rc = sl_identity_cert_parse_der(h->cert, h->cert_len, &cert, &e2);
    if (!rc)
        rc = sl_identity_verify(c->id.trust, cert, SL_IDENTITY_ROLE_SERVER, 0, &si, &e2);
    sl_identity_cert_free(cert);
    if (rc)
        return sl_err_set(err, SL_ECRYPTO, "server certificate refused: %s", e2.msg);
    uint8_t th[32];
    transcript1(th, c->hs_frame, c->hs_len, frame, n - SL_WIRE_SIG_BYTES);
    if (verify_th(h->sig, L_SERVER_SIG, sizeof L_SERVER_SIG, th, si.pk) != 0) {
        char fpr[SL_IDENTITY_FPR_CHARS + 1];
        sl_identity_fingerprint(si.pk, fpr);
        return sl_err_set(err, SL_ECRYPTO,
                          "the server's transcript signature (key %s) does not verify: tampered "
                          "handshake or a server without its private key",
                          fpr);
    }
    uint8_t shared[32];
    if (crypto_scalarmult(shared, c->nk->esk, h->eph) != 0)
        return sl_err_set(err, SL_ECRYPTO, "HELLO_REPLY: ephemeral key is a low-order point");
    /* Keys go to nk until FINISH_OK proves the server has them too. */
    keyslot tmp;
    derive_full(&tmp, shared, th);
    sodium_memzero(shared, sizeof shared);
    uint8_t th2[32], sig[64];
    transcript2(th2, th, c->id.cert_der, c->id.cert_len);
    sign_th(sig, L_CLIENT_SIG, sizeof L_CLIENT_SIG, th2, c->id.sk);
    sl_wire_finish f = {.cert = c->id.cert_der, .cert_len = c->id.cert_len};
    memcpy(f.sig, sig, 64);
    uint8_t *inner = NULL;
    size_t in_n = 0;
    if ((rc = sl_wire_finish_encode(&f, &inner, &in_n, err))) {
        sodium_memzero(&tmp, sizeof tmp);
        return rc;
    }
    size_t fn = SL_WIRE_SEALED_HDR + in_n + SL_WIRE_TAG_BYTES;
    uint8_t *out = alloc_frame(fn, err);
    if (!out) {
        free(inner);
        sodium_memzero(&tmp, sizeof tmp);
        return SL_ENOMEM;
    }
    memcpy(out + SL_WIRE_SEALED_HDR, inner, in_n);
    free(inner);
    seal_in_place(out, SL_WIRE_FINISH, h->sid, 0, 0, in_n, tmp.c2s);
    memcpy(c->nk->c2s, tmp.c2s, 32);
    memcpy(c->nk->s2c, tmp.s2c, 32);
    memcpy(c->nk->rs, tmp.rs, 32);
    sodium_memzero(&tmp, sizeof tmp);
    sodium_memzero(c->nk->esk, 32);
    memcpy(c->pending_sid, h->sid, 16);
    c->pending_sttl = h->session_ttl;
    c->pending_tttl = h->ticket_ttl;
    memcpy(c->th, th, 32);
    c->state = SL_CHAN_FINISH_SENT;
    *next = out;
    *next_n = fn;
    return 0;
}

static void become_ready(sl_chan_client *c, const uint8_t sid[16], uint32_t sttl, uint32_t tttl,
                         int new_ticket_clock)
{
    uint64_t now = cnow(c);
    memcpy(c->k->c2s, c->nk->c2s, 32);
    memcpy(c->k->s2c, c->nk->s2c, 32);
    memcpy(c->k->rs, c->nk->rs, 32);
    sodium_memzero(c->nk, sizeof(keyslot));
    memcpy(c->sid, sid, 16);
    c->tx_next = 1;
    c->rx_last = 0;
    c->session_ttl = sttl;
    c->ticket_ttl = tttl;
    c->ready_ms = now;
    c->has_ticket = 1;
    memcpy(c->ticket, sid, 16);
    /* The server counts a ticket's life from the full handshake; we count
     * from when we learned of it, which is never earlier, minus a margin. */
    if (new_ticket_clock)
        c->ticket_expires_ms = now + (uint64_t)tttl * 1000u - margin_ms(tttl);
    c->state = SL_CHAN_READY;
}

static int handle_finish_ok(sl_chan_client *c, uint8_t *frame, const sl_wire_sealed *h,
                            sl_err *err)
{
    if (memcmp(h->sid, c->pending_sid, 16) != 0 || h->counter != 0)
        return sl_err_set(err, SL_ECRYPTO, "FINISH_OK for another session or with counter %llu",
                          (unsigned long long)h->counter);
    uint8_t *pt;
    size_t ptlen;
    if (open_in_place(frame, h, c->nk->s2c, 0, &pt, &ptlen))
        return sl_err_set(err, SL_ECRYPTO, "FINISH_OK does not authenticate (altered or forged)");
    sl_wire_finish_ok fo;
    int rc = sl_wire_finish_ok_decode(pt, ptlen, &fo, err);
    if (rc)
        return rc;
    if (strcmp(fo.peer, c->id.info.name) != 0)
        return sl_err_set(err, SL_ECRYPTO, "the server authenticated us as '%s', not '%s'",
                          fo.peer, c->id.info.name);
    snprintf(c->peer, sizeof c->peer, "%s", fo.peer);
    become_ready(c, c->pending_sid, c->pending_sttl, c->pending_tttl, 1);
    clog_(c, SL_CHAN_LOG_INFO, "authenticated to %s as '%s'", c->cfg.server, c->peer);
    return 0;
}

static int handle_resume_ok(sl_chan_client *c, const uint8_t *frame, size_t n,
                            const sl_wire_resume_ok *o, sl_err *err)
{
    if (o->session_ttl == 0 || o->session_ttl > SL_CHAN_MAX_TTL || o->ticket_ttl == 0 ||
        o->ticket_ttl > SL_CHAN_MAX_TTL)
        return sl_err_set(err, SL_EFORMAT, "RESUME_OK: lifetimes outside 1..%u",
                          SL_CHAN_MAX_TTL);
    uint8_t th[32], shared[32], confirm[32], mac[32];
    transcript_resume(th, c->hs_frame, c->hs_len, frame, n - SL_WIRE_MAC_BYTES);
    if (crypto_scalarmult(shared, c->nk->esk, o->eph) != 0)
        return sl_err_set(err, SL_ECRYPTO, "RESUME_OK: ephemeral key is a low-order point");
    keyslot tmp;
    memcpy(tmp.rs, c->k->rs, 32);
    derive_resumed(&tmp, confirm, shared, th);
    sodium_memzero(shared, sizeof shared);
    confirm_mac(mac, confirm, th);
    sodium_memzero(confirm, sizeof confirm);
    if (crypto_verify_32(mac, o->mac) != 0) {
        sodium_memzero(&tmp, sizeof tmp);
        return sl_err_set(err, SL_ECRYPTO, "RESUME_OK does not authenticate (altered or forged)");
    }
    memcpy(c->nk->c2s, tmp.c2s, 32);
    memcpy(c->nk->s2c, tmp.s2c, 32);
    memcpy(c->nk->rs, tmp.rs, 32);
    sodium_memzero(&tmp, sizeof tmp);
    become_ready(c, o->sid, o->session_ttl, o->ticket_ttl, 0);
    clog_(c, SL_CHAN_LOG_INFO, "resumed the session with %s", c->cfg.server);
    return 0;
}

int sl_chan_client_handle(sl_chan_client *c, uint8_t *frame, size_t n, uint8_t **next,
                          size_t *next_n, sl_err *err)
{
    *next = NULL;
    *next_n = 0;
    sl_wire_msg m;
    int rc = sl_wire_decode(frame, n, &m, err);
    if (rc)
        return rc;
    if (m.type == SL_WIRE_ERROR) {
        rc = server_error(c, &m.u.error, err);
        if (c->state == SL_CHAN_RESUME_SENT && m.u.error.code == SL_WIRE_ERR_SESSION) {
            drop_ticket(c); /* the server no longer knows it: full handshake next */
            c->state = SL_CHAN_IDLE;
        } else if (c->state == SL_CHAN_FINISH_SENT || c->state == SL_CHAN_HELLO_SENT) {
            /* A refused handshake cannot continue; the server dropped it. */
            if (m.u.error.code == SL_WIRE_ERR_DENIED || m.u.error.code == SL_WIRE_ERR_SESSION)
                c->state = SL_CHAN_IDLE;
        }
        return rc;
    }
    switch (c->state) {
    case SL_CHAN_HELLO_SENT:
        if (m.type != SL_WIRE_HELLO_REPLY)
            break;
        return handle_hello_reply(c, frame, n, &m.u.hello_reply, next, next_n, err);
    case SL_CHAN_FINISH_SENT:
        if (m.type != SL_WIRE_FINISH_OK)
            break;
        return handle_finish_ok(c, frame, &m.u.sealed, err);
    case SL_CHAN_RESUME_SENT:
        if (m.type != SL_WIRE_RESUME_OK)
            break;
        return handle_resume_ok(c, frame, n, &m.u.resume_ok, err);
    default:
        break;
    }
    return sl_err_set(err, SL_ESTATE, "client: a %s frame is not expected in state %d",
                      sl_wire_type_name(m.type), (int)c->state);
}

/* Seals a DATA frame: of a copy of payload, or (inplace != NULL) of the
 * frame inplace, a transport buffer of the right size whose payload bytes
 * are already in place (taken on success only). With nonce_only, only the
 * header is written (its nonce goes to nonce_only) and the plaintext
 * stays: the stream seals it into the buffer it sends (stream_put). */
static int seal_data(sl_chan_client *c, int pipelined, uint16_t type, const void *payload,
                     size_t len, uint8_t *inplace, uint8_t **frame, size_t *n,
                     uint8_t *nonce_only, sl_err *err)
{
    if (c->state != SL_CHAN_READY && c->state != SL_CHAN_REQUEST_SENT)
        return sl_err_set(err, SL_ESTATE, "client: no established session");
    if (pipelined && c->nwin >= SL_CHAN_WINDOW)
        return sl_err_set(err, SL_ELIMIT, "client: %u requests in flight already; open a reply "
                          "first", SL_CHAN_WINDOW);
    if (len > SL_WIRE_MAX_PAYLOAD)
        return sl_err_set(err, SL_ELIMIT, "client: message of %zu bytes exceeds %u", len,
                          SL_WIRE_MAX_PAYLOAD);
    if (type == SL_WIRE_APP_NONE)
        return sl_err_set(err, SL_EINVAL, "client: application type 0 is not allowed");
    size_t ptlen = SL_WIRE_APP_HDR + len;
    size_t fn = SL_WIRE_SEALED_HDR + ptlen + SL_WIRE_TAG_BYTES;
    uint8_t *f = inplace ? inplace : alloc_frame(fn, err);
    if (!f)
        return SL_ENOMEM;
    sl_wire_app_header(f + SL_WIRE_SEALED_HDR, type);
    if (len && !inplace)
        memcpy(f + SL_WIRE_SEALED_HDR + SL_WIRE_APP_HDR, payload, len);
    uint64_t ctr = c->tx_next++;
    if (!pipelined)
        c->nwin = 0; /* lockstep: a new request replaces any unanswered one */
    /* ack: the oldest request still awaiting its reply (this one if none):
     * the server may forget its answers to everything before it. */
    if (nonce_only)
        seal_header(f, SL_WIRE_DATA, c->sid, ctr, c->nwin ? c->win[0] : ctr, ptlen, nonce_only);
    else
        seal_in_place(f, SL_WIRE_DATA, c->sid, ctr, c->nwin ? c->win[0] : ctr, ptlen, c->k->c2s);
    c->win[c->nwin++] = ctr;
    c->state = SL_CHAN_REQUEST_SENT;
    *frame = f;
    *n = fn;
    return 0;
}

int sl_chan_client_seal(sl_chan_client *c, uint16_t type, const void *payload, size_t len,
                        uint8_t **frame, size_t *n, sl_err *err)
{
    return seal_data(c, 0, type, payload, len, NULL, frame, n, NULL, err);
}

int sl_chan_client_seal_pipelined(sl_chan_client *c, uint16_t type, const void *payload,
                                  size_t len, uint8_t **frame, size_t *n, sl_err *err)
{
    return seal_data(c, 1, type, payload, len, NULL, frame, n, NULL, err);
}

unsigned sl_chan_client_in_flight(const sl_chan_client *c) { return c->nwin; }

int sl_chan_client_open(sl_chan_client *c, uint8_t *frame, size_t n, sl_wire_app *app,
                        sl_err *err)
{
    if (c->state != SL_CHAN_REQUEST_SENT)
        return sl_err_set(err, SL_ESTATE, "client: no request is waiting for a reply");
    sl_wire_msg m;
    int rc = sl_wire_decode(frame, n, &m, err);
    if (rc)
        return rc;
    if (m.type == SL_WIRE_ERROR) {
        rc = server_error(c, &m.u.error, err);
        if (m.u.error.code == SL_WIRE_ERR_SESSION || m.u.error.code == SL_WIRE_ERR_DENIED)
            drop_session(c); /* the next call establishes a new one */
        if (m.u.error.code == SL_WIRE_ERR_DENIED)
            drop_ticket(c);
        return rc;
    }
    if (m.type != SL_WIRE_REPLY)
        return sl_err_set(err, SL_ESTATE, "client: expected a REPLY, got %s",
                          sl_wire_type_name(m.type));
    const sl_wire_sealed *h = &m.u.sealed;
    if (memcmp(h->sid, c->sid, 16) != 0)
        return sl_err_set(err, SL_ECRYPTO, "REPLY for another session");
    if (c->nwin == 0 || h->ack != c->win[0])
        return sl_err_set(err, SL_ECRYPTO, "REPLY answers request %llu, not %llu",
                          (unsigned long long)h->ack,
                          (unsigned long long)(c->nwin ? c->win[0] : 0));
    if (h->counter <= c->rx_last)
        return sl_err_set(err, SL_ECRYPTO,
                          "replayed or reordered REPLY: counter %llu is not above %llu",
                          (unsigned long long)h->counter, (unsigned long long)c->rx_last);
    uint8_t *pt;
    size_t ptlen;
    if (open_in_place(frame, h, c->k->s2c, 0, &pt, &ptlen))
        return sl_err_set(err, SL_ECRYPTO, "REPLY does not authenticate (altered, truncated or "
                          "forged)");
    sl_wire_app a;
    if ((rc = sl_wire_app_decode(pt, ptlen, &a, err)))
        return rc;
    c->rx_last = h->counter;
    c->nwin--;
    memmove(c->win, c->win + 1, c->nwin * sizeof c->win[0]);
    c->state = c->nwin ? SL_CHAN_REQUEST_SENT : SL_CHAN_READY;
    if (a.type == SL_WIRE_APP_ERROR) {
        sl_wire_error e;
        if ((rc = sl_wire_app_error_decode(a.payload, a.len, &e, err)))
            return rc;
        return sl_err_set(err, e.code == SL_WIRE_ERR_NOTFOUND ? SL_ENOTFOUND : SL_EINVAL,
                          "server: %s", e.msg);
    }
    *app = a;
    return 0;
}

/* ---- client over the transport -------------------------------------------- */

static int ensure_transport(sl_chan_client *c, sl_err *err)
{
    if (c->tp)
        return 0;
    sl_transport_opts o = {.max_msg = SL_WIRE_MAX_FRAME,
                           .resend_ivl_ms = c->cfg.resend_ivl_ms,
                           .sockbuf_bytes = 1 << 20};
    return sl_transport_connect(c->cfg.server, &o, &c->tp, err);
}

/* Sends frame (taken) and waits for the answer. */
static int exchange(sl_chan_client *c, uint8_t *frame, size_t n, sl_transport_msg *answer,
                    sl_err *err)
{
    int rc = sl_transport_send_owned(c->tp, frame, n, err);
    if (rc)
        return rc;
    rc = sl_transport_recv(c->tp, c->cfg.timeout_ms, answer, err);
    if (rc)
        return rc;
    if (!answer->data)
        return sl_err_set(err, SL_EIO, "no answer from %s within %d s (is the server running "
                          "and reachable?)",
                          sl_transport_where(c->tp), c->cfg.timeout_ms / 1000);
    return 0;
}

static int handshake(sl_chan_client *c, int resume, sl_err *err)
{
    uint8_t *frame = NULL;
    size_t n = 0;
    int rc = sl_chan_client_start(c, resume, &frame, &n, err);
    while (!rc && frame) {
        sl_transport_msg ans;
        rc = exchange(c, frame, n, &ans, err);
        frame = NULL;
        if (rc)
            break;
        rc = sl_chan_client_handle(c, ans.data, ans.len, &frame, &n, err);
        sl_transport_msg_free(&ans);
    }
    sl_transport_free(frame);
    if (rc && c->state != SL_CHAN_READY)
        c->state = SL_CHAN_IDLE;
    return rc;
}

int sl_chan_client_connect(sl_chan_client *c, sl_err *err)
{
    int rc = ensure_transport(c, err);
    if (rc)
        return rc;
    if (c->has_ticket && cnow(c) < c->ticket_expires_ms) {
        sl_err e2 = {0};
        rc = handshake(c, 1, &e2);
        if (!rc)
            return 0;
        clog_(c, SL_CHAN_LOG_INFO, "resumption failed (%s); full handshake", e2.msg);
        drop_ticket(c);
    }
    return handshake(c, 0, err);
}

void sl_chan_reply_free(sl_chan_reply *r)
{
    if (!r || !r->msg_)
        return;
    sl_transport_msg m = {.data = r->msg_, .len = 0};
    sl_transport_msg_free(&m);
    memset(r, 0, sizeof *r);
}

int sl_chan_client_call(sl_chan_client *c, uint16_t type, const void *payload, size_t len,
                        sl_chan_reply *reply, sl_err *err)
{
    memset(reply, 0, sizeof *reply);
    int rc = 0;
    if (c->nfl)
        return sl_err_set(err, SL_ESTATE, "client: %u streamed requests are in flight; receive "
                          "their replies first", c->nfl);
    if (!sl_chan_client_session_fresh(c) && (rc = sl_chan_client_connect(c, err)))
        return rc;
    uint8_t *frame = NULL;
    size_t n = 0;
    if ((rc = sl_chan_client_seal(c, type, payload, len, &frame, &n, err)))
        return rc;
    sl_transport_msg ans;
    if ((rc = exchange(c, frame, n, &ans, err)))
        return rc;
    sl_wire_app a;
    rc = sl_chan_client_open(c, ans.data, ans.len, &a, err);
    if (rc) {
        sl_transport_msg_free(&ans);
        return rc;
    }
    reply->type = a.type;
    reply->payload = a.payload;
    reply->len = a.len;
    reply->msg_ = ans.data;
    return 0;
}

/* ---- the stream: several requests in flight ------------------------------- */

#define SL_CHAN_SPARE_MAX ((size_t)4 << 20) /* larger frame buffers are not kept */

/* A frame buffer of at least n bytes (*cap set to its size): the smallest
 * spare that fits, else a new one. */
static uint8_t *frame_get(sl_chan_client *c, size_t n, size_t *cap, sl_err *err)
{
    int best = -1;
    for (int k = 0; k <= (int)SL_CHAN_WINDOW; k++)
        if (c->spare[k] && c->spare_cap[k] >= n &&
            (best < 0 || c->spare_cap[k] < c->spare_cap[best]))
            best = k;
    if (best >= 0) {
        uint8_t *p = c->spare[best];
        *cap = c->spare_cap[best];
        c->spare[best] = NULL;
        return p;
    }
    uint8_t *p = malloc(n);
    if (!p) {
        sl_err_set(err, SL_ENOMEM, "client: cannot allocate a %zu-byte frame", n);
        return NULL;
    }
    *cap = n;
    return p;
}

/* Keeps p (capacity cap) for reuse: in a free slot, else in place of a
 * smaller spare; buffers above SL_CHAN_SPARE_MAX are freed. */
static void frame_put(sl_chan_client *c, uint8_t *p, size_t cap)
{
    if (!p)
        return;
    int slot = -1;
    for (int k = 0; k <= (int)SL_CHAN_WINDOW; k++) {
        if (!c->spare[k]) {
            slot = k;
            break;
        }
        if (slot < 0 || c->spare_cap[k] < c->spare_cap[slot])
            slot = k;
    }
    if (cap > SL_CHAN_SPARE_MAX || (c->spare[slot] && c->spare_cap[slot] >= cap)) {
        free(p);
        return;
    }
    free(c->spare[slot]);
    c->spare[slot] = p;
    c->spare_cap[slot] = cap;
}

/* Forgets every request in flight (their answers, if any come, are
 * discarded); the session stays usable. */
static void stream_abandon(sl_chan_client *c)
{
    for (unsigned k = 0; k < c->nfl; k++) {
        frame_put(c, c->fl[k].frame, c->fl[k].cap);
        sl_transport_msg_free(&c->fl[k].held);
    }
    memset(c->fl, 0, sizeof c->fl);
    c->nfl = 0;
    c->nwin = 0;
    if (c->state == SL_CHAN_REQUEST_SENT)
        c->state = SL_CHAN_READY;
}

static int stream_transport(sl_chan_client *c, sl_err *err)
{
    if (c->ptp)
        return 0;
    /* A small kernel send buffer on purpose: nanomsg writes what the
     * socket takes in the caller's thread and the rest from its I/O
     * thread, so with 256 KiB most of a large request's TCP work (the copy
     * into the kernel and, on loopback, the delivery) leaves the site's
     * thread, which meanwhile seals the next request (docs/performance.md
     * "Channel"). Replies (1 MiB file chunks) still get 4 MiB. */
    sl_transport_opts o = {.max_msg = SL_WIRE_MAX_FRAME,
                           .send_timeout_ms = c->cfg.timeout_ms,
                           .sockbuf_bytes = 4 << 20,
                           .sndbuf_bytes = SL_CHAN_STREAM_SNDBUF,
                           .raw = 1};
    return sl_transport_connect(c->cfg.server, &o, &c->ptp, err);
}

/* (Re)sends flight k under a new request id: the server tells a re-send on
 * a new route from REQ's own re-sends, and answers it from its cache. */
static int stream_put(sl_chan_client *c, unsigned k, sl_err *err)
{
    flight *f = &c->fl[k];
    if (c->state != SL_CHAN_REQUEST_SENT || sodium_memcmp(f->sid, c->sid, sizeof f->sid) != 0)
        return sl_err_set(err, SL_ESTATE, "client: the session of a request in flight ended");
    /* Sealed straight into the buffer nanomsg sends and frees: no copy of
     * the frame on the way out. A re-send seals the same plaintext with
     * the same nonce, header and key again: the same bytes. */
    uint8_t *out = alloc_frame(f->len, err);
    if (!out)
        return SL_ENOMEM;
    seal_to(out, f->frame, f->len - SL_WIRE_SEALED_HDR - SL_WIRE_TAG_BYTES, f->nonce,
            c->k->c2s);
    f->rid = c->next_rid = c->next_rid % 0x7fffffffu + 1;
    f->seq = ++c->send_seq;
    return sl_transport_request_owned(c->ptp, f->rid, out, f->len, err);
}

/* send(), of a copy of payload or of the frame inplace (capacity
 * inplace_cap, payload in place, see seal_data), which is taken in every
 * case. */
static int stream_send(sl_chan_client *c, uint16_t type, const void *payload, size_t len,
                       uint8_t *inplace, size_t inplace_cap, sl_err *err)
{
    int rc = 0;
    if (c->nfl >= SL_CHAN_WINDOW) {
        rc = sl_err_set(err, SL_ELIMIT, "client: %u requests in flight already; receive a "
                        "reply first", SL_CHAN_WINDOW);
        goto fail;
    }
    if (c->nfl == 0) {
        c->nwin = 0; /* a lockstep request that timed out is given up */
        if (!sl_chan_client_session_fresh(c) && (rc = sl_chan_client_connect(c, err)))
            goto fail;
    }
    if ((rc = stream_transport(c, err)))
        goto fail;
    if (len > SL_WIRE_MAX_PAYLOAD) {
        rc = sl_err_set(err, SL_ELIMIT, "client: message of %zu bytes exceeds %u", len,
                        SL_WIRE_MAX_PAYLOAD);
        goto fail;
    }
    if (!inplace) {
        inplace = frame_get(c, SL_WIRE_SEALED_HDR + SL_WIRE_APP_HDR + len + SL_WIRE_TAG_BYTES,
                            &inplace_cap, err);
        if (!inplace)
            return SL_ENOMEM;
        if (len)
            memcpy(inplace + SL_WIRE_SEALED_HDR + SL_WIRE_APP_HDR, payload, len);
    }
    flight *f = &c->fl[c->nfl];
    memset(f, 0, sizeof *f);
    if ((rc = seal_data(c, 1, type, NULL, len, inplace, &f->frame, &f->len, f->nonce, err)))
        goto fail;
    memcpy(f->sid, c->sid, sizeof f->sid);
    f->cap = inplace_cap;
    f->counter = c->win[c->nwin - 1];
    c->nfl++;
    if ((rc = stream_put(c, c->nfl - 1, err)))
        stream_abandon(c); /* frees the frame with the others */
    return rc;
fail:
    frame_put(c, inplace, inplace_cap);
    return rc;
}

int sl_chan_client_send(sl_chan_client *c, uint16_t type, const void *payload, size_t len,
                        sl_err *err)
{
    return stream_send(c, type, payload, len, NULL, 0, err);
}

int sl_chan_client_reserve(sl_chan_client *c, size_t len, uint8_t **buf, sl_err *err)
{
    if (len > SL_WIRE_MAX_PAYLOAD)
        return sl_err_set(err, SL_ELIMIT, "client: message of %zu bytes exceeds %u", len,
                          SL_WIRE_MAX_PAYLOAD);
    size_t cap = 0;
    uint8_t *f = frame_get(c, SL_WIRE_SEALED_HDR + SL_WIRE_APP_HDR + len + SL_WIRE_TAG_BYTES,
                           &cap, err);
    if (!f)
        return SL_ENOMEM;
    frame_put(c, c->resv, c->resv_cap);
    c->resv = f;
    c->resv_len = len;
    c->resv_cap = cap;
    *buf = f + SL_WIRE_SEALED_HDR + SL_WIRE_APP_HDR;
    return 0;
}

int sl_chan_client_send_reserved(sl_chan_client *c, uint16_t type, sl_err *err)
{
    if (!c->resv)
        return sl_err_set(err, SL_ESTATE, "client: no buffer reserved");
    uint8_t *f = c->resv;
    c->resv = NULL;
    return stream_send(c, type, NULL, c->resv_len, f, c->resv_cap, err);
}

/* The flight a received frame answers: by the ack of a REPLY (whichever of
 * its request ids it came back on), else by its request id; -1 if none. */
static int stream_match(const sl_chan_client *c, const sl_transport_msg *m)
{
    sl_wire_msg w;
    if (sl_wire_decode(m->data, m->len, &w, NULL) == 0 && w.type == SL_WIRE_REPLY) {
        for (unsigned k = 0; k < c->nfl; k++)
            if (c->fl[k].counter == w.u.sealed.ack)
                return (int)k;
        return -1;
    }
    uint32_t id = sl_transport_msg_id(m);
    for (unsigned k = 0; k < c->nfl; k++)
        if (id && c->fl[k].rid == id)
            return (int)k;
    return -1;
}

int sl_chan_client_recv(sl_chan_client *c, sl_chan_reply *reply, sl_err *err)
{
    memset(reply, 0, sizeof *reply);
    if (!c->nfl)
        return sl_err_set(err, SL_ESTATE, "client: no streamed request is in flight");
    /* Re-sending too eagerly is not free: a re-send still on its way when
     * the site has moved on reaches the server as a replay and is refused.
     * So never before SL_CHAN_OVERDUE_MS, whatever resend_ivl_ms says. */
    int ivl = c->cfg.resend_ivl_ms > 0 ? c->cfg.resend_ivl_ms : SL_TRANSPORT_DEFAULT_RESEND_MS;
    if (ivl < SL_CHAN_OVERDUE_MS)
        ivl = SL_CHAN_OVERDUE_MS;
    uint64_t overdue = SL_CHAN_OVERDUE_MS;
    uint64_t start = mono_ms(NULL), last = start;
    uint64_t deadline = start + (uint64_t)c->cfg.timeout_ms;
    sl_transport_msg m = {0};
    int rc = 0;
    for (;;) {
        flight *f0 = &c->fl[0];
        if (f0->held.data) {
            m = f0->held;
            memset(&f0->held, 0, sizeof f0->held);
            break;
        }
        /* One connection delivers in order: an answer to a request sent
         * after this one's last sending means this one's answer was lost
         * (raw REP drops a reply while the previous one is still being
         * written). Ask again at once. */
        for (unsigned k = 1; k < c->nfl; k++)
            if (c->fl[k].held.data && c->fl[k].seq > f0->seq) {
                if ((rc = stream_put(c, 0, err)))
                    goto fail;
                break;
            }
        uint64_t now = mono_ms(NULL);
        if (now >= deadline) {
            rc = sl_err_set(err, SL_EIO, "no answer from %s within %d s (is the server running "
                            "and reachable?)", sl_transport_where(c->ptp),
                            c->cfg.timeout_ms / 1000);
            goto fail;
        }
        if (now - last >= overdue) {
            /* Nothing for a while: the connection may have been lost with
             * the requests on it. Everything in flight goes again, in
             * order; what the server already answered comes from its cache. */
            for (unsigned k = 0; k < c->nfl; k++)
                if (!c->fl[k].held.data && (rc = stream_put(c, k, err)))
                    goto fail;
            last = now;
            overdue = overdue * 2 < (uint64_t)ivl ? overdue * 2 : (uint64_t)ivl;
            continue;
        }
        uint64_t wait = overdue - (now - last);
        if (wait > deadline - now)
            wait = deadline - now;
        if ((rc = sl_transport_recv(c->ptp, (int)wait, &m, err)))
            goto fail;
        if (!m.data)
            continue;
        last = mono_ms(NULL);
        int k = stream_match(c, &m);
        if (k == 0)
            break;
        if (k > 0 && !c->fl[k].held.data)
            c->fl[k].held = m; /* came early: kept until its turn */
        else
            sl_transport_msg_free(&m); /* a duplicate, or for a request given up */
    }
    sl_wire_app a;
    unsigned before = c->nwin;
    rc = sl_chan_client_open(c, m.data, m.len, &a, err);
    if (rc && c->nwin != before - 1) { /* refused: the stream cannot go on */
        sl_transport_msg_free(&m);
        goto fail;
    }
    frame_put(c, c->fl[0].frame, c->fl[0].cap);
    c->nfl--;
    memmove(c->fl, c->fl + 1, c->nfl * sizeof c->fl[0]);
    memset(&c->fl[c->nfl], 0, sizeof c->fl[0]);
    if (rc) { /* the server's authenticated refusal of this request only */
        sl_transport_msg_free(&m);
        return rc;
    }
    reply->type = a.type;
    reply->payload = a.payload;
    reply->len = a.len;
    reply->msg_ = m.data;
    return 0;
fail:
    stream_abandon(c);
    return rc;
}

int sl_chan_client_close(sl_chan_client *c, sl_err *err)
{
    int rc = 0;
    stream_abandon(c);
    if (c->state == SL_CHAN_READY || c->state == SL_CHAN_REQUEST_SENT) {
        uint8_t *frame = NULL;
        size_t n = 0;
        sl_transport_msg ans = {0};
        rc = sl_chan_client_seal(c, SL_WIRE_APP_CLOSE, NULL, 0, &frame, &n, err);
        if (!rc)
            rc = exchange(c, frame, n, &ans, err);
        if (!rc) {
            sl_wire_app a;
            rc = sl_chan_client_open(c, ans.data, ans.len, &a, err);
            if (!rc && a.type != SL_WIRE_APP_CLOSE_OK)
                rc = sl_err_set(err, SL_EFORMAT, "close: unexpected answer 0x%04x", a.type);
        }
        sl_transport_msg_free(&ans);
    }
    drop_session(c);
    drop_ticket(c);
    return rc;
}

/* ---- fetch ----------------------------------------------------------------- */

/* dest.part.info: "sealora-partial 1\n<digest hex>\n<size>\n<durable offset>\n" */
static int info_read(const char *path, uint8_t digest[32], uint64_t *size, uint64_t *off)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    if (sl_fs_read_all(path, 512, &buf, &n, NULL))
        return -1;
    char hex[65];
    unsigned long long sz = 0, o = 0;
    int ok = sscanf((char *)buf, "sealora-partial 1\n%64s\n%llu\n%llu\n", hex, &sz, &o) == 3 &&
             sodium_hex2bin(digest, 32, hex, 64, NULL, NULL, NULL) == 0 && o <= sz;
    free(buf);
    if (!ok)
        return -1;
    *size = sz;
    *off = o;
    return 0;
}

static int info_write(const char *path, const uint8_t digest[32], uint64_t size, uint64_t off,
                      sl_err *err)
{
    char hex[65], buf[160];
    sodium_bin2hex(hex, sizeof hex, digest, 32);
    int n = snprintf(buf, sizeof buf, "sealora-partial 1\n%s\n%llu\n%llu\n", hex,
                     (unsigned long long)size, (unsigned long long)off);
    return sl_fs_write_atomic(path, buf, (size_t)n, 0644, err);
}

/* One idempotent request with retries: re-establishes the session when it
 * was lost or timed out. */
static int call_retry(sl_chan_client *c, uint16_t type, const void *p, size_t n,
                      sl_chan_reply *r, sl_err *err)
{
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = sl_chan_client_call(c, type, p, n, r, err);
        if (rc == 0 || (rc != SL_EIO && rc != SL_ESTATE))
            return rc;
        clog_(c, SL_CHAN_LOG_WARN, "retrying after: %s", err ? err->msg : "error");
        if (rc == SL_EIO)
            drop_session(c); /* a fresh session after a timeout */
    }
    return rc;
}

static int file_request(sl_chan_client *c, uint16_t type, const char *name, uint64_t off,
                        uint32_t len, sl_chan_reply *r, sl_err *err)
{
    sl_wire_file_req q;
    memset(&q, 0, sizeof q);
    snprintf(q.name, sizeof q.name, "%s", name);
    q.offset = off;
    q.len = len;
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = sl_wire_file_req_encode(&q, &buf, &n, err);
    if (rc)
        return rc;
    rc = call_retry(c, type, buf, n, r, err);
    free(buf);
    return rc;
}

/* The server's size, chunk size and digest of file `name`. */
static int fetch_info(sl_chan_client *c, const char *name, sl_wire_file_info *fi, sl_err *err)
{
    sl_chan_reply r;
    int rc = file_request(c, SL_WIRE_APP_FILE_INFO_REQ, name, 0, 0, &r, err);
    if (rc)
        return rc;
    if (r.type != SL_WIRE_APP_FILE_INFO)
        rc = sl_err_set(err, SL_EFORMAT, "fetch '%s': unexpected answer type 0x%04x", name,
                        r.type);
    else
        rc = sl_wire_file_info_decode(r.payload, r.len, fi, err);
    sl_chan_reply_free(&r);
    return rc;
}

int sl_chan_client_have(sl_chan_client *c, const char *name, const char *dest, sl_err *err)
{
    sl_wire_file_info fi;
    int rc = sl_wire_check_file_name(name, err);
    if (rc || (rc = fetch_info(c, name, &fi, err)))
        return rc;
    int fd = open(dest, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : sl_err_errno(err, "%s: open", dest);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = sl_err_errno(err, "%s: stat", dest);
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != fi.size) {
        close(fd);
        return 0;
    }
    uint8_t *buf = malloc(1u << 20);
    if (!buf) {
        close(fd);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, 32);
    uint64_t p = 0;
    while (p < fi.size) {
        ssize_t got = read(fd, buf, 1u << 20);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        crypto_generichash_update(&hs, buf, (size_t)got);
        p += (uint64_t)got;
    }
    rc = p != fi.size ? sl_err_errno(err, "%s: read", dest) : 0;
    free(buf);
    close(fd);
    uint8_t dig[32];
    crypto_generichash_final(&hs, dig, 32);
    if (rc)
        return rc;
    return sodium_memcmp(dig, fi.digest, 32) == 0;
}

/* One chunk request added to the stream. */
static int chunk_send(sl_chan_client *c, const char *name, uint64_t off, uint32_t len,
                      sl_err *err)
{
    sl_wire_file_req q;
    memset(&q, 0, sizeof q);
    snprintf(q.name, sizeof q.name, "%s", name);
    q.offset = off;
    q.len = len;
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = sl_wire_file_req_encode(&q, &buf, &n, err);
    if (!rc)
        rc = sl_chan_client_send(c, SL_WIRE_APP_CHUNK_REQ, buf, n, err);
    free(buf);
    return rc;
}

int sl_chan_client_fetch(sl_chan_client *c, const char *name, const char *dest,
                         sl_chan_progress_fn progress, void *ctx, sl_err *err)
{
    int rc = sl_wire_check_file_name(name, err);
    if (rc)
        return rc;
    char part[SL_CHAN_PATH_MAX], info[SL_CHAN_PATH_MAX];
    if (snprintf(part, sizeof part, "%s.part", dest) >= (int)sizeof part ||
        snprintf(info, sizeof info, "%s.part.info", dest) >= (int)sizeof info)
        return sl_err_set(err, SL_ELIMIT, "%.80s...: path too long", dest);
    sl_chan_reply r;
    sl_wire_file_info fi;
    if ((rc = fetch_info(c, name, &fi, err)))
        return rc;
    /* Resume only a partial download of the very same file. */
    uint8_t pdig[32];
    uint64_t psize = 0, off = 0;
    if (info_read(info, pdig, &psize, &off) != 0 || psize != fi.size ||
        sodium_memcmp(pdig, fi.digest, 32) != 0)
        off = 0;
    int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return sl_err_errno(err, "%s: open", part);
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < off)
        off = 0;
    if (ftruncate(fd, (off_t)off) != 0) {
        rc = sl_err_errno(err, "%s: truncate", part);
        goto out;
    }
    if (off == 0 && (rc = info_write(info, fi.digest, fi.size, 0, err)))
        goto out;
    if (off)
        clog_(c, SL_CHAN_LOG_INFO, "resuming '%s' at byte %llu of %llu", name,
              (unsigned long long)off, (unsigned long long)fi.size);
    /* Hash what is already there, then each chunk as it arrives. */
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, 32);
    {
        uint8_t *buf = malloc(1 << 20);
        if (!buf) {
            rc = sl_err_set(err, SL_ENOMEM, "fetch: out of memory");
            goto out;
        }
        for (uint64_t p = 0; p < off;) {
            size_t want = off - p < (1u << 20) ? (size_t)(off - p) : (1u << 20);
            ssize_t got = pread(fd, buf, want, (off_t)p);
            if (got <= 0) {
                free(buf);
                rc = sl_err_errno(err, "%s: read", part);
                goto out;
            }
            crypto_generichash_update(&hs, buf, (size_t)got);
            p += (uint64_t)got;
        }
        free(buf);
    }
    uint64_t synced = off;
    if (progress && progress(ctx, off, fi.size)) {
        rc = sl_err_set(err, SL_EABORT, "fetch '%s' stopped at byte %llu of %llu", name,
                        (unsigned long long)off, (unsigned long long)fi.size);
        goto out;
    }
    /* Up to SL_CHAN_WINDOW chunk requests in flight: the server reads and
     * seals the next chunks while this side opens, hashes and writes this
     * one. Answers come in request order; a failure gives up what is in
     * flight and asks again from the first byte not yet written. */
    uint64_t asked = off;
    int failures = 0;
    while (off < fi.size) {
        while (rc == 0 && asked < fi.size && sl_chan_client_in_flight(c) < SL_CHAN_WINDOW) {
            uint32_t len = fi.size - asked < fi.chunk ? (uint32_t)(fi.size - asked) : fi.chunk;
            rc = chunk_send(c, name, asked, len, err);
            if (!rc)
                asked += len;
        }
        if (!rc)
            rc = sl_chan_client_recv(c, &r, err);
        if (rc == SL_EIO || rc == SL_ESTATE) {
            stream_abandon(c);
            if (++failures >= 3)
                goto out;
            clog_(c, SL_CHAN_LOG_WARN, "retrying after: %s", err ? err->msg : "error");
            if (rc == SL_EIO)
                drop_session(c); /* a fresh session after a timeout */
            asked = off;
            rc = 0;
            continue;
        }
        if (rc)
            goto out;
        uint32_t want = fi.size - off < fi.chunk ? (uint32_t)(fi.size - off) : fi.chunk;
        sl_wire_chunk ch;
        if (r.type != SL_WIRE_APP_CHUNK)
            rc = sl_err_set(err, SL_EFORMAT, "fetch '%s': unexpected answer type 0x%04x", name,
                            r.type);
        else if (!(rc = sl_wire_chunk_decode(r.payload, r.len, &ch, err)) &&
                 (ch.offset != off || ch.len != want))
            rc = sl_err_set(err, SL_EFORMAT,
                            "fetch '%s': chunk at %llu of %zu bytes, asked for %llu (%u bytes)",
                            name, (unsigned long long)ch.offset, ch.len,
                            (unsigned long long)off, want);
        if (rc) {
            sl_chan_reply_free(&r);
            goto out;
        }
        failures = 0;
        size_t put = 0;
        while (put < ch.len) {
            ssize_t w = pwrite(fd, ch.data + put, ch.len - put, (off_t)(off + put));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = sl_err_errno(err, "%s: write", part);
                sl_chan_reply_free(&r);
                goto out;
            }
            put += (size_t)w;
        }
        crypto_generichash_update(&hs, ch.data, ch.len);
        sl_chan_reply_free(&r);
        off += want;
        int stop = progress && off < fi.size && progress(ctx, off, fi.size);
        if ((stop || off - synced >= SL_CHAN_SYNC_EVERY) && off < fi.size) {
            /* Durable checkpoint: data first, then the offset that covers it. */
            if (fdatasync(fd) != 0) {
                rc = sl_err_errno(err, "%s: fdatasync", part);
                goto out;
            }
            if ((rc = info_write(info, fi.digest, fi.size, off, err)))
                goto out;
            synced = off;
        }
        if (stop) {
            rc = sl_err_set(err, SL_EABORT,
                            "fetch '%s' stopped at byte %llu of %llu; run it again to resume",
                            name, (unsigned long long)off, (unsigned long long)fi.size);
            goto out;
        }
    }
    if (progress)
        progress(ctx, off, fi.size);
    uint8_t got[32];
    crypto_generichash_final(&hs, got, 32);
    if (sodium_memcmp(got, fi.digest, 32) != 0) {
        unlink(part);
        unlink(info);
        rc = sl_err_set(err, SL_ECRYPTO,
                        "fetch '%s': digest of the received file does not match the server's; "
                        "the partial download was removed, fetch again",
                        name);
        goto out;
    }
    if (fsync(fd) != 0) {
        rc = sl_err_errno(err, "%s: fsync", part);
        goto out;
    }
    if (rename(part, dest) != 0) {
        rc = sl_err_errno(err, "%s: rename to %s", part, dest);
        goto out;
    }
    unlink(info);
    rc = sl_fs_sync_dir_of(dest, err);
out:
    /* After a stop, the chunks in flight are received and dropped: left on
     * the wire they would reach the server after the next request and be
     * refused as reordered. After a failure they are given up. */
    while (rc == SL_EABORT && c->nfl) {
        sl_chan_reply drop;
        if (sl_chan_client_recv(c, &drop, NULL))
            break;
        sl_chan_reply_free(&drop);
    }
    stream_abandon(c);
    close(fd);
    return rc;
}
