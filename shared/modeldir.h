/* shared/modeldir.h - a model directory as Hugging Face writes it:
 * config.json (GPT2Config) + model.safetensors (GPT2LMHeadModel weights,
 * F32/F16/BF16) + tokenizer files. Loading accepts both naming styles found
 * in the wild ("transformer.h.0..." from GPT2LMHeadModel, "h.0..." from
 * GPT2Model), ignores the non-persistent attention buffers older checkpoints
 * carry (".attn.bias", ".attn.masked_bias") and an "lm_head.weight" equal to
 * the token embedding, and refuses anything else it does not know, naming
 * the tensor. Saving writes what GPT2LMHeadModel.save_pretrained writes, so
 * Hugging Face loads it unchanged. Thread-safe (no shared state). */
#ifndef SL_MODELDIR_H
#define SL_MODELDIR_H
#include "shared/err.h"
#include "shared/gpt2.h"
#include "shared/safetensors.h"

#define SL_MODELDIR_WEIGHTS "model.safetensors"
#define SL_MODELDIR_CONFIG "config.json"

/* Loads DIR/config.json and DIR/model.safetensors into a new model. On
 * failure *out is untouched. */
int sl_modeldir_load(sl_gpt2 **out, const char *dir, sl_err *err);
/* Writes DIR/config.json and DIR/model.safetensors (dtype F32, F16 or
 * BF16), creating DIR if needed; each file atomically. Tokenizer files are
 * the caller's business (see shared/tokenizer.h). */
int sl_modeldir_save(const sl_gpt2 *m, const char *dir, sl_st_dtype dtype, sl_err *err);
/* Dtype of the floating-point weights in DIR/model.safetensors. */
int sl_modeldir_dtype(const char *dir, sl_st_dtype *dtype, sl_err *err);

#endif
