/* server/distill.h - emulator distillation (Offsite-Tuning, Xiao, Lin and
 * Han 2023, section 3.3): train the emulator's kept middle blocks so that
 * the hidden state after its last middle block matches the full model's
 * after its last middle block (mean squared error over every position and
 * channel), optionally plus kl_weight times KL(teacher || student) of the
 * next-token distributions. Embeddings, adapter blocks and the final
 * LayerNorm stay frozen (the trainable mask), so the adapter that sites
 * tune keeps the full model's weights. AdamW with warm-up + cosine decay,
 * gradient clipping at 1, progress on stderr, checkpoints in a work folder
 * (emulator weights + shared/train's optimiser state) and bit-exact resume.
 *
 * Ownership: models and meta are borrowed; emu's middle blocks are updated
 * in place. Not thread-safe (kernels inside use threads). */
#ifndef SL_SERVER_DISTILL_H
#define SL_SERVER_DISTILL_H
#include <signal.h>
#include <stdint.h>

#include "shared/emumeta.h"
#include "shared/err.h"
#include "shared/gpt2.h"

typedef struct sl_distill_cfg {
    const char *text;   /* public text: file, folder or JSON Lines (shared/dataset) */
    const char *work;   /* checkpoint folder (created) */
    long steps;         /* optimiser steps (200) */
    int B, T;           /* batch rows x tokens (4 x 128, T capped at the context) */
    float lr;           /* peak learning rate (3e-4), decays to lr/10 */
    float kl_weight;    /* weight of the logit KL term (0: MSE only) */
    uint64_t seed;      /* batch sampling (1) */
    long ckpt_every;    /* steps between checkpoints (0: steps/10) */
    int eval_batches;   /* held-out batches for the MSE before and after (8) */
    int resume, quiet;
    volatile sig_atomic_t *stop; /* set (e.g. by a signal handler) to stop: NULL = never */
    long stop_at;       /* stop after this step as if interrupted (tests); 0 = never */
} sl_distill_cfg;

void sl_distill_cfg_init(sl_distill_cfg *c);

/* Distils emu (built from full through meta's layer map) on cfg->text,
 * tokenised with the tokenizer in tok_dir. rec (may be NULL) receives the
 * recipe and the held-out hidden-state MSE before and after. SL_EINVAL if
 * the emulator has no middle block to train. On success the work folder's
 * checkpoint is removed. */
int sl_distill_run(const sl_gpt2 *full, sl_gpt2 *emu, const sl_emumeta *meta,
                   const char *tok_dir, const sl_distill_cfg *cfg, sl_emumeta_distill *rec,
                   sl_err *err);

/* Held-out hidden-state MSE of emu against full over n batches of B x T
 * drawn with seed from ids (the windows the eval uses): for tests and the
 * offsite table. */
int sl_distill_mse(const sl_gpt2 *full, const sl_gpt2 *emu, const sl_emumeta *meta,
                   const int32_t *ids, size_t nids, int B, int T, int n, uint64_t seed,
                   double *mse, sl_err *err);

/* The loss of one batch x [B*T] (hidden-state MSE + kl_weight * KL) of the
 * student context c (planned on emu for B x T; its trainable tensors get
 * the gradients when grad is set, after the caller zeroed them): for the
 * gradient tests. */
int sl_distill_batch_loss(const sl_gpt2 *full, sl_gpt2 *emu, const sl_emumeta *meta,
                          sl_gpt2_ctx *c, const int32_t *x, int B, int T, float kl_weight,
                          int grad, double *loss, sl_err *err);

#endif
