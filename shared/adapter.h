/* shared/adapter.h - LoRA adapters on disk in Hugging Face PEFT's layout:
 * DIR/adapter_config.json (shared/peft.h) + DIR/adapter_model.safetensors
 * with "base_model.model.transformer.h.N.<module>.lora_A.weight" [r, in] and
 * "...lora_B.weight" [out, r] per adapted block and module. Loading checks
 * every factor's presence and shape against the model and refuses stray
 * tensors, naming them. Thread-safe (no shared state). */
#ifndef SL_ADAPTER_H
#define SL_ADAPTER_H
#include "shared/err.h"
#include "shared/gpt2.h"
#include "shared/lora.h"
#include "shared/peft.h"

#define SL_ADAPTER_CONFIG "adapter_config.json"
#define SL_ADAPTER_WEIGHTS "adapter_model.safetensors"

/* Writes DIR (created if needed), each file atomically. base_model and
 * base_digest (hex SHA-256 of the base weights, or NULL) are recorded. */
int sl_adapter_save(const sl_lora *l, const char *dir, const char *base_model,
                    const char *base_digest, sl_err *err);
/* Reads DIR into a new adapter for model m. cfg_out (may be NULL) receives
 * the parsed adapter_config.json. On failure *out is untouched. */
int sl_adapter_load(sl_lora **out, const sl_gpt2 *m, const char *dir, sl_peft_config *cfg_out,
                    sl_err *err);

/* Loads the adapter in DIR for model m and merges it into m's weights
 * (W += (alpha/r) (B A)^T). base_digest (hex, or NULL) is the SHA-256 of the
 * model's weights file: an adapter recording a different one is refused,
 * naming both. m is unchanged on failure. */
int sl_adapter_merge_dir(sl_gpt2 *m, const char *dir, const char *base_digest, sl_err *err);
#endif
