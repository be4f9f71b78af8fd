/* crypto/secagg_msg.h - the byte format of the secure-aggregation messages
 * the client and server state machines exchange (the runtime carries them
 * over the encrypted channel). Every message starts with
 *   u8 version (SL_SECAGG_MSG_VERSION) | u8 type | u64le round
 * followed by a body per type (docs/secagg.md "Messages"):
 *   ADVERTISE   site->server  u32 site, c_pk[32], s_pk[32], commit[32], sig[64]
 *   KEYLIST     server->all   u32 degree, u32 share_threshold, u32 threshold,
 *                             u32 min_cohort, u32 dim, u8 bits, u32 n, n adverts
 *                             (as above) in strictly increasing site order
 *   SHARES      site->server  u32 site, u32 n, n x (u32 to, bundle[122]), to increasing
 *   DELIVER     server->site  u32 site, u32 n, n x (u32 from, bundle[122]), from increasing
 *   MASKED      site->server  u32 site, u8 bits, u32 dim, dim words (bits/8 bytes, LE)
 *   UNMASK_REQ  server->all   u32 n, n survivor ids, strictly increasing
 *   UNMASK      site->server  u32 site, u32 n, n x (u32 about, u8 kind, share[33]),
 *                             about non-decreasing (repeats are for the server to refuse)
 * Decoding goes through sl_reader with a limit on every count and length,
 * checks it before allocating, and refuses trailing bytes. A decoded MASKED
 * message borrows its words from the input buffer; every other array is
 * owned by the message and freed (and wiped) by sl_secagg_msg_fini.
 * Not thread-safe per message; the functions keep no state. */
#ifndef SL_SECAGG_MSG_H
#define SL_SECAGG_MSG_H
#include <stddef.h>
#include <stdint.h>

#include "crypto/secagg_keys.h"
#include "shared/err.h"

#define SL_SECAGG_MSG_VERSION 1
#define SL_SECAGG_MSG_MAX_LIST 10000u  /* ids in KEYLIST / UNMASK_REQ */
#define SL_SECAGG_MSG_MAX_GROUP 255u   /* entries in SHARES / DELIVER / UNMASK */
#define SL_SECAGG_MSG_MAX_DIM (1u << 26)
#define SL_SECAGG_MSG_MAX ((size_t)32 + (size_t)8 * SL_SECAGG_MSG_MAX_DIM)

enum {
    SL_SECAGG_MSG_ADVERTISE = 1,
    SL_SECAGG_MSG_KEYLIST = 2,
    SL_SECAGG_MSG_SHARES = 3,
    SL_SECAGG_MSG_DELIVER = 4,
    SL_SECAGG_MSG_MASKED = 5,
    SL_SECAGG_MSG_UNMASK_REQ = 6,
    SL_SECAGG_MSG_UNMASK = 7,
};
enum { SL_SECAGG_SHARE_SELF = 1, SL_SECAGG_SHARE_KEY = 2 }; /* UNMASK kinds */

typedef struct sl_secagg_advert {
    uint32_t site;
    uint8_t c_pk[SL_SECAGG_KEY_BYTES];  /* X25519: shares are sealed to it */
    uint8_t s_pk[SL_SECAGG_KEY_BYTES];  /* X25519: pairwise mask seeds */
    uint8_t commit[SL_SECAGG_COMMIT_BYTES]; /* hash of the self-mask seed */
    uint8_t sig[SL_SECAGG_SIG_BYTES];   /* Ed25519 by the site's identity key */
} sl_secagg_advert;

typedef struct sl_secagg_sealed {
    uint32_t peer; /* SHARES: recipient; DELIVER: sender */
    uint8_t bundle[SL_SECAGG_BUNDLE_BYTES];
} sl_secagg_sealed;

typedef struct sl_secagg_unmask_share {
    uint32_t about; /* the site whose secret this is a share of */
    uint8_t kind;   /* SL_SECAGG_SHARE_SELF or SL_SECAGG_SHARE_KEY */
    uint8_t share[SL_SECAGG_SHARE_BYTES];
} sl_secagg_unmask_share;

typedef struct sl_secagg_round_params {
    uint32_t degree, share_threshold, threshold, min_cohort, dim;
    uint8_t bits;
} sl_secagg_round_params;

typedef struct sl_secagg_msg {
    uint8_t type;
    uint64_t round;
    uint32_t site;                   /* sender; DELIVER: recipient */
    sl_secagg_advert advert;         /* ADVERTISE */
    sl_secagg_round_params params;   /* KEYLIST */
    uint32_t count;                  /* entries of the type's array */
    sl_secagg_advert *adverts;       /* KEYLIST */
    sl_secagg_sealed *sealed;        /* SHARES, DELIVER */
    uint32_t *ids;                   /* UNMASK_REQ */
    sl_secagg_unmask_share *shares;  /* UNMASK */
    uint8_t bits;                    /* MASKED: 32 or 64 */
    uint32_t dim;                    /* MASKED: words */
    const uint8_t *words;            /* MASKED after decode: LE words in the input (borrowed) */
    const void *vec;                 /* MASKED for encode: host-order words (borrowed) */
} sl_secagg_msg;

/* Encodes m into a new buffer (*out, free() it). SL_EINVAL for a message
 * that breaks the format's own rules (order, limits, kinds). */
int sl_secagg_msg_encode(const sl_secagg_msg *m, uint8_t **out, size_t *len, sl_err *err);
/* Decodes buf into m (zeroed first). On failure m holds nothing to free and
 * the message names the field and offset. */
int sl_secagg_msg_decode(sl_secagg_msg *m, const uint8_t *buf, size_t len, sl_err *err);
void sl_secagg_msg_fini(sl_secagg_msg *m); /* frees and wipes; accepts a zeroed message */
/* Name of a type for messages ("advertise", ...; "unknown"). */
const char *sl_secagg_msg_type_name(int type);

#endif
