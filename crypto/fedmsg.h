/* crypto/fedmsg.h - payloads of the federated runtime's application
 * messages (types SL_WIRE_APP_FED_* in shared/wire.h; docs/runtime.md has
 * the exchange). They travel inside the authenticated, encrypted channel;
 * a site only asks, so every server instruction is the reply to a POLL:
 *
 *   JOIN     c->s  u32 version | blob32 site certificate (DER)
 *   JOIN_OK  s->c  u32 version | blob32 server certificate (DER) |
 *                  u32 n | n x blob32 file name (the model the sites tune)
 *   POLL     c->s  u64 round the site is working on (0: none) | u64 the
 *                  latest round whose receipt the site holds (0: none);
 *                  the server sends receipts in round order, so this
 *                  acknowledges every receipt up to it
 *   WAIT     s->c  u32 milliseconds
 *   DONE     s->c  blob32 reason (printable text)
 *   TASK     s->c  u64 round | u8 kind | body:
 *                    TRAIN       the round's instructions (sl_fed_train)
 *                    KEYLIST, DELIVER, UNMASK_REQ  a secure-aggregation
 *                                message (crypto/secagg_msg), to the end
 *                    RECEIPT     the signed receipt (JSON text), to the end
 *   SUBMIT   c->s  u64 round | a secure-aggregation message, to the end
 *   ACK      s->c  empty
 *
 * TRAIN body: LoRA (u32 rank, f32 alpha, u32 targets, u32 n, n x u32
 * layer), local training (u32 steps, u32 batch, u32 seq, f32 lr, u64 seed),
 * DP parameters (u32 dim, f64 clip, f64 scale, f64 sigma, u32 threshold,
 * f64 beta, u8 mode, u8 bits, seed[32]), secure-aggregation configuration
 * (u32 cohort, min_cohort, threshold, degree, share_threshold, f64 dropout,
 * u32 dim, u8 bits), the cohort (u32 n, n x (u32 id, blob32 certificate DER) in
 * increasing id order; the certificate lets each site check every key
 * against the deployment CA instead of taking it from the server), and the
 * global adapter (u32 n, n x f32). Integers
 * and floats little-endian (f64 as its IEEE bits). Every count has a limit
 * checked before allocating; decoders read through sl_reader, refuse
 * trailing bytes and leave outputs untouched on failure. Semantic checks of
 * the parameters (sl_dp_plan_init, sl_secagg_config_validate) are the
 * caller's; the decoder only checks the form, non-finite floats and that the
 * dimensions agree.
 *
 * Ownership: decoded byte views (certificates, secure-aggregation bodies,
 * receipts) borrow the input buffer; a decoded sl_fed_train owns its arrays
 * (sl_fed_train_fini). Stateless and thread-safe. */
#ifndef SL_FEDMSG_H
#define SL_FEDMSG_H
#include <stddef.h>
#include <stdint.h>

#include "crypto/dp.h"
#include "crypto/identity.h"
#include "crypto/secagg_config.h"
#include "shared/err.h"
#include "shared/wire.h"

#define SL_FEDMSG_VERSION 3 /* 2: POLL acknowledges receipts, TRAIN carries certificates;
                             * 3: the DP rotation in blocks (sl_dp_layout) */
#define SL_FEDMSG_MAX_FILES 16u
#define SL_FEDMSG_MAX_LAYERS 256u
#define SL_FEDMSG_MAX_STEPS 1000000u
#define SL_FEDMSG_MAX_BATCH 4096u
#define SL_FEDMSG_MAX_SEQ 65536u
/* Adapter floats in one TRAIN: the payload limit minus room for the rest. */
#define SL_FEDMSG_MAX_DIM ((SL_WIRE_MAX_PAYLOAD - (1u << 20)) / 4u)

enum {
    SL_FED_TASK_TRAIN = 1,
    SL_FED_TASK_KEYLIST = 2,
    SL_FED_TASK_DELIVER = 3,
    SL_FED_TASK_UNMASK_REQ = 4,
    SL_FED_TASK_RECEIPT = 5,
};

typedef struct sl_fed_join_ok {
    const uint8_t *cert; /* server certificate, DER, borrowed */
    size_t cert_len;
    uint32_t nfiles;
    char files[SL_FEDMSG_MAX_FILES][SL_WIRE_MAX_NAME + 1]; /* transfer names */
} sl_fed_join_ok;

typedef struct sl_fed_train {
    uint32_t rank;
    float alpha;
    uint32_t targets;  /* SL_LORA_* bits (shared/lora.h) */
    uint32_t nlayers;
    uint32_t layers[SL_FEDMSG_MAX_LAYERS];
    uint32_t steps, batch, seq;
    float lr;
    uint64_t seed;     /* batch sampling seed for this site and round */
    sl_dp_params dp;
    sl_secagg_config sa;
    uint32_t n_sites;
    uint32_t *ids;     /* owned after decode; borrowed for encode */
    const uint8_t **certs; /* each site's certificate (DER); the pointer array
                            * is owned after decode, the bytes borrow the body */
    uint32_t *cert_lens;   /* owned after decode; borrowed for encode */
    uint8_t (*pks)[32];    /* not on the wire: zero after decode, for the
                            * receiver to fill from the verified certificates */
    uint32_t dim;      /* == dp.dim */
    float *global;     /* dim floats; owned after decode, borrowed for encode */
} sl_fed_train;

typedef struct sl_fed_task {
    uint64_t round;
    uint8_t kind;          /* SL_FED_TASK_* */
    const uint8_t *body;   /* borrowed: everything after the kind */
    size_t len;
} sl_fed_task;

/* Each encoder returns a malloc'd payload (free()). */
int sl_fed_join_encode(const uint8_t *cert, size_t cert_len, uint8_t **out, size_t *n,
                       sl_err *err);
int sl_fed_join_decode(const uint8_t *buf, size_t n, const uint8_t **cert, size_t *cert_len,
                       sl_err *err);
int sl_fed_join_ok_encode(const sl_fed_join_ok *j, uint8_t **out, size_t *n, sl_err *err);
int sl_fed_join_ok_decode(const uint8_t *buf, size_t n, sl_fed_join_ok *j, sl_err *err);
int sl_fed_poll_encode(uint64_t round, uint64_t receipt_round, uint8_t **out, size_t *n,
                       sl_err *err);
int sl_fed_poll_decode(const uint8_t *buf, size_t n, uint64_t *round, uint64_t *receipt_round,
                       sl_err *err);
int sl_fed_u32_encode(uint32_t v, uint8_t **out, size_t *n, sl_err *err); /* WAIT */
int sl_fed_u32_decode(const uint8_t *buf, size_t n, uint32_t *v, sl_err *err);
int sl_fed_text_encode(const char *text, uint8_t **out, size_t *n, sl_err *err); /* DONE */
int sl_fed_text_decode(const uint8_t *buf, size_t n, char out[SL_WIRE_MAX_TEXT + 1],
                       sl_err *err);
/* TASK with a raw body (KEYLIST, DELIVER, UNMASK_REQ, RECEIPT). */
int sl_fed_task_encode(uint64_t round, uint8_t kind, const void *body, size_t len,
                       uint8_t **out, size_t *n, sl_err *err);
int sl_fed_task_decode(const uint8_t *buf, size_t n, sl_fed_task *t, sl_err *err);
/* Checks every cohort member's certificate against trust (the deployment CA
 * and its revocation list, role site, validity now) and fills t->pks from
 * them; refuses a member whose certificate does not verify and two members
 * with the same key or name (SL_ECRYPTO, naming the member). On failure
 * t->pks is left zero. */
int sl_fed_cohort_verify(sl_fed_train *t, sl_trust *trust, sl_err *err);
/* TASK of kind TRAIN. */
int sl_fed_train_encode(uint64_t round, const sl_fed_train *t, uint8_t **out, size_t *n,
                        sl_err *err);
/* Decodes the body of a TRAIN task into t (zeroed first). */
int sl_fed_train_decode(const uint8_t *body, size_t len, sl_fed_train *t, sl_err *err);
void sl_fed_train_fini(sl_fed_train *t); /* accepts a zeroed struct */
/* SUBMIT: round + secure-aggregation message. */
int sl_fed_submit_encode(uint64_t round, const void *msg, size_t len, uint8_t **out, size_t *n,
                         sl_err *err);
int sl_fed_submit_decode(const uint8_t *buf, size_t n, uint64_t *round, const uint8_t **msg,
                         size_t *len, sl_err *err);

#endif
