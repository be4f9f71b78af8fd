#include "shared/train.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/optim.h"
#include "shared/safetensors.h"

struct sl_trainer {
    sl_train_cfg cfg;
    sl_gpt2 *m;
    sl_lora *lora;
    sl_gpt2_ctx *ctx;
    sl_param_seg *segs;
    int nsegs;
    sl_adamw opt;
    long step;
    uint64_t rng;
    int32_t *x, *y; /* B*T each */
};

void sl_train_cfg_init(sl_train_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->B = 8;
    c->T = 128;
    c->steps = 100;
    c->warmup = 10;
    c->lr = 3e-4f;
    c->lr_min = 3e-5f;
    c->weight_decay = 0.0f;
    c->clip = 1.0f;
    c->seed = 1;
}

int sl_train_cfg_validate(const sl_train_cfg *c, int max_T, sl_err *err)
{
    if (c->B < 1 || c->B > 4096)
        return sl_err_set(err, SL_EINVAL, "batch %d must be in 1..4096", c->B);
    if (c->T < 1 || c->T > max_T)
        return sl_err_set(err, SL_EINVAL, "context %d must be in 1..%d (the model's)", c->T,
                          max_T);
    if (c->steps < 1)
        return sl_err_set(err, SL_EINVAL, "steps %ld must be at least 1", c->steps);
    if (c->warmup < 0 || c->warmup > c->steps)
        return sl_err_set(err, SL_EINVAL, "warm-up %ld must be in 0..steps (%ld)", c->warmup,
                          c->steps);
    if (!(c->lr > 0 && c->lr < 10))
        return sl_err_set(err, SL_EINVAL, "learning rate %g must be in (0, 10)", c->lr);
    if (!(c->lr_min >= 0 && c->lr_min <= c->lr))
        return sl_err_set(err, SL_EINVAL, "final learning rate %g must be in [0, lr]", c->lr_min);
    if (!(c->weight_decay >= 0 && c->weight_decay < 1))
        return sl_err_set(err, SL_EINVAL, "weight decay %g must be in [0, 1)", c->weight_decay);
    if (!(c->clip >= 0 && isfinite(c->clip)))
        return sl_err_set(err, SL_EINVAL, "clip %g must be finite and at least 0", c->clip);
    return 0;
}

int sl_trainer_create(sl_trainer **out, sl_gpt2 *m, sl_lora *lora, const uint8_t *trainable,
                      const sl_train_cfg *cfg, sl_err *err)
{
    if (sl_train_cfg_validate(cfg, m->maxT, err))
        return err->code;
    sl_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return sl_err_set(err, SL_ENOMEM, "trainer: out of memory");
    t->cfg = *cfg;
    t->m = m;
    t->lora = lora;
    t->rng = cfg->seed;
    uint8_t *all = NULL;
    if (!lora && !trainable) {
        all = malloc((size_t)m->ntensors);
        if (!all) {
            free(t);
            return sl_err_set(err, SL_ENOMEM, "trainer: out of memory");
        }
        memset(all, 1, (size_t)m->ntensors);
        trainable = all;
    }
    int rc = sl_gpt2_ctx_create(&t->ctx, m, lora, lora ? NULL : trainable, cfg->B, cfg->T, err);
    if (rc)
        goto fail;
    size_t n = 0;
    t->segs = calloc((size_t)m->ntensors + 1, sizeof *t->segs);
    size_t bt = (size_t)cfg->B * (size_t)cfg->T;
    t->x = malloc(bt * sizeof *t->x);
    t->y = malloc(bt * sizeof *t->y);
    if (!t->segs || !t->x || !t->y) {
        rc = sl_err_set(err, SL_ENOMEM, "trainer: out of memory");
        goto fail;
    }
    if (lora) {
        t->segs[0] = (sl_param_seg){lora->params, sl_gpt2_lora_grad(t->ctx), lora->nparams, 0};
        t->nsegs = 1;
        n = lora->nparams;
    } else {
        for (int i = 0; i < m->ntensors; i++) {
            if (!trainable[i])
                continue;
            sl_gpt2_tensor ti;
            sl_gpt2_tensor_info(m, i, &ti);
            t->segs[t->nsegs++] = (sl_param_seg){ti.data, sl_gpt2_grad(t->ctx, i), ti.numel,
                                                 ti.decay};
            n += ti.numel;
        }
    }
    if (n == 0) {
        rc = sl_err_set(err, SL_EINVAL, "trainer: nothing to train");
        goto fail;
    }
    if ((rc = sl_adamw_init(&t->opt, n, cfg->weight_decay, err)))
        goto fail;
    free(all);
    *out = t;
    return 0;
fail:
    free(all);
    sl_trainer_free(t);
    return rc;
}

void sl_trainer_free(sl_trainer *t)
{
    if (!t)
        return;
    sl_adamw_fini(&t->opt);
    sl_gpt2_ctx_free(t->ctx);
    free(t->segs);
    free(t->x);
    free(t->y);
    free(t);
}

long sl_trainer_steps_done(const sl_trainer *t) { return t->step; }
const sl_train_cfg *sl_trainer_cfg(const sl_trainer *t) { return &t->cfg; }
sl_gpt2_ctx *sl_trainer_ctx(sl_trainer *t) { return t->ctx; }

/* Clipping, schedule and AdamW after the gradients of a step's loss. */
static int apply_step(sl_trainer *t, float loss, sl_train_stats *st, sl_err *err)
{
    const sl_train_cfg *c = &t->cfg;
    double norm = c->clip > 0 ? sl_grad_clip(t->segs, t->nsegs, c->clip)
                              : sl_grad_norm(t->segs, t->nsegs);
    if (!isfinite(norm) || !isfinite(loss))
        return sl_err_set(err, SL_EINVAL,
                          "trainer: step %ld: loss %g, gradient norm %g: training diverged "
                          "(lower the learning rate)",
                          t->step + 1, loss, norm);
    /* Past the schedule's end the rate stays at its floor. */
    long s = t->step < c->steps ? t->step : c->steps - 1;
    float lr = sl_lr_schedule(s, c->steps, c->warmup, c->lr, c->lr_min);
    sl_adamw_step(&t->opt, t->segs, t->nsegs, lr);
    t->step++;
    if (st) {
        st->step = t->step;
        st->loss = loss;
        st->grad_norm = norm;
        st->lr = lr;
    }
    return 0;
}

int sl_trainer_step_batch(sl_trainer *t, const int32_t *inputs, const int32_t *targets,
                          sl_train_stats *st, sl_err *err)
{
    const sl_train_cfg *c = &t->cfg;
    sl_gpt2_zero_grad(t->ctx);
    float loss = sl_gpt2_forward(t->ctx, inputs, targets, c->B, c->T, 1);
    if (isnan(loss))
        return sl_err_set(err, SL_EINVAL,
                          "trainer: step %ld: token id out of range or no target counted",
                          t->step + 1);
    sl_gpt2_backward(t->ctx);
    return apply_step(t, loss, st, err);
}

int sl_trainer_step_loss(sl_trainer *t, const sl_dataset *ds, sl_train_loss_fn fn, void *user,
                         sl_train_stats *st, sl_err *err)
{
    uint64_t r = t->rng;
    int rc = sl_dataset_batch(ds, SL_DATASET_TRAIN, &r, t->cfg.B, t->cfg.T, t->x, t->y);
    if (rc)
        return sl_err_set(err, rc, "trainer: the training split has fewer than %d tokens",
                          t->cfg.T + 1);
    sl_gpt2_zero_grad(t->ctx);
    float loss = NAN;
    if ((rc = fn(user, t->ctx, t->x, t->y, t->cfg.B, t->cfg.T, &loss, err)) ||
        (rc = apply_step(t, loss, st, err)))
        return rc;
    t->rng = r;
    return 0;
}

int sl_trainer_step(sl_trainer *t, const sl_dataset *ds, sl_train_stats *st, sl_err *err)
{
    uint64_t r = t->rng;
    int rc = sl_dataset_batch(ds, SL_DATASET_TRAIN, &r, t->cfg.B, t->cfg.T, t->x, t->y);
    if (rc)
        return sl_err_set(err, rc, "trainer: the training split has fewer than %d tokens",
                          t->cfg.T + 1);
    if ((rc = sl_trainer_step_batch(t, t->x, t->y, st, err)))
        return rc;
    t->rng = r;
    return 0;
}

int sl_trainer_estimate(sl_trainer *t, const sl_dataset *ds, int split, int n, uint64_t seed,
                        double *nll, sl_err *err)
{
    uint64_t r = seed;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        if (sl_dataset_batch(ds, split, &r, t->cfg.B, t->cfg.T, t->x, t->y))
            return sl_err_set(err, SL_ELIMIT, "trainer: the %s split has fewer than %d tokens",
                              split == SL_DATASET_VAL ? "validation" : "training",
                              t->cfg.T + 1);
        float l = sl_gpt2_forward(t->ctx, t->x, t->y, t->cfg.B, t->cfg.T, 0);
        if (isnan(l))
            return sl_err_set(err, SL_EINVAL, "trainer: token id out of range");
        sum += l;
    }
    *nll = n > 0 ? sum / n : NAN;
    return 0;
}

/* ---- state file ---- */

static void sched_string(const sl_train_cfg *c, char *out, size_t cap)
{
    snprintf(out, cap, "B=%d T=%d steps=%ld warmup=%ld lr=%.9g lr_min=%.9g wd=%.9g clip=%.9g",
             c->B, c->T, c->steps, c->warmup, c->lr, c->lr_min, c->weight_decay, c->clip);
}

int sl_trainer_save_state(const sl_trainer *t, const char *path, sl_err *err)
{
    char step[32], rng[32], adam_t[32], n[32], sched[256];
    snprintf(step, sizeof step, "%ld", t->step);
    snprintf(rng, sizeof rng, "%016" PRIx64, t->rng);
    snprintf(adam_t, sizeof adam_t, "%ld", t->opt.t);
    snprintf(n, sizeof n, "%zu", t->opt.n);
    sched_string(&t->cfg, sched, sizeof sched);
    const char *meta[] = {"sealora.step", step, "sealora.rng", rng, "sealora.adamw_t", adam_t,
                          "sealora.trained", n, "sealora.schedule", sched};
    sl_st_entry e[2] = {
        {"adamw.m", SL_ST_F32, 1, {(int64_t)t->opt.n}, t->opt.m},
        {"adamw.v", SL_ST_F32, 1, {(int64_t)t->opt.n}, t->opt.v},
    };
    return sl_st_write(path, e, 2, meta, 5, err);
}

static int meta_long(const sl_st_file *f, const char *path, const char *key, int base,
                     unsigned long long *out, sl_err *err)
{
    const char *v = sl_st_meta(f, key);
    char *end;
    if (!v || !*v)
        return sl_err_set(err, SL_EFORMAT, "%s: metadata '%s' missing", path, key);
    unsigned long long x = strtoull(v, &end, base);
    if (*end || v[0] == '-')
        return sl_err_set(err, SL_EFORMAT, "%s: metadata '%s' = '%s' is not a number", path,
                          key, v);
    *out = x;
    return 0;
}

int sl_trainer_load_state(sl_trainer *t, const char *path, sl_err *err)
{
    sl_st_file *f = NULL;
    int rc = sl_st_open(&f, path, err);
    if (rc)
        return rc;
    unsigned long long step, rng, at, n;
    char sched[256];
    sched_string(&t->cfg, sched, sizeof sched);
    const char *fs = sl_st_meta(f, "sealora.schedule");
    const sl_st_tensor *m = sl_st_find(f, "adamw.m"), *v = sl_st_find(f, "adamw.v");
    if ((rc = meta_long(f, path, "sealora.step", 10, &step, err)) ||
        (rc = meta_long(f, path, "sealora.rng", 16, &rng, err)) ||
        (rc = meta_long(f, path, "sealora.adamw_t", 10, &at, err)) ||
        (rc = meta_long(f, path, "sealora.trained", 10, &n, err)))
        goto out;
    if (n != t->opt.n) {
        rc = sl_err_set(err, SL_EINVAL,
                        "%s: trains %llu parameters, this run %zu (different model or adapter)",
                        path, n, t->opt.n);
        goto out;
    }
    if (!fs || strcmp(fs, sched) != 0) {
        rc = sl_err_set(err, SL_EINVAL, "%s: schedule '%s' differs from this run's '%s'", path,
                        fs ? fs : "(none)", sched);
        goto out;
    }
    if (!m || !v || m->ndim != 1 || v->ndim != 1 || m->nelem != n || v->nelem != n ||
        step > (unsigned long long)LONG_MAX || at > (unsigned long long)LONG_MAX) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: tensors adamw.m/adamw.v missing or not [%zu]",
                        path, t->opt.n);
        goto out;
    }
    /* Read into scratch first so a bad file leaves the trainer unchanged. */
    float *nm = malloc(n * sizeof(float)), *nv = malloc(n * sizeof(float));
    if (!nm || !nv) {
        free(nm);
        free(nv);
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((rc = sl_st_read_f32(m, nm, n, err)) || (rc = sl_st_read_f32(v, nv, n, err))) {
        free(nm);
        free(nv);
        sl_err_prefix(err, "%s", path);
        goto out;
    }
    free(t->opt.m);
    free(t->opt.v);
    t->opt.m = nm;
    t->opt.v = nv;
    t->opt.t = (long)at;
    t->step = (long)step;
    t->rng = rng;
out:
    sl_st_close(f);
    return rc;
}

/* ---- evaluation ---- */

/* Evaluates windows whose ids come from get(src, i). */
typedef int32_t (*id_fn)(const void *src, uint64_t i);

static int32_t id_from_array(const void *src, uint64_t i) { return ((const int32_t *)src)[i]; }

typedef struct {
    const sl_dataset *ds;
    int split;
} ds_src;

static int32_t id_from_ds(const void *src, uint64_t i)
{
    const ds_src *s = src;
    return (int32_t)sl_dataset_token(s->ds, s->split, i);
}

static int eval_windows(sl_gpt2_ctx *c, int B, int T, id_fn get, const void *src, uint64_t n,
                        sl_eval_result *r, sl_err *err)
{
    if (n < 2)
        return sl_err_set(err, SL_EINVAL, "eval: need at least 2 tokens, have %" PRIu64, n);
    if (B < 1 || T < 1)
        return sl_err_set(err, SL_EINVAL, "eval: batch %d, context %d", B, T);
    size_t bt = (size_t)B * (size_t)T;
    int32_t *x = malloc(bt * sizeof *x), *y = malloc(bt * sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return sl_err_set(err, SL_ENOMEM, "eval: out of memory");
    }
    uint64_t windows = (n - 1 + (uint64_t)T - 1) / (uint64_t)T, counted = 0;
    double sum = 0;
    int rc = 0;
    for (uint64_t w0 = 0; w0 < windows; w0 += (uint64_t)B) {
        int rows = (int)(windows - w0 < (uint64_t)B ? windows - w0 : (uint64_t)B);
        int Tw = T;
        if (rows == 1 && w0 + 1 == windows) /* a last lone window runs at its own length */
            Tw = (int)(n - 1 - w0 * (uint64_t)T);
        for (int b = 0; b < rows; b++) {
            uint64_t start = (w0 + (uint64_t)b) * (uint64_t)T;
            for (int j = 0; j < Tw; j++) {
                uint64_t p = start + (uint64_t)j;
                int have = p + 1 < n;
                x[b * Tw + j] = p < n ? get(src, p) : 0;
                y[b * Tw + j] = have ? get(src, p + 1) : -1;
            }
        }
        float l = sl_gpt2_forward(c, x, y, rows, Tw, 0);
        if (isnan(l)) {
            rc = sl_err_set(err, SL_EINVAL, "eval: a token id is outside the model's vocabulary");
            break;
        }
        const float *pos = sl_gpt2_losses(c);
        for (int i = 0; i < rows * Tw; i++)
            if (y[i] >= 0) {
                sum += pos[i];
                counted++;
            }
    }
    free(x);
    free(y);
    if (rc)
        return rc;
    r->tokens = counted;
    r->nll = sum / (double)counted;
    r->ppl = exp(r->nll);
    return 0;
}

int sl_eval_ids(sl_gpt2_ctx *c, int B, int T, const int32_t *ids, size_t n, sl_eval_result *r,
                sl_err *err)
{
    return eval_windows(c, B, T, id_from_array, ids, n, r, err);
}

int sl_eval_split(sl_gpt2_ctx *c, int B, int T, const sl_dataset *ds, int split,
                  uint64_t max_tokens, sl_eval_result *r, sl_err *err)
{
    uint64_t n = sl_dataset_tokens(ds, split);
    if (max_tokens && n > max_tokens)
        n = max_tokens;
    ds_src s = {ds, split};
    return eval_windows(c, B, T, id_from_ds, &s, n, r, err);
}
