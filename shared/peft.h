/* shared/peft.h - the Hugging Face PEFT LoRA `adapter_config.json`, written
 * beside `adapter_model.safetensors` when the aggregated adapter is
 * exported, and read back to resume or merge an adapter.
 *
 * Reading accepts what `LoraConfig.save_pretrained` writes for GPT-2
 * (peft_type "LORA", task_type "CAUSAL_LM", bias "none", fan_in_fan_out
 * true) and refuses every setting that would make the adapter compute
 * something else than plain LoRA with scale lora_alpha / r on the chosen
 * Conv1D modules (DoRA, rsLoRA, rank or alpha patterns, bias training,
 * modules_to_save, regular-expression targets, ...). target_modules names
 * are matched as PEFT does, by module-name suffix: "c_attn", "c_fc", and
 * "c_proj" (which matches both attn.c_proj and mlp.c_proj), or the
 * unambiguous "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"; the
 * writer always uses the unambiguous forms. See docs/formats.md.
 *
 * Ownership: plain values in caller storage; nothing allocated survives a
 * call. Thread-safe (no shared state). */
#ifndef SL_PEFT_H
#define SL_PEFT_H
#include <stddef.h>

#include "shared/err.h"

/* target_mask bits, one per GPT-2 Conv1D module of a block. */
#define SL_PEFT_ATTN_C_ATTN (1u << 0)
#define SL_PEFT_ATTN_C_PROJ (1u << 1)
#define SL_PEFT_MLP_C_FC (1u << 2)
#define SL_PEFT_MLP_C_PROJ (1u << 3)
#define SL_PEFT_ALL_TARGETS 0xfu
#define SL_PEFT_NMODULES 4

#define SL_PEFT_MAX_BYTES (1u << 20) /* adapter_config.json file size */
#define SL_PEFT_MAX_RANK 4096
#define SL_PEFT_MAX_LAYERS 256       /* entries in layers_to_transform; indices 0..255 */

typedef struct sl_peft_config {
    int r; float lora_alpha; float lora_dropout;
    unsigned target_mask;   /* bit 0 attn.c_attn, 1 attn.c_proj, 2 mlp.c_fc, 3 mlp.c_proj */
    int nlayers; int layers[256]; /* layers_to_transform; nlayers 0 = all layers */
    int fan_in_fan_out;     /* must be true for GPT-2 Conv1D */
    char base_model[512];   /* base_model_name_or_path */
    char base_digest[65];   /* sealora extension: hex SHA-256 of the base model.safetensors, or "" */
} sl_peft_config;

/* r 8, lora_alpha 16, lora_dropout 0, attn.c_attn only, all layers,
 * fan_in_fan_out 1, no base model, no digest. */
void sl_peft_config_default(sl_peft_config *c);
/* Reads and validates path (at most SL_PEFT_MAX_BYTES). layers come back
 * sorted ascending. On failure *c is untouched and the message names the
 * file, the key and the bad value. */
int sl_peft_config_load(sl_peft_config *c, const char *path, sl_err *err);
/* The same over text in memory; `what` names the source in messages. */
int sl_peft_config_parse(sl_peft_config *c, const char *text, size_t len, const char *what,
                         sl_err *err);
/* Validates, then writes path atomically (mode 0644) as PEFT writes it
 * (sorted keys, two-space indentation). The digest goes in the extra key
 * "sealora_base_sha256", only when set. */
int sl_peft_config_save(const sl_peft_config *c, const char *path, sl_err *err);
/* 1 <= r <= SL_PEFT_MAX_RANK, alpha finite and > 0, 0 <= dropout < 1, a
 * non-empty mask within SL_PEFT_ALL_TARGETS, layers unique in 0..255,
 * fan_in_fan_out 1, strings terminated, digest "" or 64 lowercase hex. */
int sl_peft_config_validate(const sl_peft_config *c, sl_err *err);

/* 1 if the adapter applies to block `layer` (always when nlayers is 0). */
int sl_peft_layer_selected(const sl_peft_config *c, int layer);
/* "attn.c_attn", "attn.c_proj", "mlp.c_fc" or "mlp.c_proj" for one mask
 * bit; NULL for anything else. */
const char *sl_peft_module_name(unsigned bit);
/* The tensor name PEFT gives a LoRA factor in adapter_model.safetensors,
 * e.g. "base_model.model.transformer.h.3.attn.c_attn.lora_A.weight".
 * PEFT stores the factors in nn.Linear layout even for Conv1D modules:
 * lora_A is [r, in_features], lora_B is [out_features, r]. SL_ELIMIT if it
 * does not fit in cap; SL_EINVAL for a bad bit or layer. */
int sl_peft_tensor_name(char *out, size_t cap, int layer, unsigned bit, int is_b, sl_err *err);

#endif
