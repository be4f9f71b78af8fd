/* shared/lora.h - LoRA adapters (Hu et al. 2021) for GPT-2's Conv1D layers,
 * laid out as Hugging Face PEFT stores them: for a target with input width
 * `in` and output width `out`, lora_A is [r, in] and lora_B is [out, r]; the
 * layer computes y = x W + b + (alpha / r) * (x A^T) B^T.
 *
 * All A and B matrices of an adapter live in one allocation (params), in a
 * fixed order (layer ascending, then target in SL_LORA_* bit order, A before
 * B), so optimisers, clipping and secure aggregation see one flat vector.
 * Not thread-safe; the model it was made for is not referenced. */
#ifndef SL_LORA_H
#define SL_LORA_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/gpt2.h"

/* Target modules, as bits (the same bits as SL_PEFT_* in shared/peft.h). */
#define SL_LORA_C_ATTN 1u   /* attn.c_attn  [C, 3C] */
#define SL_LORA_C_PROJ 2u   /* attn.c_proj  [C, C]  */
#define SL_LORA_MLP_FC 4u   /* mlp.c_fc     [C, F]  */
#define SL_LORA_MLP_PROJ 8u /* mlp.c_proj   [F, C]  */
#define SL_LORA_NTARGETS 4
#define SL_LORA_MAX_RANK 1024

typedef struct sl_lora_slot {
    int layer, target;  /* block index in the model, target index 0..3 */
    int in, out;        /* widths of the wrapped Conv1D */
    float *A, *B;       /* [r, in], [out, r], into params */
    size_t offset;      /* of A within params (B follows A) */
} sl_lora_slot;

typedef struct sl_lora {
    int r;
    float alpha, scale;      /* scale = alpha / r */
    unsigned targets;        /* SL_LORA_* bits */
    int L;                   /* layers of the model it was made for */
    int nslots;
    sl_lora_slot *slots;     /* owned, nslots entries */
    int *slot_of;            /* owned, [L * 4]: slot index or -1 */
    float *params;           /* owned, nparams floats */
    size_t nparams;
} sl_lora;

/* Creates an adapter for model m on the given targets and layers (layers
 * NULL or nlayers 0: every layer). A is Kaiming-uniform (PEFT's default,
 * bound 1/sqrt(in)) from seed; B is zero, so the adapter starts as a no-op. */
int sl_lora_create(sl_lora **out, const sl_gpt2 *m, int r, float alpha, unsigned targets,
                   const int *layers, int nlayers, uint64_t seed, sl_err *err);
void sl_lora_free(sl_lora *l); /* accepts NULL */
/* Slot for (layer, target index), or NULL. */
const sl_lora_slot *sl_lora_slot_at(const sl_lora *l, int layer, int target);
/* W += sign * scale * (B A)^T for every slot (sign +1 merges, -1 unmerges). */
void sl_lora_merge(sl_gpt2 *m, const sl_lora *l, float sign);

#endif
