/* shared/dataset.h - text corpora as token arrays for training and
 * evaluation, tokenised once into a cached binary file (docs/formats.md,
 * "Token cache").
 *
 * Sources: a plain text file, a JSON Lines file (name ending in .jsonl; each
 * line an object whose text field, "text" by default, is one document), or a
 * folder of them read recursively in name order (hidden files and caches
 * skipped). In plain text and inside a JSON Lines text, a literal
 * `<|endoftext|>` separates documents, so a corpus can be one file; every
 * file is at least one document. Documents are tokenised without special
 * tokens (text cannot forge one) and each is preceded by <|endoftext|> in the
 * token arrays.
 *
 * Split: a document goes to validation when the first 8 bytes of the SHA-256
 * of its bytes, as a little-endian integer, modulo 10^6 are below
 * val_per_million; so the split depends on content only (identical documents
 * share a split) and survives renames and re-ordering.
 *
 * Cache: reused when its header matches the tokenizer's hash and the source
 * key (SHA-256 of the options and of every source file's relative path, size
 * and modification time); otherwise rebuilt, atomically, beside the source
 * (`PATH.tokcache`) unless opts->cache names another path. A cache that fails
 * any check (magic, version, sizes, ids outside the vocabulary) is rebuilt,
 * never trusted. Files larger than memory are streamed in chunks cut where
 * tokenisation is unaffected (shared/pretok.h); the token arrays are mmap'd.
 *
 * Ownership: sl_dataset_open returns an object the caller closes with
 * sl_dataset_close; views stay valid until then. The tokenizer is borrowed
 * only during open. Thread-safety: an open dataset is immutable; threads may
 * read views and call sl_dataset_batch at once, each with its own rng. */
#ifndef SL_DATASET_H
#define SL_DATASET_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/tokenizer.h"

#define SL_DATASET_MAGIC "SLTOKENS"
#define SL_DATASET_VERSION 1u
#define SL_DATASET_HEADER 128u              /* bytes before the tokens */
#define SL_DATASET_CHUNK (16u << 20)        /* bytes of text read at a time */
#define SL_DATASET_MAX_LINE (64u << 20)     /* bytes of one JSON Lines record */
#define SL_DATASET_MAX_FILES 1000000u       /* files in a source folder */
#define SL_DATASET_VAL_DEFAULT 10000u       /* 1% of documents */

enum { SL_DATASET_TRAIN = 0, SL_DATASET_VAL = 1 };

typedef struct sl_dataset_opts {
    const char *cache;          /* cache path; NULL: PATH.tokcache */
    const char *text_field;     /* JSON Lines field; NULL: "text" */
    uint32_t val_per_million;   /* validation share of documents, <= 10^6 */
    int rebuild;                /* 1: ignore an existing cache */
    size_t chunk;               /* bytes of text read at a time; 0: SL_DATASET_CHUNK */
} sl_dataset_opts;

/* Defaults: cache beside the source, "text", 1% validation. */
void sl_dataset_opts_init(sl_dataset_opts *o);

typedef struct sl_dataset sl_dataset;

int sl_dataset_open(const char *path, const sl_tokenizer *tok, const sl_dataset_opts *opts,
                    sl_dataset **out, sl_err *err);
void sl_dataset_close(sl_dataset *ds);

/* 1 if open had to tokenise (no usable cache), 0 if it reused the cache. */
int sl_dataset_built(const sl_dataset *ds);
const char *sl_dataset_cache_path(const sl_dataset *ds);
uint64_t sl_dataset_tokens(const sl_dataset *ds, int split);
uint64_t sl_dataset_docs(const sl_dataset *ds, int split);
/* 2 (uint16 ids, vocabulary of at most 65536) or 4 (uint32). */
unsigned sl_dataset_width(const sl_dataset *ds);
/* The split's ids; NULL when the width is the other one. */
const uint16_t *sl_dataset_u16(const sl_dataset *ds, int split);
const uint32_t *sl_dataset_u32(const sl_dataset *ds, int split);
/* Id i of a split (i < sl_dataset_tokens). */
uint32_t sl_dataset_token(const sl_dataset *ds, int split, uint64_t i);

/* Fills inputs and targets (B x T each, row-major) with B windows drawn
 * uniformly from the split: targets are the inputs shifted by one token.
 * rng is the caller's generator state (splitmix64), advanced B times or more.
 * SL_EINVAL for B or T below 1, SL_ELIMIT when the split has fewer than T + 1
 * tokens (outputs untouched). */
int sl_dataset_batch(const sl_dataset *ds, int split, uint64_t *rng, int B, int T,
                     int32_t *inputs, int32_t *targets);

/* Header of a token cache as read from bytes (fuzz and tests use it too). */
typedef struct sl_dataset_header {
    unsigned width;
    uint32_t vocab_size, eot, val_per_million;
    uint8_t vocab_hash[32], source_key[32];
    uint64_t n[2], docs[2];
} sl_dataset_header;
/* Checks magic, version, width against the vocabulary size, counts, and
 * that the file is exactly header + tokens long; then that every id is below
 * the vocabulary size. SL_EFORMAT naming the field otherwise. */
int sl_dataset_parse(const uint8_t *buf, size_t n, sl_dataset_header *h, sl_err *err);

#endif
