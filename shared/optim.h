/* shared/optim.h - AdamW (Loshchilov and Hutter 2019: bias-corrected Adam
 * moments, weight decay decoupled from the gradient), global gradient-norm
 * clipping and the learning-rate schedule (linear warm-up, cosine decay).
 *
 * Parameters are presented as segments of (weights, gradients, length,
 * decay flag), e.g. the trainable tensors of a model or an adapter's flat
 * vector; the optimiser's moment buffers are one allocation covering all
 * segments in order. The segment list must be the same at every step.
 * Not thread-safe; the update loop uses OpenMP. */
#ifndef SL_OPTIM_H
#define SL_OPTIM_H
#include <stddef.h>

#include "shared/err.h"

typedef struct sl_param_seg {
    float *w;        /* borrowed, n floats */
    const float *g;  /* borrowed, n floats */
    size_t n;
    int decay;       /* weight decay applies (matrices), not to biases/norms */
} sl_param_seg;

typedef struct sl_adamw {
    float beta1, beta2, eps, weight_decay;
    size_t n;        /* total floats over all segments */
    long t;          /* steps taken (for bias correction) */
    float *m, *v;    /* owned, n floats each */
} sl_adamw;

/* Defaults: beta1 0.9, beta2 0.999 (callers may change them), eps 1e-8. */
int sl_adamw_init(sl_adamw *o, size_t n, float weight_decay, sl_err *err);
void sl_adamw_fini(sl_adamw *o);
/* One step with learning rate lr over segs (whose lengths must sum to o->n). */
void sl_adamw_step(sl_adamw *o, const sl_param_seg *segs, int nsegs, float lr);
/* L2 norm of all gradients (accumulated in double). */
double sl_grad_norm(const sl_param_seg *segs, int nsegs);
/* Scales gradients so their global norm is at most max_norm; returns the
 * norm before clipping. The segments' g must be writable. */
double sl_grad_clip(const sl_param_seg *segs, int nsegs, double max_norm);
/* Learning rate at step (0-based) of total: linear warm-up over warmup
 * steps to lr_max, then cosine decay to lr_min at the last step. */
float sl_lr_schedule(long step, long total, long warmup, float lr_max, float lr_min);

#endif
