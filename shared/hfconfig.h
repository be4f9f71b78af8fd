/* shared/hfconfig.h - the Hugging Face GPT-2 `config.json`: the shape of a
 * model (layers, heads, widths, vocabulary) read from a real checkpoint
 * folder or written beside an exported model so `transformers` loads it.
 *
 * Loading follows GPT2Config: missing keys take GPT2Config's defaults (the
 * 124M "gpt2" shape), unknown keys are ignored, and keys that would change
 * the computation into something the engine does not implement (another
 * activation, unscaled attention, cross-attention, a non-GPT-2 model_type)
 * are refused, as are wrong JSON types and values outside the limits below.
 * Saving writes what `save_pretrained` writes for GPT-2 (sorted keys, two
 * spaces of indentation, the dropout and summary keys at their defaults).
 * See docs/formats.md.
 *
 * Ownership: plain values in caller storage; nothing allocated survives a
 * call. Thread-safe (no shared state). */
#ifndef SL_HFCONFIG_H
#define SL_HFCONFIG_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

/* Limits: generous for GPT-2 family models (gpt2-xl: 48 layers, 25 heads,
 * 1600 wide, 1024 positions, 50257 tokens) while keeping every size
 * product far from overflow. */
#define SL_HFCONFIG_MAX_BYTES (1u << 20)     /* config.json file size */
#define SL_HFCONFIG_MAX_LAYER 256            /* also bounds PEFT layer lists */
#define SL_HFCONFIG_MAX_HEAD 1024
#define SL_HFCONFIG_MAX_EMBD 32768
#define SL_HFCONFIG_MAX_INNER (4 * 32768)
#define SL_HFCONFIG_MAX_POSITIONS 65536
#define SL_HFCONFIG_MAX_VOCAB (1 << 21)
#define SL_HFCONFIG_MAX_PARAMS (1ull << 34)  /* ~17 G parameters in total */

typedef struct sl_gpt2_config {
    int n_layer, n_head, n_embd, n_positions, vocab_size, n_inner; /* n_inner 0 => 4*n_embd */
    float layer_norm_epsilon;
    int bos_token_id, eos_token_id;
    char activation_function[32]; /* must be "gelu_new" (tanh GELU); others refused */
    int tie_word_embeddings;      /* default 1 */
} sl_gpt2_config;

/* GPT2Config's defaults: 12 layers, 12 heads, 768 wide, 1024 positions,
 * 50257 tokens, eps 1e-5, bos = eos = 50256, gelu_new, tied embeddings. */
void sl_hfconfig_default(sl_gpt2_config *cfg);
/* Reads and validates path. On failure *cfg is untouched and the message
 * names the file, the key and the bad value. */
int sl_hfconfig_load(sl_gpt2_config *cfg, const char *path, sl_err *err);
/* The same over text in memory (len bytes, need not be NUL-terminated);
 * `what` names the source in messages. */
int sl_hfconfig_parse(sl_gpt2_config *cfg, const char *text, size_t len, const char *what,
                      sl_err *err);
/* Validates, then writes path atomically (mode 0644) as HF writes it:
 * architectures ["GPT2LMHeadModel"], model_type "gpt2", n_ctx, the
 * resid/embd/attn pdrop, summary_* and initializer_range defaults. */
/* The double whose shortest decimal form round-trips to f, so 1e-5f is
 * written "1e-5" as Python writes it, not "9.99999975e-06": for every
 * float a Hugging Face JSON file holds (config.json, adapter_config.json). */
double sl_hfconfig_shortest(float f);
int sl_hfconfig_save(const sl_gpt2_config *cfg, const char *path, sl_err *err);
/* Limits above, n_embd % n_head == 0, token ids inside the vocabulary,
 * 0 < eps < 1, activation "gelu_new", total parameters within the limit. */
int sl_hfconfig_validate(const sl_gpt2_config *cfg, sl_err *err);
/* Parameters of GPT2LMHeadModel with this shape (the LM head counted once
 * when tied). Assumes cfg validated. */
uint64_t sl_hfconfig_nparams(const sl_gpt2_config *cfg);

#endif
