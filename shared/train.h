/* shared/train.h - the training and evaluation loops every role uses: the
 * `train` command (LoRA or full), the offsite emulator's tuning, and a client
 * agent's local steps in a federated round.
 *
 * A trainer owns a context planned for (B, T), the AdamW state over the
 * trained parameters (the LoRA's flat vector, or every tensor marked
 * trainable) and the batch generator's state. One step: zero gradients,
 * forward with targets, backward, global gradient-norm clipping, AdamW with
 * the warm-up + cosine schedule. Its state (step, generator, moments) saves
 * to a safetensors file and loads back, so an interrupted run resumes to the
 * same weights bit for bit.
 *
 * Evaluation follows the `eval` command's contract: tokens cut into windows
 * of T + 1 that overlap by one token, so every token after the first is
 * predicted exactly once; the NLL is summed in double.
 *
 * Ownership: the model, the LoRA and the datasets are borrowed and must
 * outlive the trainer. Not thread-safe (the kernels inside use threads). */
#ifndef SL_TRAIN_H
#define SL_TRAIN_H
#include <stddef.h>
#include <stdint.h>
#include "shared/dataset.h"
#include "shared/err.h"
#include "shared/gpt2.h"
#include "shared/lora.h"

#define SL_TRAIN_STATE_FILE "trainer_state.safetensors"

typedef struct sl_train_cfg {
    int B, T;            /* batch rows and tokens per row */
    long steps;          /* length of the learning-rate schedule */
    long warmup;         /* linear warm-up steps */
    float lr, lr_min;    /* peak and final learning rate */
    float weight_decay;  /* AdamW's decoupled decay (matrices only) */
    float clip;          /* global gradient-norm bound; 0 = none */
    uint64_t seed;       /* batch sampling */
} sl_train_cfg;

/* B 8, T 128, 100 steps, warm-up 10, lr 3e-4 to 3e-5, no decay, clip 1,
 * seed 1. */
void sl_train_cfg_init(sl_train_cfg *c);
/* SL_EINVAL naming the first setting out of range. */
int sl_train_cfg_validate(const sl_train_cfg *c, int max_T, sl_err *err);

typedef struct sl_train_stats {
    long step;           /* steps done after this one */
    float loss;          /* mean NLL of the batch, nats */
    double grad_norm;    /* before clipping */
    float lr;            /* learning rate used */
} sl_train_stats;

typedef struct sl_trainer sl_trainer;

/* With lora: trains lora->params only (the model frozen). Without:
 * trains the tensors with trainable[i] != 0 (NULL: every tensor). */
int sl_trainer_create(sl_trainer **out, sl_gpt2 *m, sl_lora *lora, const uint8_t *trainable,
                      const sl_train_cfg *cfg, sl_err *err);
void sl_trainer_free(sl_trainer *t); /* accepts NULL */

/* One step on a batch drawn from ds's training split. */
int sl_trainer_step(sl_trainer *t, const sl_dataset *ds, sl_train_stats *st, sl_err *err);
/* One step on the caller's batch (B x T inputs and targets, -1 ignored). */
int sl_trainer_step_batch(sl_trainer *t, const int32_t *inputs, const int32_t *targets,
                          sl_train_stats *st, sl_err *err);
/* A loss other than next-token NLL (emulator distillation): called with the
 * trainer's context, gradients already zeroed, and a batch of B x T inputs
 * (targets as sl_dataset_batch draws them); it runs the forward, accumulates
 * the gradients (e.g. sl_gpt2_backward_hidden) and stores the loss. */
typedef int (*sl_train_loss_fn)(void *user, sl_gpt2_ctx *c, const int32_t *inputs,
                                const int32_t *targets, int B, int T, float *loss, sl_err *err);
/* One step like sl_trainer_step (batch from ds's training split, clipping,
 * AdamW, schedule, the state that save/load keep) with fn's loss. */
int sl_trainer_step_loss(sl_trainer *t, const sl_dataset *ds, sl_train_loss_fn fn, void *user,
                         sl_train_stats *st, sl_err *err);
long sl_trainer_steps_done(const sl_trainer *t);
const sl_train_cfg *sl_trainer_cfg(const sl_trainer *t);
/* The trainer's context (for evaluation between steps). */
sl_gpt2_ctx *sl_trainer_ctx(sl_trainer *t);
/* Mean NLL over n batches drawn from ds's split with a generator seeded
 * from seed (the same batches every call): a cheap progress estimate. */
int sl_trainer_estimate(sl_trainer *t, const sl_dataset *ds, int split, int n, uint64_t seed,
                        double *nll, sl_err *err);

/* State file: "adamw.m", "adamw.v" and metadata (step, generator, Adam's
 * t, the number of trained floats and the schedule), written atomically.
 * Loading refuses a file whose sizes or schedule differ, naming the field,
 * and leaves the trainer unchanged on any error. */
int sl_trainer_save_state(const sl_trainer *t, const char *path, sl_err *err);
int sl_trainer_load_state(sl_trainer *t, const char *path, sl_err *err);

typedef struct sl_eval_result {
    uint64_t tokens;     /* predicted tokens */
    double nll;          /* mean NLL, nats */
    double ppl;          /* exp(nll) */
} sl_eval_result;

/* Evaluates ids[0..n) in windows of T + 1 overlapping by one, B windows
 * per forward, with context c (planned for at least B x T). SL_EINVAL if
 * n < 2 or an id is out of range. */
int sl_eval_ids(sl_gpt2_ctx *c, int B, int T, const int32_t *ids, size_t n, sl_eval_result *r,
                sl_err *err);
/* The same over a dataset split (its documents joined as stored), at most
 * max_tokens of it from the start (0: all). */
int sl_eval_split(sl_gpt2_ctx *c, int B, int T, const sl_dataset *ds, int split,
                  uint64_t max_tokens, sl_eval_result *r, sl_err *err);

#endif
