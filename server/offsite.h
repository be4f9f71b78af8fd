/* server/offsite.h - the offsite table (docs/offsite.md): does an adapter
 * tuned on the emulator improve the full model? Five held-out perplexities
 * on a domain: (1) full model zero-shot, (2) emulator zero-shot, (3)
 * emulator with a LoRA tuned on the domain, (4) that LoRA plugged into the
 * full model, (5) a LoRA of the same size (same blocks, rank, targets, seed
 * and batches) tuned directly on the full model; plus the parameter count,
 * LoRA training throughput and training memory of emulator and full model.
 *
 * Ownership: models and datasets are borrowed; the LoRAs trained are
 * written to the caller's folder (PEFT layout, full-model block indices)
 * and freed. Not thread-safe (kernels inside use threads). */
#ifndef SL_SERVER_OFFSITE_H
#define SL_SERVER_OFFSITE_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "shared/dataset.h"
#include "shared/emumeta.h"
#include "shared/err.h"
#include "shared/gpt2.h"

#define SL_OFFSITE_ROWS 5

typedef struct sl_offsite_cfg {
    int B, T;              /* training batch rows x tokens (8 x 128) */
    long steps;            /* LoRA steps, each of rows 3 and 5 (200) */
    int lora_r;            /* rank (8) */
    float lora_alpha;      /* alpha (16) */
    unsigned targets;      /* SL_LORA_* bits (all four Conv1D modules) */
    float lr;              /* peak learning rate (1e-3; cosine to lr/10) */
    uint64_t seed;         /* LoRA init and batches (1) */
    uint64_t eval_tokens;  /* held-out tokens evaluated, from the start (65536; 0 all) */
    const char *save_dir;  /* if set: save the two LoRAs as DIR/lora-emulator, DIR/lora-full */
    const char *base_name; /* base model path recorded in the saved adapters */
    const char *base_digest; /* hex SHA-256 of the full model's weights (for the adapters) */
    int quiet;
} sl_offsite_cfg;

void sl_offsite_cfg_init(sl_offsite_cfg *c);

typedef struct sl_offsite_row {
    const char *name;      /* static text */
    double nll, ppl;       /* mean NLL (nats) and exp(nll) on the held-out tokens */
    uint64_t tokens;
} sl_offsite_row;

typedef struct sl_offsite_side {
    size_t params;         /* model parameters */
    double tok_per_s;      /* LoRA training tokens per second */
    double seconds;        /* LoRA training wall time */
    double cpu_seconds;    /* its CPU time (user + system, all threads): robust when the
                            * machine is shared, where wall time is not */
    size_t train_bytes;    /* weights + context (activations, gradients) + LoRA + AdamW */
    double final_loss;     /* mean training loss over the last tenth of the steps */
} sl_offsite_side;

typedef struct sl_offsite_table {
    sl_offsite_row rows[SL_OFFSITE_ROWS];
    sl_offsite_side full, emu;
    size_t lora_params;
    int adapter_layers[SL_EMUMETA_MAX_LAYERS], nadapter; /* full-model indices */
} sl_offsite_table;

/* Runs the five evaluations and the two trainings. train supplies the
 * training batches (its training split), heldout the evaluation tokens
 * (its training split, i.e. all of it when opened with no validation
 * share). On failure *out is untouched. */
int sl_offsite_run(sl_gpt2 *full, sl_gpt2 *emu, const sl_emumeta *meta, const sl_dataset *train,
                   const sl_dataset *heldout, const sl_offsite_cfg *cfg, sl_offsite_table *out,
                   sl_err *err);

/* Writers: the text table, the JSON object (jansson, two-space indented)
 * and the SVG bar chart of the five perplexities. what names the run (model
 * and emulator) in titles. Each returns 0 or -1 if writing failed. */
int sl_offsite_write_text(FILE *f, const sl_offsite_table *t, const sl_emumeta *meta,
                          const char *what);
int sl_offsite_write_json(FILE *f, const sl_offsite_table *t, const sl_emumeta *meta,
                          const sl_offsite_cfg *cfg, const char *what);
int sl_offsite_write_svg(FILE *f, const sl_offsite_table *t, const char *what);

#endif
