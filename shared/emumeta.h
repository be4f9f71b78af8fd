/* shared/emumeta.h - the manifest of an emulator package (offsite tuning,
 * docs/offsite.md): what the emulator is (base model digest, which block of
 * the full model each emulator block is, adapter blocks, drop settings,
 * distillation recipe) and the SHA-256 of every file beside it. This is the
 * manifest.json codec only (JSON with jansson, strict: unknown keys,
 * duplicates, wrong types and out-of-range values refused, naming the
 * field); signing and the folder checks live in crypto/emupkg, so that the
 * shared model commands (train --emulator) can read a package's layer map
 * without seeing the crypto layer. Format: docs/formats.md.
 *
 * Ownership: plain caller storage. Thread-safe (no shared state). */
#ifndef SL_EMUMETA_H
#define SL_EMUMETA_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define SL_EMUMETA_FORMAT "sealora-emulator"
#define SL_EMUMETA_VERSION 1
#define SL_EMUMETA_FILE "manifest.json"
#define SL_EMUMETA_SIG_FILE "manifest.sig"
#define SL_EMUMETA_MAX_BYTES (1u << 20) /* manifest.json size limit */
#define SL_EMUMETA_MAX_FILES 32          /* files besides the manifest and signature */
#define SL_EMUMETA_MAX_LAYERS 256        /* full model's blocks (= SL_HFCONFIG_MAX_LAYER) */
#define SL_EMUMETA_NAME_MAX 127          /* file name length: [A-Za-z0-9._-], no leading dot */

typedef struct sl_emumeta_file {
    char name[SL_EMUMETA_NAME_MAX + 1];
    char sha256[65];  /* lowercase hex */
    uint64_t bytes;
} sl_emumeta_file;

/* The distillation that produced the middle blocks (absent: plain drop). */
typedef struct sl_emumeta_distill {
    int present;
    char text[256];        /* the public text's file name as given (informative) */
    char text_sha256[65];  /* of the text file, or "" for a folder */
    long steps;
    int batch, seq;        /* B x T per step */
    double lr;
    double kl_weight;      /* weight of the logit KL term; 0 = MSE only */
    uint64_t seed;
    double mse_before, mse_after; /* hidden-state MSE on held-out batches */
} sl_emumeta_distill;

typedef struct sl_emumeta {
    char base_sha256[65];  /* SHA-256 of the full model's model.safetensors */
    int full_layers;       /* blocks of the full model */
    int nblocks;           /* blocks of the emulator */
    int layer_map[SL_EMUMETA_MAX_LAYERS]; /* full-model index of each emulator block, ascending */
    int bottom, top;       /* adapter blocks: the first `bottom` and last `top` of the emulator */
    char drop_mode[16];    /* "uniform" (keep every k-th middle block) or "list" (--keep) */
    double drop_ratio;     /* requested ratio for "uniform"; the achieved one for "list" */
    sl_emumeta_distill distill;
    int nfiles;            /* filled by sign/verify, sorted by name */
    sl_emumeta_file files[SL_EMUMETA_MAX_FILES];
} sl_emumeta;

/* Checks the fields that do not depend on the folder: base digest is 64
 * lowercase hex; 1 <= nblocks <= full_layers <= SL_EMUMETA_MAX_LAYERS;
 * layer_map strictly ascending within 0..full_layers-1; bottom, top >= 0,
 * bottom + top <= nblocks, the bottom adapter blocks map to 0..bottom-1 and
 * the top ones to the last top blocks of the full model; drop mode known;
 * 0 <= ratio < 1; distillation numbers finite. */
int sl_emumeta_validate(const sl_emumeta *meta, sl_err *err);

/* Parses manifest bytes (no signature check, no file check); also checks
 * that config.json and model.safetensors are listed. */
int sl_emumeta_parse(const char *text, size_t len, const char *what, sl_emumeta *meta,
                    sl_err *err);

/* 1 if emulator block i is an adapter block (bottom or top). */
int sl_emumeta_is_adapter(const sl_emumeta *meta, int i);

/* The manifest text (two-space indented JSON ending with a newline) in a
 * malloc'd, NUL-terminated buffer; *len excludes the NUL. Validates first. */
int sl_emumeta_encode(const sl_emumeta *meta, char **text, size_t *len, sl_err *err);
/* Reads and parses DIR/manifest.json without any signature or file check
 * (for the model commands; verify with crypto/emupkg before trusting it). */
int sl_emumeta_read(const char *dir, sl_emumeta *meta, sl_err *err);

/* 1 if name may be a package file: 1..SL_EMUMETA_NAME_MAX characters from
 * [A-Za-z0-9._-], not starting with a dot. */
int sl_emumeta_name_ok(const char *name);
/* qsort comparator of sl_emumeta_file by name. */
int sl_emumeta_cmp_file(const void *a, const void *b);

#endif
