#include "server/distill.h"

#include <cblas.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/dataset.h"
#include "shared/fsutil.h"
#include "shared/modeldir.h"
#include "shared/nn.h"
#include "shared/progress.h"
#include "shared/tokenizer.h"
#include "shared/train.h"

#define STATE_FILE SL_TRAIN_STATE_FILE
#define PROGRESS_FILE "progress.json"

void sl_distill_cfg_init(sl_distill_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->steps = 200;
    c->B = 4;
    c->T = 128;
    c->lr = 3e-4f;
    c->seed = 1;
    c->eval_batches = 8;
}

/* Teacher and student side by side. */
typedef struct dstate {
    const sl_gpt2 *full;
    sl_gpt2 *emu;
    sl_gpt2_ctx *tc;      /* teacher context (no gradients) */
    int kt, ks;           /* blocks up to the last middle block: teacher, student */
    float kl_weight;
    float *dh, *dfinal;   /* [N, C] */
    float *zt, *zs;       /* [N, V] logits, only with the KL term */
    double last_mse, last_kl;
} dstate;

static int dstate_init(dstate *d, const sl_gpt2 *full, sl_gpt2 *emu, const sl_emumeta *meta,
                       int B, int T, float kl_weight, sl_err *err)
{
    memset(d, 0, sizeof *d);
    d->full = full;
    d->emu = emu;
    d->kt = meta->full_layers - meta->top;
    d->ks = meta->nblocks - meta->top;
    d->kl_weight = kl_weight;
    if (full->C != emu->C || full->V != emu->V || full->L != meta->full_layers ||
        emu->L != meta->nblocks)
        return sl_err_set(err, SL_EINVAL,
                          "distill: the emulator (%d blocks, width %d) does not fit the full "
                          "model (%d blocks, width %d) through its layer map",
                          emu->L, emu->C, full->L, full->C);
    int rc = sl_gpt2_ctx_create(&d->tc, (sl_gpt2 *)full, NULL, NULL, B, T, err);
    if (rc)
        return rc;
    size_t NC = (size_t)B * T * full->C, NV = (size_t)B * T * full->V;
    d->dh = malloc(sizeof(float) * NC);
    d->dfinal = malloc(sizeof(float) * NC);
    if (kl_weight > 0) {
        d->zt = malloc(sizeof(float) * NV);
        d->zs = malloc(sizeof(float) * NV);
    }
    if (!d->dh || !d->dfinal || (kl_weight > 0 && (!d->zt || !d->zs)))
        return sl_err_set(err, SL_ENOMEM, "distill: cannot allocate %d x %d buffers", B, T);
    return 0;
}

static void dstate_fini(dstate *d)
{
    sl_gpt2_ctx_free(d->tc);
    free(d->dh);
    free(d->dfinal);
    free(d->zt);
    free(d->zs);
}

/* KL(p_t || p_s) summed over rows, divided by N; dz = (p_s - p_t) / N. */
static double kl_rows(float *zs, const float *zt, int N, int V)
{
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int n = 0; n < N; n++) {
        float *s = zs + (size_t)n * V;
        const float *t = zt + (size_t)n * V;
        float ms = s[0], mt = t[0];
        for (int v = 1; v < V; v++) {
            ms = s[v] > ms ? s[v] : ms;
            mt = t[v] > mt ? t[v] : mt;
        }
        double zsum = 0, ztsum = 0;
        for (int v = 0; v < V; v++) {
            zsum += exp((double)s[v] - ms);
            ztsum += exp((double)t[v] - mt);
        }
        double lzs = log(zsum) + ms, lzt = log(ztsum) + mt, kl = 0;
        for (int v = 0; v < V; v++) {
            double lpt = t[v] - lzt, lps = s[v] - lzs, pt = exp(lpt);
            kl += pt * (lpt - lps);
            s[v] = (float)((exp(lps) - pt) / N);
        }
        total += kl;
    }
    return total / N;
}

/* Forward of teacher and student on x; the loss, and with grad the
 * gradients into the student's context c. */
static int pair_loss(dstate *d, sl_gpt2_ctx *c, const int32_t *x, int B, int T, int grad,
                     double *loss, sl_err *err)
{
    int kl = d->kl_weight > 0;
    int N = B * T, C = d->full->C, V = d->full->V;
    if (!sl_gpt2_forward_hidden(d->tc, x, B, T, kl ? d->full->L : d->kt) ||
        !sl_gpt2_forward_hidden(c, x, B, T, kl ? d->emu->L : d->ks))
        return sl_err_set(err, SL_EINVAL, "distill: a token id is out of range");
    const float *ht = sl_gpt2_hidden(d->tc, d->kt), *hs = sl_gpt2_hidden(c, d->ks);
    size_t NC = (size_t)N * C;
    double sum = 0;
    const float g = 2.0f / (float)NC;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < NC; i++) {
        float e = hs[i] - ht[i];
        sum += (double)e * e;
        d->dh[i] = g * e;
    }
    d->last_mse = sum / (double)NC;
    d->last_kl = 0;
    if (kl) {
        sl_lmhead_logits(d->zt, sl_gpt2_final(d->tc), d->full->wte, N, C, V);
        sl_lmhead_logits(d->zs, sl_gpt2_final(c), d->emu->wte, N, C, V);
        d->last_kl = kl_rows(d->zs, d->zt, N, V);
        if (grad) {
            /* dfinal[N, C] = kl_weight * dz[N, V] @ wte[V, C] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, V, d->kl_weight, d->zs,
                        V, d->emu->wte, C, 0.0f, d->dfinal, C);
        }
    }
    *loss = d->last_mse + d->kl_weight * d->last_kl;
    if (grad)
        return sl_gpt2_backward_hidden(c, d->ks, d->dh, kl ? d->dfinal : NULL, err);
    return 0;
}

static int step_loss(void *user, sl_gpt2_ctx *c, const int32_t *x, const int32_t *y, int B,
                     int T, float *loss, sl_err *err)
{
    (void)y;
    double l;
    int rc = pair_loss(user, c, x, B, T, 1, &l, err);
    *loss = (float)l;
    return rc;
}

/* Mean hidden-state MSE over n batches from get's windows. */
typedef int (*batch_fn)(void *src, uint64_t *rng, int B, int T, int32_t *x, int32_t *y);

static int ds_batch(void *src, uint64_t *rng, int B, int T, int32_t *x, int32_t *y)
{
    const sl_dataset *ds = src;
    int split = sl_dataset_tokens(ds, SL_DATASET_VAL) >= (uint64_t)T + 1 ? SL_DATASET_VAL
                                                                           : SL_DATASET_TRAIN;
    return sl_dataset_batch(ds, split, rng, B, T, x, y);
}

typedef struct ids_src { const int32_t *ids; size_t n; } ids_src;

static int ids_batch(void *src, uint64_t *rng, int B, int T, int32_t *x, int32_t *y)
{
    ids_src *s = src;
    if (s->n < (size_t)T + 1)
        return SL_ELIMIT;
    for (int b = 0; b < B; b++) {
        /* splitmix64, as the datasets draw windows */
        uint64_t z = (*rng += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        size_t at = (size_t)(z % (uint64_t)(s->n - (size_t)T));
        memcpy(x + (size_t)b * T, s->ids + at, sizeof(int32_t) * (size_t)T);
        memcpy(y + (size_t)b * T, s->ids + at + 1, sizeof(int32_t) * (size_t)T);
    }
    return 0;
}

static int eval_mse(dstate *d, sl_gpt2_ctx *c, batch_fn get, void *src, int B, int T, int n,
                    uint64_t seed, double *mse, sl_err *err)
{
    int32_t *x = malloc(sizeof(int32_t) * (size_t)B * T * 2);
    if (!x)
        return sl_err_set(err, SL_ENOMEM, "distill: out of memory");
    uint64_t r = seed;
    double sum = 0;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        double l;
        if (get(src, &r, B, T, x, x + (size_t)B * T))
            rc = sl_err_set(err, SL_ELIMIT, "distill: fewer than %d tokens to evaluate on",
                            T + 1);
        else if (!(rc = pair_loss(d, c, x, B, T, 0, &l, err)))
            sum += d->last_mse;
    }
    free(x);
    if (!rc)
        *mse = sum / n;
    return rc;
}

int sl_distill_mse(const sl_gpt2 *full, const sl_gpt2 *emu, const sl_emumeta *meta,
                   const int32_t *ids, size_t nids, int B, int T, int n, uint64_t seed,
                   double *mse, sl_err *err)
{
    dstate d;
    sl_gpt2_ctx *c = NULL;
    int rc = dstate_init(&d, full, (sl_gpt2 *)emu, meta, B, T, 0, err);
    if (!rc)
        rc = sl_gpt2_ctx_create(&c, (sl_gpt2 *)emu, NULL, NULL, B, T, err);
    ids_src s = {ids, nids};
    if (!rc)
        rc = eval_mse(&d, c, ids_batch, &s, B, T, n, seed, mse, err);
    sl_gpt2_ctx_free(c);
    dstate_fini(&d);
    return rc;
}

int sl_distill_batch_loss(const sl_gpt2 *full, sl_gpt2 *emu, const sl_emumeta *meta,
                          sl_gpt2_ctx *c, const int32_t *x, int B, int T, float kl_weight,
                          int grad, double *loss, sl_err *err)
{
    dstate d;
    int rc = dstate_init(&d, full, emu, meta, B, T, kl_weight, err);
    if (!rc)
        rc = pair_loss(&d, c, x, B, T, grad, loss, err);
    dstate_fini(&d);
    return rc;
}

/* ---- checkpoints ---------------------------------------------------------- */

/* WORK/checkpoint.tmp -> WORK/checkpoint, the previous one kept as
 * checkpoint.old until the new one is in place (as `train` does). */
static int save_ckpt(const char *work, const sl_gpt2 *emu, const sl_trainer *tr,
                     double mse_before, sl_err *err)
{
    char tmp[PATH_MAX], cur[PATH_MAX], old[PATH_MAX], f[PATH_MAX];
    int rc;
    if ((rc = sl_fs_join(tmp, sizeof tmp, work, "checkpoint.tmp", err)) ||
        (rc = sl_fs_join(cur, sizeof cur, work, "checkpoint", err)) ||
        (rc = sl_fs_join(old, sizeof old, work, "checkpoint.old", err)) ||
        (rc = sl_fs_remove_flat_dir(tmp, err)) || (rc = sl_fs_mkdirs(tmp, 0755, err)) ||
        (rc = sl_modeldir_save(emu, tmp, SL_ST_F32, err)) ||
        (rc = sl_fs_join(f, sizeof f, tmp, STATE_FILE, err)) ||
        (rc = sl_trainer_save_state(tr, f, err)) ||
        (rc = sl_fs_join(f, sizeof f, tmp, PROGRESS_FILE, err)))
        return rc;
    char js[160];
    int n = snprintf(js, sizeof js, "{\"step\": %ld, \"mse_before\": %.17g}\n",
                     sl_trainer_steps_done(tr), mse_before);
    if ((rc = sl_fs_write_atomic(f, js, (size_t)n, 0644, err)) ||
        (rc = sl_fs_remove_flat_dir(old, err)))
        return rc;
    if (sl_fs_exists(cur) && rename(cur, old))
        return sl_err_errno(err, "%s: rename", cur);
    if (rename(tmp, cur))
        return sl_err_errno(err, "%s: rename", tmp);
    if ((rc = sl_fs_sync_dir_of(cur, err)))
        return rc;
    return sl_fs_remove_flat_dir(old, err);
}

/* Loads WORK/checkpoint (or checkpoint.old) if there is one; *found says. */
static int load_ckpt(const char *work, sl_gpt2 *emu, sl_trainer *tr, double *mse_before,
                     int *found, sl_err *err)
{
    const char *names[] = {"checkpoint", "checkpoint.old"};
    *found = 0;
    for (int i = 0; i < 2; i++) {
        char dir[PATH_MAX], f[PATH_MAX];
        int rc;
        if ((rc = sl_fs_join(dir, sizeof dir, work, names[i], err)) ||
            (rc = sl_fs_join(f, sizeof f, dir, STATE_FILE, err)))
            return rc;
        if (!sl_fs_exists(f))
            continue;
        sl_gpt2 *m = NULL;
        if ((rc = sl_modeldir_load(&m, dir, err)))
            return rc;
        if (m->nparams != emu->nparams || m->L != emu->L) {
            sl_gpt2_free(m);
            return sl_err_set(err, SL_EINVAL, "%s: the checkpoint's emulator has another shape",
                              dir);
        }
        /* The state first: a bad state file leaves the emulator as it was. */
        if ((rc = sl_trainer_load_state(tr, f, err))) {
            sl_gpt2_free(m);
            return rc;
        }
        memcpy(emu->params, m->params, sizeof(float) * m->nparams);
        sl_gpt2_free(m);
        if ((rc = sl_fs_join(f, sizeof f, dir, PROGRESS_FILE, err)))
            return rc;
        json_error_t je;
        json_t *p = json_load_file(f, JSON_REJECT_DUPLICATES, &je);
        json_t *v = p ? json_object_get(p, "mse_before") : NULL;
        if (!json_is_number(v)) {
            json_decref(p);
            return sl_err_set(err, SL_EFORMAT, "%s: no number 'mse_before'", f);
        }
        *mse_before = json_number_value(v);
        json_decref(p);
        *found = 1;
        return 0;
    }
    return 0;
}

int sl_distill_run(const sl_gpt2 *full, sl_gpt2 *emu, const sl_emumeta *meta,
                   const char *tok_dir, const sl_distill_cfg *cfg, sl_emumeta_distill *rec,
                   sl_err *err)
{
    int first = meta->bottom, end = meta->nblocks - meta->top; /* middle blocks [first, end) */
    if (end <= first)
        return sl_err_set(err, SL_EINVAL,
                          "distill: the emulator keeps no middle block (all %d are adapter "
                          "blocks); nothing to distil",
                          meta->nblocks);
    int rc;
    sl_tokenizer *tok = NULL;
    sl_dataset *ds = NULL;
    sl_trainer *tr = NULL;
    uint8_t *mask = calloc((size_t)emu->ntensors, 1);
    dstate d;
    memset(&d, 0, sizeof d);
    if (!mask)
        return sl_err_set(err, SL_ENOMEM, "distill: out of memory");
    for (int l = first; l < end; l++)
        for (int k = 0; k < SL_T_PER_LAYER; k++)
            mask[SL_GPT2_LAYER0 + l * SL_T_PER_LAYER + k] = 1;
    sl_train_cfg tc;
    sl_train_cfg_init(&tc);
    tc.B = cfg->B;
    tc.T = cfg->T < emu->maxT ? cfg->T : emu->maxT;
    tc.steps = cfg->steps;
    tc.warmup = cfg->steps / 20;
    tc.lr = cfg->lr;
    tc.lr_min = cfg->lr / 10;
    tc.weight_decay = 0;
    tc.clip = 1.0f;
    tc.seed = cfg->seed;
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    /* The token cache lives in the work folder: the text's own folder may
     * be read-only or shared. */
    char cache[PATH_MAX];
    o.cache = cache;
    if ((rc = sl_fs_mkdirs(cfg->work, 0755, err)) ||
        (rc = sl_fs_join(cache, sizeof cache, cfg->work, "text.tokcache", err)) ||
        (rc = sl_tokenizer_load(tok_dir, &tok, err)) ||
        (rc = sl_dataset_open(cfg->text, tok, &o, &ds, err)))
        goto out;
    if (sl_dataset_tokens(ds, SL_DATASET_TRAIN) < (uint64_t)tc.T + 1) {
        rc = sl_err_set(err, SL_EINVAL, "distill: %s has fewer than %d training tokens",
                        cfg->text, tc.T + 1);
        goto out;
    }
    if ((rc = sl_trainer_create(&tr, emu, NULL, mask, &tc, err)) ||
        (rc = dstate_init(&d, full, emu, meta, tc.B, tc.T, cfg->kl_weight, err)))
        goto out;
    double before = NAN, after = NAN;
    int found = 0;
    if (cfg->resume && (rc = load_ckpt(cfg->work, emu, tr, &before, &found, err)))
        goto out;
    const uint64_t eval_seed = 0x5eed0ff5;
    if (!found &&
        (rc = eval_mse(&d, sl_trainer_ctx(tr), ds_batch, ds, tc.B, tc.T, cfg->eval_batches,
                       eval_seed, &before, err)))
        goto out;
    long start = sl_trainer_steps_done(tr);
    long every = cfg->ckpt_every > 0 ? cfg->ckpt_every : (cfg->steps >= 10 ? cfg->steps / 10 : 0);
    if (!cfg->quiet)
        fprintf(stderr,
                "distill: %d middle blocks, %ld steps of %d x %d on %s%s; held-out MSE %.6g\n",
                end - first, cfg->steps, tc.B, tc.T, cfg->text,
                found ? " (resumed)" : "", before);
    sl_progress pr;
    sl_progress_init(&pr, "distill", "tok/s", (uint64_t)cfg->steps, (uint64_t)start, cfg->quiet);
    for (long s = start; s < cfg->steps; s++) {
        sl_train_stats st;
        if ((rc = sl_trainer_step_loss(tr, ds, step_loss, &d, &st, err)))
            break;
        char extra[96];
        if (d.kl_weight > 0)
            snprintf(extra, sizeof extra, "mse %.4g kl %.4g", d.last_mse, d.last_kl);
        else
            snprintf(extra, sizeof extra, "mse %.4g", d.last_mse);
        sl_progress_update(&pr, (uint64_t)st.step, (double)tc.B * tc.T, extra, 0);
        if (every && st.step % every == 0 && st.step < cfg->steps &&
            (rc = save_ckpt(cfg->work, emu, tr, before, err)))
            break;
        if (st.step < cfg->steps &&
            ((cfg->stop && *cfg->stop) || (cfg->stop_at && st.step >= cfg->stop_at))) {
            sl_progress_end(&pr);
            if (!(rc = save_ckpt(cfg->work, emu, tr, before, err)))
                rc = sl_err_set(err, SL_EABORT,
                                "distill: interrupted at step %ld; checkpoint saved in "
                                "%s/checkpoint; rerun with --resume to continue",
                                st.step, cfg->work);
            goto out;
        }
    }
    sl_progress_end(&pr);
    if (rc ||
        (rc = eval_mse(&d, sl_trainer_ctx(tr), ds_batch, ds, tc.B, tc.T, cfg->eval_batches,
                       eval_seed, &after, err)))
        goto out;
    if (!cfg->quiet)
        fprintf(stderr, "distill: held-out hidden-state MSE %.6g -> %.6g\n", before, after);
    if (rec) {
        memset(rec, 0, sizeof *rec);
        rec->present = 1;
        snprintf(rec->text, sizeof rec->text, "%s", cfg->text);
        struct stat sb;
        if (stat(cfg->text, &sb) == 0 && S_ISREG(sb.st_mode) &&
            (rc = sl_fs_sha256(cfg->text, (uint8_t[32]){0}, rec->text_sha256, err)))
            goto out;
        rec->steps = cfg->steps;
        rec->batch = tc.B;
        rec->seq = tc.T;
        rec->lr = cfg->lr;
        rec->kl_weight = cfg->kl_weight;
        rec->seed = cfg->seed;
        rec->mse_before = before;
        rec->mse_after = after;
    }
    /* Done: the checkpoint has served its purpose. */
    char ck[PATH_MAX];
    if (!(rc = sl_fs_join(ck, sizeof ck, cfg->work, "checkpoint", err)) &&
        !(rc = sl_fs_remove_flat_dir(ck, err))) {
        sl_dataset_close(ds);
        ds = NULL;
        unlink(cache);
        rmdir(cfg->work); /* only if empty; a user's folder keeps its files */
    }
out:
    dstate_fini(&d);
    sl_trainer_free(tr);
    sl_dataset_close(ds);
    sl_tokenizer_free(tok);
    free(mask);
    return rc;
}
