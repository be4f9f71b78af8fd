/* shared/gpt2.h - GPT-2 (Hugging Face GPT2LMHeadModel) in fp32 on OpenBLAS:
 * pre-LayerNorm blocks, tanh GELU, causal multi-head attention, learned
 * positions, lm_head tied to the token embedding.
 *
 * sl_gpt2 holds the weights: one allocation carved into tensors in a fixed
 * canonical order (llm.c's size table), named and shaped as Hugging Face
 * does (Conv1D weights [in, out]). It is read-only during training except
 * for the tensors marked trainable, and may be shared by several contexts.
 *
 * sl_gpt2_ctx is a training/evaluation plan for a maximum (B, T): every
 * activation, gradient and scratch buffer is allocated once at creation
 * (one arena), so forward and backward allocate nothing. Gradients exist
 * only for trainable tensors (a per-tensor mask) and for the LoRA adapter.
 * A ctx is not thread-safe; internal kernels use OpenMP and OpenBLAS
 * threads. Results are bit-identical for the same inputs and thread count. */
#ifndef SL_GPT2_H
#define SL_GPT2_H
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/hfconfig.h"

struct sl_lora;

/* Per-layer tensor kinds, in canonical order within a block. */
enum {
    SL_T_LN1_W, SL_T_LN1_B, SL_T_ATTN_W, SL_T_ATTN_B, SL_T_ATTNPROJ_W, SL_T_ATTNPROJ_B,
    SL_T_LN2_W, SL_T_LN2_B, SL_T_FC_W, SL_T_FC_B, SL_T_FCPROJ_W, SL_T_FCPROJ_B,
    SL_T_PER_LAYER
};
/* Global tensors: index 0 wte, 1 wpe, then L*SL_T_PER_LAYER block tensors,
 * then ln_f weight and bias. */
#define SL_GPT2_WTE 0
#define SL_GPT2_WPE 1
#define SL_GPT2_LAYER0 2

typedef struct sl_gpt2_layer {
    float *ln1_w, *ln1_b;         /* [C] */
    float *attn_w, *attn_b;       /* [C, 3C], [3C] (attn.c_attn) */
    float *attnproj_w, *attnproj_b; /* [C, C], [C] (attn.c_proj) */
    float *ln2_w, *ln2_b;         /* [C] */
    float *fc_w, *fc_b;           /* [C, F], [F] (mlp.c_fc), F = n_inner */
    float *fcproj_w, *fcproj_b;   /* [F, C], [C] (mlp.c_proj) */
} sl_gpt2_layer;

typedef struct sl_gpt2 {
    sl_gpt2_config cfg;
    int L, C, NH, F, V, maxT; /* layers, width, heads, MLP width, vocab, context */
    size_t nparams;           /* total floats in params */
    float *params;            /* owned; one allocation, canonical order */
    float *wte, *wpe;         /* [V, C], [maxT, C] */
    float *lnf_w, *lnf_b;     /* [C] */
    sl_gpt2_layer *layers;    /* owned, L entries pointing into params */
    int ntensors;             /* 2 + L*SL_T_PER_LAYER + 2 */
} sl_gpt2;

typedef struct sl_gpt2_tensor {
    char name[96];   /* Hugging Face name, "transformer.h.3.attn.c_attn.weight" */
    int ndim;
    int64_t shape[2];
    size_t numel;
    float *data;     /* into model->params */
    int layer;       /* block index, or -1 for embeddings and ln_f */
    int kind;        /* SL_T_* for block tensors, -1 otherwise */
    int decay;       /* 1 for matrices (weight decay applies), 0 for vectors */
} sl_gpt2_tensor;

/* Allocates a model with zeroed weights. cfg is validated. */
int sl_gpt2_create(sl_gpt2 **out, const sl_gpt2_config *cfg, sl_err *err);
void sl_gpt2_free(sl_gpt2 *m); /* accepts NULL */
/* Hugging Face's initialisation: N(0, 0.02) for matrices and embeddings,
 * N(0, 0.02/sqrt(2L)) for the residual projections, LayerNorm 1/0, biases 0. */
void sl_gpt2_init_random(sl_gpt2 *m, uint64_t seed);
/* Describes tensor i (0 <= i < ntensors). */
void sl_gpt2_tensor_info(const sl_gpt2 *m, int i, sl_gpt2_tensor *t);
/* Index of the tensor named name (with or without the "transformer."
 * prefix), or -1. */
int sl_gpt2_tensor_find(const sl_gpt2 *m, const char *name);

typedef struct sl_gpt2_ctx sl_gpt2_ctx;

/* Plans a context for batches up to B x T (T <= maxT). trainable[i] != 0
 * marks tensor i as trained (NULL: all frozen); lora may be NULL. The model
 * and lora are borrowed and must outlive the ctx. */
int sl_gpt2_ctx_create(sl_gpt2_ctx **out, sl_gpt2 *m, struct sl_lora *lora,
                       const uint8_t *trainable, int B, int T, sl_err *err);
void sl_gpt2_ctx_free(sl_gpt2_ctx *c);
/* Bytes allocated by the context (activations, gradients, scratch). */
size_t sl_gpt2_ctx_bytes(const sl_gpt2_ctx *c);

/* Forward pass on inputs[B*T] (token ids < V). With targets (ids, or -1 to
 * ignore a position) returns the mean NLL in nats over counted positions,
 * else NAN. want_grad prepares backward (needs targets): the gradient of the
 * loss with respect to the final hidden state is computed in the same pass
 * as the loss (the logits are never stored whole). B, T may be smaller than
 * planned. Returns NAN and does nothing if an id is out of range. */
float sl_gpt2_forward(sl_gpt2_ctx *c, const int32_t *inputs, const int32_t *targets, int B,
                      int T, int want_grad);
/* Accumulates gradients of the last forward's mean loss into the trainable
 * tensors' and the LoRA's gradient buffers. The tied embedding's share from
 * the lm_head is accumulated during the forward pass itself, so call
 * sl_gpt2_zero_grad() before the forward of a step, not between the two. */
void sl_gpt2_backward(sl_gpt2_ctx *c);
void sl_gpt2_zero_grad(sl_gpt2_ctx *c);
/* Gradient buffer of tensor i, or NULL if it is frozen. */
float *sl_gpt2_grad(sl_gpt2_ctx *c, int i);
/* Gradient of the LoRA parameters (same layout as lora->params), or NULL. */
float *sl_gpt2_lora_grad(sl_gpt2_ctx *c);
/* Forward through the embeddings and the first nblocks blocks only
 * (0 <= nblocks <= L; with nblocks == L the final LayerNorm too, so that
 * sl_gpt2_final and sl_gpt2_logits_at work). Returns the hidden state (the
 * residual stream) after those blocks, [B*T, C] with row b*T + t, owned by
 * the ctx and valid until its next forward; NULL, computing nothing, if an
 * id is out of range, B x T exceeds the plan or nblocks is out of range.
 * Used by emulator distillation (Offsite-Tuning): match a block's output. */
const float *sl_gpt2_forward_hidden(sl_gpt2_ctx *c, const int32_t *inputs, int B, int T,
                                    int nblocks);
/* Hidden state after nblocks blocks of the last forward ([B*T, C]; the
 * embeddings' sum for 0), or NULL if that forward stopped below nblocks. */
const float *sl_gpt2_hidden(const sl_gpt2_ctx *c, int nblocks);
/* Output of the final LayerNorm [B*T, C] of the last forward that ran every
 * block (what the lm_head multiplies by wte^T), else NULL. */
const float *sl_gpt2_final(const sl_gpt2_ctx *c);
/* Accumulates, into the trainable tensors' and the LoRA's gradient
 * buffers, the gradients of a loss of the last sl_gpt2_forward_hidden
 * given dh = d loss / d (hidden after nblocks blocks) [B*T, C] and dfinal
 * = d loss / d (final LayerNorm output) [B*T, C]; either may be NULL.
 * dfinal needs a forward of every block; nblocks may not exceed the
 * forward's. The lm_head's share of the tied embedding's gradient is not
 * included (the caller computes the logits and owns that term). Zero the
 * gradients before, as for sl_gpt2_backward. SL_ESTATE if the last forward
 * does not fit. */
int sl_gpt2_backward_hidden(sl_gpt2_ctx *c, int nblocks, const float *dh, const float *dfinal,
                            sl_err *err);
/* Per-position NLL of the last forward with targets, [B*T]. */
const float *sl_gpt2_losses(const sl_gpt2_ctx *c);
/* Logits [V] at position (b, t) of the last forward. */
void sl_gpt2_logits_at(sl_gpt2_ctx *c, int b, int t, float *logits);

/* Model FLOPs of one training step (forward + backward) at B x T, counting
 * multiply-adds as 2: the matrix products only (what sgemm executes), for
 * utilisation figures. */
double sl_gpt2_step_flops(const sl_gpt2_ctx *c, int B, int T, int backward);

#endif
