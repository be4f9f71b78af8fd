#include "server/offsite.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "shared/adapter.h"
#include "shared/emulator.h"
#include "shared/fsutil.h"
#include "shared/lora.h"
#include "shared/progress.h"
#include "shared/svgbars.h"
#include "shared/train.h"

static const char *const ROW_NAMES[SL_OFFSITE_ROWS] = {
    "full model, zero-shot",
    "emulator, zero-shot",
    "emulator + LoRA tuned on the emulator",
    "full model + that LoRA plugged in",
    "full model + LoRA tuned on the full model",
};

void sl_offsite_cfg_init(sl_offsite_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->B = 8;
    c->T = 128;
    c->steps = 200;
    c->lora_r = 8;
    c->lora_alpha = 16;
    c->targets = SL_LORA_C_ATTN | SL_LORA_C_PROJ | SL_LORA_MLP_FC | SL_LORA_MLP_PROJ;
    c->lr = 1e-3f;
    c->seed = 1;
    c->eval_tokens = 65536;
}

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

/* LoRA on m's given blocks, trained on ds; throughput and memory in side. */
static int train_lora(sl_gpt2 *m, const int *layers, int n, const sl_offsite_cfg *cfg,
                      const sl_dataset *ds, const char *label, sl_lora **out,
                      sl_offsite_side *side, sl_err *err)
{
    sl_lora *l = NULL;
    sl_trainer *tr = NULL;
    int rc = sl_lora_create(&l, m, cfg->lora_r, cfg->lora_alpha, cfg->targets, layers, n,
                            cfg->seed, err);
    sl_train_cfg tc;
    sl_train_cfg_init(&tc);
    tc.B = cfg->B;
    tc.T = cfg->T;
    tc.steps = cfg->steps;
    tc.warmup = cfg->steps / 20;
    tc.lr = cfg->lr;
    tc.lr_min = cfg->lr / 10;
    tc.seed = cfg->seed;
    if (rc || (rc = sl_trainer_create(&tr, m, l, NULL, &tc, err)))
        goto fail;
    sl_progress pr;
    sl_progress_init(&pr, label, "tok/s", (uint64_t)cfg->steps, 0, cfg->quiet);
    double t0 = sl_now(), c0 = cpu_now(), tail = 0;
    long tail_n = 0, tail_from = cfg->steps - (cfg->steps >= 10 ? cfg->steps / 10 : 1);
    for (long s = 0; s < cfg->steps; s++) {
        sl_train_stats st;
        if ((rc = sl_trainer_step(tr, ds, &st, err))) {
            sl_progress_end(&pr);
            goto fail;
        }
        if (s >= tail_from) {
            tail += st.loss;
            tail_n++;
        }
        char extra[48];
        snprintf(extra, sizeof extra, "loss %.3f", st.loss);
        sl_progress_update(&pr, (uint64_t)st.step, (double)tc.B * tc.T, extra, 0);
    }
    sl_progress_end(&pr);
    side->seconds = sl_now() - t0;
    side->cpu_seconds = cpu_now() - c0;
    side->tok_per_s = side->seconds > 0 ? (double)cfg->steps * tc.B * tc.T / side->seconds : 0;
    side->params = m->nparams;
    /* weights + the context (activations, LoRA gradients, scratch) + the
     * LoRA's parameters and AdamW's two moments */
    side->train_bytes = m->nparams * sizeof(float) + sl_gpt2_ctx_bytes(sl_trainer_ctx(tr)) +
                        3 * l->nparams * sizeof(float);
    side->final_loss = tail_n ? tail / tail_n : NAN;
    sl_trainer_free(tr);
    *out = l;
    return 0;
fail:
    sl_trainer_free(tr);
    sl_lora_free(l);
    return rc;
}

static int eval_row(sl_gpt2 *m, sl_lora *l, const sl_dataset *ho, const sl_offsite_cfg *cfg,
                    sl_offsite_row *row, int i, sl_err *err)
{
    sl_gpt2_ctx *c = NULL;
    sl_eval_result r;
    int rc = sl_gpt2_ctx_create(&c, m, l, NULL, cfg->B, cfg->T, err);
    if (!rc)
        rc = sl_eval_split(c, cfg->B, cfg->T, ho, SL_DATASET_TRAIN, cfg->eval_tokens, &r, err);
    sl_gpt2_ctx_free(c);
    if (rc)
        return sl_err_prefix(err, "row %d (%s)", i + 1, ROW_NAMES[i]);
    row->name = ROW_NAMES[i];
    row->nll = r.nll;
    row->ppl = r.ppl;
    row->tokens = r.tokens;
    if (!cfg->quiet)
        fprintf(stderr, "offsite-eval: (%d) %-42s perplexity %.3f\n", i + 1, ROW_NAMES[i], r.ppl);
    return 0;
}

static int save_lora(const sl_lora *l, const sl_offsite_cfg *cfg, const char *name, sl_err *err)
{
    char dir[PATH_MAX];
    int rc = sl_fs_join(dir, sizeof dir, cfg->save_dir, name, err);
    if (!rc)
        rc = sl_adapter_save(l, dir, cfg->base_name ? cfg->base_name : "", cfg->base_digest, err);
    return rc;
}

int sl_offsite_run(sl_gpt2 *full, sl_gpt2 *emu, const sl_emumeta *meta, const sl_dataset *train,
                   const sl_dataset *heldout, const sl_offsite_cfg *cfg, sl_offsite_table *out,
                   sl_err *err)
{
    int rc = sl_emulator_check(meta, emu, full, err);
    if (rc)
        return rc;
    sl_offsite_table *t = calloc(1, sizeof *t);
    sl_lora *le = NULL, *lp = NULL, *lf = NULL;
    int emu_layers[SL_EMUMETA_MAX_LAYERS], n = 0;
    if (!t)
        return sl_err_set(err, SL_ENOMEM, "offsite: out of memory");
    sl_emulator_adapter_blocks(meta, emu_layers, &n);
    if (n == 0) {
        rc = sl_err_set(err, SL_EINVAL, "offsite: the emulator has no adapter blocks to tune");
        goto out;
    }
    for (int i = 0; i < n; i++)
        t->adapter_layers[i] = meta->layer_map[emu_layers[i]];
    t->nadapter = n;
    if ((rc = eval_row(full, NULL, heldout, cfg, &t->rows[0], 0, err)) ||
        (rc = eval_row(emu, NULL, heldout, cfg, &t->rows[1], 1, err)) ||
        (rc = train_lora(emu, emu_layers, n, cfg, train, "LoRA on the emulator", &le, &t->emu,
                         err)) ||
        (rc = eval_row(emu, le, heldout, cfg, &t->rows[2], 2, err)) ||
        (rc = sl_emulator_lora_remap(&lp, le, meta->layer_map, meta->nblocks, 1, full->L, err)) ||
        (rc = eval_row(full, lp, heldout, cfg, &t->rows[3], 3, err)) ||
        (rc = train_lora(full, t->adapter_layers, n, cfg, train, "LoRA on the full model", &lf,
                         &t->full, err)) ||
        (rc = eval_row(full, lf, heldout, cfg, &t->rows[4], 4, err)))
        goto out;
    t->lora_params = le->nparams;
    if (cfg->save_dir && ((rc = save_lora(lp, cfg, "lora-emulator", err)) ||
                          (rc = save_lora(lf, cfg, "lora-full", err))))
        goto out;
    *out = *t;
out:
    sl_lora_free(le);
    sl_lora_free(lp);
    sl_lora_free(lf);
    free(t);
    return rc;
}

/* ---- writers ---------------------------------------------------------------- */

static void blocks_text(char *buf, size_t cap, const sl_emumeta *m)
{
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < m->nblocks && o + 8 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%d%s", i ? " " : "", m->layer_map[i],
                              sl_emumeta_is_adapter(m, i) ? "a" : "");
}

static void mib(char *buf, size_t cap, size_t bytes)
{
    snprintf(buf, cap, "%.1f MiB", bytes / 1048576.0);
}

int sl_offsite_write_text(FILE *f, const sl_offsite_table *t, const sl_emumeta *meta,
                          const char *what)
{
    char blocks[1200], a[32], b[32];
    blocks_text(blocks, sizeof blocks, meta);
    fprintf(f, "offsite table: %s\n", what);
    fprintf(f, "emulator: %d of %d blocks (%s; a = adapter), drop %s %.3f, %s\n", meta->nblocks,
            meta->full_layers, blocks, meta->drop_mode, meta->drop_ratio,
            meta->distill.present ? "distilled" : "not distilled");
    if (meta->distill.present)
        fprintf(f, "distillation: %ld steps, hidden-state MSE %.4g -> %.4g\n", meta->distill.steps,
                meta->distill.mse_before, meta->distill.mse_after);
    fprintf(f, "LoRA: %zu parameters on blocks", t->lora_params);
    for (int i = 0; i < t->nadapter; i++)
        fprintf(f, " %d", t->adapter_layers[i]);
    fprintf(f, " of the full model\n\n");
    fprintf(f, "  #  %-42s %10s %8s %9s\n", "setting", "perplexity", "nll", "tokens");
    for (int i = 0; i < SL_OFFSITE_ROWS; i++)
        fprintf(f, "  %d  %-42s %10.3f %8.4f %9llu\n", i + 1, t->rows[i].name, t->rows[i].ppl,
                t->rows[i].nll, (unsigned long long)t->rows[i].tokens);
    fprintf(f, "\n     %-14s %12s %12s %12s %14s %11s\n", "", "parameters", "train tok/s",
            "tok/cpu-s", "train memory", "train loss");
    mib(a, sizeof a, t->emu.train_bytes);
    mib(b, sizeof b, t->full.train_bytes);
    double ce = t->emu.cpu_seconds > 0 ? t->emu.tok_per_s * t->emu.seconds / t->emu.cpu_seconds
                                       : 0,
           cf = t->full.cpu_seconds > 0
                    ? t->full.tok_per_s * t->full.seconds / t->full.cpu_seconds
                    : 0;
    fprintf(f, "     %-14s %12zu %12.0f %12.0f %14s %11.4f\n", "emulator", t->emu.params,
            t->emu.tok_per_s, ce, a, t->emu.final_loss);
    fprintf(f, "     %-14s %12zu %12.0f %12.0f %14s %11.4f\n", "full model", t->full.params,
            t->full.tok_per_s, cf, b, t->full.final_loss);
    fprintf(f, "     %-14s %11.1f%% %11.2fx %11.2fx %13.1f%%\n", "emulator/full",
            100.0 * t->emu.params / (double)t->full.params,
            t->full.tok_per_s > 0 ? t->emu.tok_per_s / t->full.tok_per_s : 0.0,
            cf > 0 ? ce / cf : 0.0, 100.0 * t->emu.train_bytes / (double)t->full.train_bytes);
    return ferror(f) ? -1 : 0;
}

static json_t *side_json(const sl_offsite_side *s)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:I, s:f}", "parameters", (json_int_t)s->params,
                     "tokens_per_second", s->tok_per_s, "seconds", s->seconds, "cpu_seconds",
                     s->cpu_seconds,
                     "train_memory_bytes", (json_int_t)s->train_bytes, "final_train_loss",
                     isfinite(s->final_loss) ? s->final_loss : 0.0);
}

int sl_offsite_write_json(FILE *f, const sl_offsite_table *t, const sl_emumeta *meta,
                          const sl_offsite_cfg *cfg, const char *what)
{
    json_t *rows = json_array(), *map = json_array(), *ad = json_array();
    for (int i = 0; i < SL_OFFSITE_ROWS; i++)
        json_array_append_new(rows, json_pack("{s:i, s:s, s:f, s:f, s:I}", "row", i + 1,
                                              "setting", t->rows[i].name, "perplexity",
                                              t->rows[i].ppl, "nll", t->rows[i].nll, "tokens",
                                              (json_int_t)t->rows[i].tokens));
    for (int i = 0; i < meta->nblocks; i++)
        json_array_append_new(map, json_integer(meta->layer_map[i]));
    for (int i = 0; i < t->nadapter; i++)
        json_array_append_new(ad, json_integer(t->adapter_layers[i]));
    json_t *em = json_pack("{s:i, s:i, s:o, s:i, s:i, s:s, s:f, s:b}", "blocks", meta->nblocks,
                           "full_blocks", meta->full_layers, "layer_map", map, "bottom",
                           meta->bottom, "top", meta->top, "drop_mode", meta->drop_mode,
                           "drop_ratio", meta->drop_ratio, "distilled", meta->distill.present);
    if (em && meta->distill.present)
        json_object_set_new(em, "distill",
                            json_pack("{s:I, s:f, s:f, s:f}", "steps",
                                      (json_int_t)meta->distill.steps, "kl_weight",
                                      meta->distill.kl_weight, "mse_before",
                                      meta->distill.mse_before, "mse_after",
                                      meta->distill.mse_after));
    json_t *o = json_pack(
        "{s:s, s:o, s:o, s:{s:I, s:o, s:i, s:f, s:I, s:i, s:i, s:f, s:I}, s:o, s:o}", "run", what,
        "emulator", em, "rows", rows, "lora", "parameters", (json_int_t)t->lora_params,
        "full_blocks", ad, "rank", cfg->lora_r, "alpha", (double)cfg->lora_alpha, "targets",
        (json_int_t)cfg->targets, "batch", cfg->B, "seq", cfg->T, "lr", (double)cfg->lr, "steps",
        (json_int_t)cfg->steps, "emulator_training", side_json(&t->emu), "full_training",
        side_json(&t->full));
    char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(8)) : NULL;
    json_decref(o);
    if (!s)
        return -1;
    fprintf(f, "%s\n", s);
    free(s);
    return ferror(f) ? -1 : 0;
}

int sl_offsite_write_svg(FILE *f, const sl_offsite_table *t, const char *what)
{
    static const char *const labels[SL_OFFSITE_ROWS] = {
        "(1) full\nzero-shot", "(2) emulator\nzero-shot", "(3) emulator\n+ its LoRA",
        "(4) full + LoRA\nfrom emulator", "(5) full\n+ its own LoRA"};
    static const char *const colours[SL_OFFSITE_ROWS] = {"#95a5a6", "#bdc3c7", "#e67e22",
                                                         "#1f5fa8", "#27ae60"};
    sl_svg_bar bars[SL_OFFSITE_ROWS];
    for (int i = 0; i < SL_OFFSITE_ROWS; i++)
        bars[i] = (sl_svg_bar){labels[i], t->rows[i].ppl, colours[i]};
    char title[300];
    snprintf(title, sizeof title, "held-out perplexity (lower is better): %s", what);
    return sl_svg_bars(f, bars, SL_OFFSITE_ROWS, title, "perplexity", "%.2f");
}
