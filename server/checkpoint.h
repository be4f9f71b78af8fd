/* server/checkpoint.h - the aggregation server's durable state between
 * rounds: the global adapter (the LoRA's flat vector), the server
 * optimiser's state (FedAdam moments), the privacy accountant (RDP per
 * order) and the round counters, in one file written atomically
 * (sl_fs_write_atomic: temporary, fsync, rename, folder fsync), so a server
 * killed at any instant restarts from the last completed round.
 *
 * A round in flight is recorded before it touches any site's data: the
 * checkpoint written at its start carries the round number and the
 * mechanism it may release (with the fewest survivors a released round can
 * have, so the charge is an upper bound). A restart that finds such a
 * pending round charges it to the accountant, whether or not the crash
 * happened before its result was released: the budget is never
 * under-counted.
 *
 * Format (docs/runtime.md): magic "SLCKPT01", u32 version, then the fields
 * below little-endian (doubles as IEEE bits), then a BLAKE2b-256 of all the
 * preceding bytes. Decoding reads through sl_reader, checks every count
 * against its limit before allocating and refuses trailing bytes, a bad
 * digest or non-finite values.
 *
 * Ownership: an sl_ckpt owns its vectors (sl_ckpt_fini). Thread-safe (no
 * shared state). */
#ifndef SL_CHECKPOINT_H
#define SL_CHECKPOINT_H
#include <stddef.h>
#include <stdint.h>

#include "crypto/accountant.h"
#include "shared/err.h"

#define SL_CKPT_FILE "checkpoint.bin"
#define SL_CKPT_VERSION 1u
#define SL_CKPT_MAX_DIM (1u << 28)

enum { SL_CKPT_FEDAVG = 0, SL_CKPT_FEDADAM = 1 };

typedef struct sl_ckpt {
    uint64_t round;          /* last round whose result was released (0: none) */
    uint64_t next_round;     /* number the next round takes (> every number used) */
    uint64_t pending_round;  /* a round started and not finished (0: none) */
    sl_acct_mech pending;    /* its upper-bound mechanism */
    sl_acct acct;            /* privacy spent so far */
    int optimizer;           /* SL_CKPT_FEDAVG or SL_CKPT_FEDADAM */
    uint64_t adam_t;         /* FedAdam steps taken */
    uint32_t dim;            /* adapter floats */
    float *global;           /* dim floats */
    float *m, *v;            /* FedAdam moments, dim floats each (NULL for FedAvg) */
} sl_ckpt;

/* Allocates the vectors for dim (zeroed), accountant on the default grid. */
int sl_ckpt_init(sl_ckpt *c, uint32_t dim, int optimizer, sl_err *err);
void sl_ckpt_fini(sl_ckpt *c); /* accepts a zeroed struct */
int sl_ckpt_encode(const sl_ckpt *c, uint8_t **out, size_t *n, sl_err *err);
/* c is untouched on failure. */
int sl_ckpt_decode(const uint8_t *buf, size_t n, sl_ckpt *c, sl_err *err);
int sl_ckpt_save(const char *path, const sl_ckpt *c, sl_err *err);
/* SL_ENOTFOUND when the file does not exist. */
int sl_ckpt_load(const char *path, sl_ckpt *c, sl_err *err);

#endif
