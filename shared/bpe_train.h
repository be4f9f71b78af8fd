/* shared/bpe_train.h - trains a GPT-2-style byte-level BPE tokenizer from
 * text and writes it in Hugging Face's formats (vocab.json, merges.txt,
 * tokenizer.json, tokenizer_config.json), which shared/tokenizer loads back.
 *
 * Workload: the base-model recipe trains an 8192-token vocabulary once on
 * about 70 MB of text. Text is fed in any number of calls (files are streamed
 * in chunks cut where pre-tokenisation allows, shared/pretok.h), split with
 * GPT-2's pattern, and only the distinct pieces and their counts are kept, so
 * memory grows with the vocabulary of the corpus, not its size.
 *
 * Algorithm (Sennrich et al. 2016 on bytes, as Hugging Face's BpeTrainer):
 * ids 0..255 are the bytes in GPT-2's order; each step merges the adjacent
 * pair with the highest count (ties: the smaller (left id, right id)), counting
 * a piece as often as it occurs; a merge whose result spells an existing token
 * reuses its id. `<|endoftext|>` is never part of a piece: in fed text it
 * separates documents; it gets the last id (as in GPT-2). Pieces longer than
 * SL_BPE_TRAIN_MAX_PIECE bytes are not counted (they would only cost time).
 * The result is deterministic: the same text in the same order gives the same
 * files byte for byte.
 *
 * Ownership: the trainer owns everything it counted; feed borrows the text.
 * Not thread-safe: one thread per trainer. */
#ifndef SL_BPE_TRAIN_H
#define SL_BPE_TRAIN_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

#define SL_BPE_TRAIN_MAX_PIECE 256u        /* bytes; longer pieces are skipped */
#define SL_BPE_TRAIN_MAX_VOCAB (1u << 20)  /* largest vocabulary it trains */
#define SL_BPE_TRAIN_CHUNK (16u << 20)     /* bytes read from a file at a time */

typedef struct sl_bpe_trainer sl_bpe_trainer;

int sl_bpe_train_create(sl_bpe_trainer **out, sl_err *err);
void sl_bpe_train_free(sl_bpe_trainer *t);

/* Counts the pieces of text[0..n) (literal <|endoftext|> separates). */
int sl_bpe_train_feed(sl_bpe_trainer *t, const void *text, size_t n, sl_err *err);
/* Feeds a file, streamed in SL_BPE_TRAIN_CHUNK pieces. */
int sl_bpe_train_feed_file(sl_bpe_trainer *t, const char *path, sl_err *err);

/* Learns merges until the vocabulary (bytes, merged tokens and
 * <|endoftext|>) has vocab_size tokens, or no pair occurs min_count times.
 * vocab_size must be in [257, SL_BPE_TRAIN_MAX_VOCAB]. Call once. */
int sl_bpe_train_run(sl_bpe_trainer *t, uint32_t vocab_size, uint64_t min_count, sl_err *err);
/* Tokens in the trained vocabulary (<|endoftext|> included); 0 before run. */
uint32_t sl_bpe_train_vocab_size(const sl_bpe_trainer *t);
/* Distinct pieces counted so far. */
size_t sl_bpe_train_pieces(const sl_bpe_trainer *t);

/* Writes vocab.json, merges.txt, tokenizer.json and tokenizer_config.json
 * into dir (created if missing), each atomically. */
int sl_bpe_train_write(const sl_bpe_trainer *t, const char *dir, sl_err *err);

#endif
