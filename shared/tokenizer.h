/* shared/tokenizer.h - GPT-2 byte-level BPE, loaded the way Hugging Face
 * loads it, from `tokenizer.json` or from `vocab.json` + `merges.txt`.
 *
 * Encoding: text -> (optionally) added tokens such as <|endoftext|> cut out
 * -> GPT-2 pre-tokenisation (shared/pretok) -> each piece's bytes become
 * byte tokens -> merges applied lowest rank first, leftmost first (Hugging
 * Face's BPE::merge_word; the reference Python encoder agrees on every merge
 * table a trainer produces). Ids equal the reference tokenizer's on any valid
 * UTF-8 text; invalid UTF-8 is encoded as raw bytes (see shared/pretok.h), so
 * decode(encode(x)) == x for every byte string x.
 *
 * Workload: the training loop tokenises corpora of tens of MB once (then the
 * dataset cache serves it) and the runtime tokenises prompts; both share one
 * loaded object across threads.
 *
 * Files are untrusted: sizes are limited (SL_TOKENIZER_MAX_*), JSON is parsed
 * by jansson with duplicate keys refused, and every error names the file and
 * the field at fault. Vocabulary ids must be dense (0..n-1 over the vocabulary
 * and the added tokens), every byte must have its byte-level token, and
 * `<|endoftext|>` must be present (as an added token or in the vocabulary).
 *
 * Ownership: sl_tokenizer_load returns an object the caller frees with
 * sl_tokenizer_free. Encode appends to a caller-owned sl_ids; decode writes
 * into a caller buffer. Thread-safety: a loaded tokenizer is immutable; any
 * number of threads may encode and decode with it at once (each with its own
 * sl_ids). */
#ifndef SL_TOKENIZER_H
#define SL_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define SL_TOKENIZER_MAX_FILE (64u << 20)     /* bytes of one tokenizer file */
#define SL_TOKENIZER_MAX_VOCAB (1u << 21)     /* ids, added tokens included */
#define SL_TOKENIZER_MAX_TOKEN 1024u          /* bytes of one token */
#define SL_TOKENIZER_MAX_ADDED 1024u          /* added (special) tokens */
#define SL_TOKENIZER_HASH_BYTES 32u           /* SHA-256 */
#define SL_TOKENIZER_EOT "<|endoftext|>"

/* Encode flag: recognise added tokens (e.g. <|endoftext|>) written in the
 * text, as Hugging Face does. Without it they are encoded as plain text
 * (tiktoken's encode_ordinary), so untrusted text cannot forge them. */
#define SL_TOKENIZER_SPECIAL 1u

typedef struct sl_tokenizer sl_tokenizer;

/* Growable id buffer owned by the caller. Zero-initialise it (or call
 * sl_ids_init); sl_ids_fini frees it. max (0 = no limit) caps n: an encode
 * that would pass it fails with SL_ELIMIT. */
typedef struct sl_ids {
    int32_t *v;     /* n ids, capacity cap */
    size_t n, cap;
    size_t max;
} sl_ids;
void sl_ids_init(sl_ids *ids, size_t max);
void sl_ids_fini(sl_ids *ids);
/* Appends one id; SL_ENOMEM / SL_ELIMIT on failure. */
int sl_ids_push(sl_ids *ids, int32_t id, sl_err *err);

/* Loads dir/tokenizer.json if present, else dir/vocab.json + dir/merges.txt. */
int sl_tokenizer_load(const char *dir, sl_tokenizer **out, sl_err *err);
/* The same from bytes in memory; name is used in messages. */
int sl_tokenizer_from_json(const void *json, size_t n, const char *name, sl_tokenizer **out,
                           sl_err *err);
int sl_tokenizer_from_files(const void *vocab_json, size_t vn, const void *merges_txt, size_t mn,
                            const char *vocab_name, const char *merges_name, sl_tokenizer **out,
                            sl_err *err);
void sl_tokenizer_free(sl_tokenizer *t);

/* Appends the ids of text[0..n) to ids. flags: 0 or SL_TOKENIZER_SPECIAL.
 * On failure ids->n is restored (the ids before it are intact). */
int sl_tokenizer_encode(const sl_tokenizer *t, const void *text, size_t n, unsigned flags,
                        sl_ids *ids, sl_err *err);

/* Bytes that decoding ids[0..n) yields; SL_EINVAL naming the position of an
 * id outside the vocabulary. */
int sl_tokenizer_decoded_len(const sl_tokenizer *t, const int32_t *ids, size_t n, size_t *len,
                             sl_err *err);
/* Writes the bytes of ids[0..n) to out (cap bytes) and their count to *len.
 * SL_ELIMIT if they do not fit; SL_EINVAL for a bad id. On failure *len is
 * untouched and out holds an unspecified prefix. */
int sl_tokenizer_decode(const sl_tokenizer *t, const int32_t *ids, size_t n, uint8_t *out,
                        size_t cap, size_t *len, sl_err *err);
/* Borrowed bytes of one token (for streaming output), NULL if id is bad. */
const uint8_t *sl_tokenizer_token(const sl_tokenizer *t, int32_t id, size_t *len);

uint32_t sl_tokenizer_vocab_size(const sl_tokenizer *t);
int32_t sl_tokenizer_eot(const sl_tokenizer *t);
uint32_t sl_tokenizer_merges(const sl_tokenizer *t);
/* 1 if id is an added (special) token. */
int sl_tokenizer_is_special(const sl_tokenizer *t, int32_t id);
/* SHA-256 over the token bytes by id, the special flags and the merges by
 * rank: equal for the same tokenizer whichever files it was loaded from. */
const uint8_t *sl_tokenizer_hash(const sl_tokenizer *t);

#endif
