/* The `train` model command (docs/cli.md): LoRA or full training of a model
 * directory on text, with progress, a JSON Lines log, atomic checkpoints and
 * resume. */
#include "shared/cmd_train.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/adapter.h"
#include "shared/cli.h"
#include "shared/dataset.h"
#include "shared/emulator.h"
#include "shared/fsutil.h"
#include "shared/modeldir.h"
#include "shared/progress.h"
#include "shared/svgchart.h"
#include "shared/tokenizer.h"
#include "shared/train.h"

#define CMD "train"
#define LOG_FILE "train_log.jsonl"
#define PROGRESS_FILE "progress.json"
#define SVG_FILE "loss.svg"

static const char *const g_tok_files[] = {"tokenizer.json", "vocab.json", "merges.txt"};

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { g_stop = sig; }

int sl_train_parse_targets(const char *s, unsigned *mask, sl_err *err)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"c_attn", SL_LORA_C_ATTN},       {"attn.c_attn", SL_LORA_C_ATTN},
                 {"attn.c_proj", SL_LORA_C_PROJ},  {"c_fc", SL_LORA_MLP_FC},
                 {"mlp.c_fc", SL_LORA_MLP_FC},     {"mlp.c_proj", SL_LORA_MLP_PROJ},
                 {"all", SL_LORA_C_ATTN | SL_LORA_C_PROJ | SL_LORA_MLP_FC | SL_LORA_MLP_PROJ}};
    unsigned m = 0;
    const char *p = s;
    while (*p) {
        size_t n = strcspn(p, ",");
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i].name) == n && strncmp(names[i].name, p, n) == 0)
                bit = names[i].bit;
        if (!bit)
            return sl_err_set(err, SL_EINVAL,
                              "unknown LoRA target '%.*s' (use c_attn, attn.c_proj, mlp.c_fc, "
                              "mlp.c_proj or all)",
                              (int)n, p);
        m |= bit;
        p += n;
        if (*p == ',')
            p++;
    }
    if (!m)
        return sl_err_set(err, SL_EINVAL, "no LoRA target given");
    *mask = m;
    return 0;
}

int sl_train_parse_layers(const char *s, int max_layer, int *layers, int *n, sl_err *err)
{
    int k = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long a = strtol(p, &end, 10), b = a;
        if (end == p || errno)
            return sl_err_set(err, SL_EINVAL, "layer list '%s': expected a number at '%s'", s, p);
        if (*end == '-') {
            const char *q = end + 1;
            b = strtol(q, &end, 10);
            if (end == q)
                return sl_err_set(err, SL_EINVAL, "layer list '%s': bad range at '%s'", s, p);
        }
        if (a < 0 || b < a || b >= max_layer)
            return sl_err_set(err, SL_EINVAL, "layer list '%s': %ld-%ld outside 0..%d", s, a, b,
                              max_layer - 1);
        for (long l = a; l <= b; l++) {
            for (int i = 0; i < k; i++)
                if (layers[i] == l)
                    return sl_err_set(err, SL_EINVAL, "layer list '%s': %ld twice", s, l);
            layers[k++] = (int)l;
        }
        if (*end == ',')
            end++;
        else if (*end)
            return sl_err_set(err, SL_EINVAL, "layer list '%s': unexpected '%c'", s, *end);
        p = end;
    }
    if (!k)
        return sl_err_set(err, SL_EINVAL, "layer list is empty");
    *n = k;
    return 0;
}

typedef struct run {
    const char *model_dir, *text, *out, *adapter_in, *cache, *text_field;
    const char *emulator; /* package folder (--emulator), or NULL */
    int full, resume, quiet, lora_r, eval_batches;
    float lora_alpha;
    unsigned targets;
    int layers[SL_HFCONFIG_MAX_LAYER], nlayers;
    long ckpt_every, eval_every, log_every;
    float val_fraction;
    sl_st_dtype dtype;
    sl_train_cfg cfg;
    /* state */
    sl_gpt2 *m;
    sl_lora *lora;
    sl_emumeta *meta;     /* the package's manifest with --emulator */
    sl_tokenizer *tok;
    sl_dataset *ds;
    sl_trainer *tr;
    char base_digest[65];
    double seconds_before; /* training time of earlier runs (resume) */
    FILE *log;
} run;

static int path_in(char *out, size_t cap, const char *dir, const char *name)
{
    sl_err err = {0};
    if (sl_fs_join(out, cap, dir, name, &err))
        return sl_cli_fail(NULL, CMD ": %s", err.msg);
    return 0;
}

/* Writes the trained weights (model directory or PEFT adapter) into dir. */
static int write_weights(run *r, const char *dir, sl_st_dtype dtype, sl_err *err)
{
    if (r->full) {
        int rc = sl_modeldir_save(r->m, dir, dtype, err);
        if (rc)
            return rc;
        char src[PATH_MAX], dst[PATH_MAX];
        for (size_t i = 0; i < sizeof g_tok_files / sizeof g_tok_files[0]; i++) {
            if (sl_fs_join(src, sizeof src, r->model_dir, g_tok_files[i], err) ||
                sl_fs_join(dst, sizeof dst, dir, g_tok_files[i], err))
                return err->code;
            if (sl_fs_exists(src) && (rc = sl_fs_copy(src, dst, err)))
                return rc;
        }
        return 0;
    }
    if (r->meta)
        return sl_emulator_adapter_save(r->lora, r->meta, dir, r->model_dir, err);
    return sl_adapter_save(r->lora, dir, r->model_dir, r->base_digest, err);
}

/* OUT/checkpoint.tmp -> OUT/checkpoint, the previous one kept as
 * checkpoint.old until the new one is in place. */
static int save_checkpoint(run *r, double seconds, sl_err *err)
{
    char tmp[PATH_MAX], cur[PATH_MAX], old[PATH_MAX], f[PATH_MAX];
    int rc;
    if ((rc = sl_fs_join(tmp, sizeof tmp, r->out, "checkpoint.tmp", err)) ||
        (rc = sl_fs_join(cur, sizeof cur, r->out, "checkpoint", err)) ||
        (rc = sl_fs_join(old, sizeof old, r->out, "checkpoint.old", err)) ||
        (rc = sl_fs_remove_flat_dir(tmp, err)) || (rc = sl_fs_mkdirs(tmp, 0755, err)) ||
        (rc = write_weights(r, tmp, SL_ST_F32, err)) ||
        (rc = sl_fs_join(f, sizeof f, tmp, SL_TRAIN_STATE_FILE, err)) ||
        (rc = sl_trainer_save_state(r->tr, f, err)) ||
        (rc = sl_fs_join(f, sizeof f, tmp, PROGRESS_FILE, err)))
        return rc;
    char js[128];
    int n = snprintf(js, sizeof js, "{\"step\": %ld, \"seconds\": %.3f}\n",
                     sl_trainer_steps_done(r->tr), seconds);
    if ((rc = sl_fs_write_atomic(f, js, (size_t)n, 0644, err)))
        return rc;
    if ((rc = sl_fs_remove_flat_dir(old, err)))
        return rc;
    if (sl_fs_exists(cur) && rename(cur, old))
        return sl_err_errno(err, "%s: rename", cur);
    if (rename(tmp, cur))
        return sl_err_errno(err, "%s: rename", tmp);
    if ((rc = sl_fs_sync_dir_of(cur, err)))
        return rc;
    return sl_fs_remove_flat_dir(old, err);
}

/* The checkpoint to resume from: checkpoint/, or checkpoint.old/ when a
 * crash hit between the two renames. Empty string when there is none. */
static int find_checkpoint(run *r, char *dir, size_t cap, sl_err *err)
{
    const char *names[] = {"checkpoint", "checkpoint.old"};
    for (int i = 0; i < 2; i++) {
        char f[PATH_MAX];
        if (sl_fs_join(dir, cap, r->out, names[i], err) ||
            sl_fs_join(f, sizeof f, dir, SL_TRAIN_STATE_FILE, err))
            return err->code;
        if (sl_fs_exists(f))
            return 0;
    }
    dir[0] = 0;
    return 0;
}

static int load_checkpoint(run *r, const char *dir, sl_err *err)
{
    char f[PATH_MAX];
    int rc;
    if (r->full) {
        sl_gpt2 *m = NULL;
        if ((rc = sl_modeldir_load(&m, dir, err)))
            return rc;
        if (m->nparams != r->m->nparams || m->L != r->m->L || m->C != r->m->C ||
            m->V != r->m->V) {
            sl_gpt2_free(m);
            return sl_err_set(err, SL_EINVAL, "%s: model shape differs from %s", dir,
                              r->model_dir);
        }
        memcpy(r->m->params, m->params, m->nparams * sizeof(float));
        sl_gpt2_free(m);
    } else {
        sl_lora *l = NULL;
        if ((rc = r->meta ? sl_emulator_adapter_load(&l, r->m, r->meta, dir, NULL, err)
                          : sl_adapter_load(&l, r->m, dir, NULL, err)))
            return rc;
        if (l->nparams != r->lora->nparams || l->r != r->lora->r ||
            l->targets != r->lora->targets) {
            sl_lora_free(l);
            return sl_err_set(err, SL_EINVAL,
                              "%s: adapter (rank %d, %zu parameters) differs from this run's "
                              "(rank %d, %zu)",
                              dir, l->r, l->nparams, r->lora->r, r->lora->nparams);
        }
        memcpy(r->lora->params, l->params, l->nparams * sizeof(float));
        sl_lora_free(l);
    }
    if ((rc = sl_fs_join(f, sizeof f, dir, SL_TRAIN_STATE_FILE, err)) ||
        (rc = sl_trainer_load_state(r->tr, f, err)) ||
        (rc = sl_fs_join(f, sizeof f, dir, PROGRESS_FILE, err)))
        return rc;
    json_error_t je;
    json_t *p = json_load_file(f, 0, &je);
    json_t *s = p ? json_object_get(p, "seconds") : NULL;
    r->seconds_before = json_is_number(s) ? json_number_value(s) : 0;
    json_decref(p);
    return 0;
}

/* Keeps the log lines of steps the checkpoint covers (a resumed run
 * repeats the rest). */
static int trim_log(const char *path, long upto, sl_err *err)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    if (!sl_fs_exists(path))
        return 0;
    int rc = sl_fs_read_all(path, 1u << 30, &buf, &n, err);
    if (rc)
        return rc;
    char *outb = malloc(n + 1);
    size_t o = 0;
    if (!outb) {
        free(buf);
        return sl_err_set(err, SL_ENOMEM, "%s: out of memory", path);
    }
    char *line = (char *)buf;
    while (line < (char *)buf + n) {
        char *nl = memchr(line, '\n', (size_t)((char *)buf + n - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)((char *)buf + n - line);
        json_error_t je;
        json_t *j = json_loadb(line, len, 0, &je);
        json_t *st = j ? json_object_get(j, "step") : NULL;
        if (json_is_integer(st) && json_integer_value(st) <= upto) {
            memcpy(outb + o, line, len);
            o += len;
            outb[o++] = '\n';
        }
        json_decref(j);
        line += len + 1;
    }
    rc = sl_fs_write_atomic(path, outb, o, 0644, err);
    free(outb);
    free(buf);
    return rc;
}

/* OUT/loss.svg: training and validation loss against tokens seen, from
 * the log. */
static int write_loss_svg(const char *logp, const char *svgp, double tok_per_step, sl_err *err)
{
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0, nt = 0, nv = 0;
    int rc = sl_fs_read_all(logp, 1u << 30, &buf, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        cap += buf[i] == '\n';
    double *tx = calloc(cap + 1, sizeof *tx), *ty = calloc(cap + 1, sizeof *ty);
    double *vx = calloc(cap + 1, sizeof *vx), *vy = calloc(cap + 1, sizeof *vy);
    char *mem = NULL;
    size_t memn = 0;
    FILE *f = NULL;
    if (!tx || !ty || !vx || !vy) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", svgp);
        goto out;
    }
    for (char *line = (char *)buf; line < (char *)buf + n;) {
        char *nl = memchr(line, '\n', (size_t)((char *)buf + n - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)((char *)buf + n - line);
        json_error_t je;
        json_t *j = json_loadb(line, len, 0, &je);
        json_t *st = json_object_get(j, "step"), *l = json_object_get(j, "loss"),
               *v = json_object_get(j, "val_loss");
        if (json_is_integer(st) && json_is_number(l) && nt < cap) {
            tx[nt] = (double)json_integer_value(st) * tok_per_step / 1e6;
            ty[nt++] = json_number_value(l);
        } else if (json_is_integer(st) && json_is_number(v) && nv < cap) {
            vx[nv] = (double)json_integer_value(st) * tok_per_step / 1e6;
            vy[nv++] = json_number_value(v);
        }
        json_decref(j);
        line += len + 1;
    }
    sl_svg_series ser[2] = {{"training loss", "#1f77b4", tx, ty, nt},
                            {"validation loss", "#d62728", vx, vy, nv}};
    f = open_memstream(&mem, &memn);
    if (!f || sl_svg_lines(f, ser, nv ? 2 : 1, "Loss while training", "tokens seen (millions)",
                           "mean NLL (nats/token)", 0)) {
        rc = sl_err_set(err, SL_EIO, "%s: cannot render", svgp);
        goto out;
    }
    fclose(f);
    f = NULL;
    rc = sl_fs_write_atomic(svgp, mem, memn, 0644, err);
out:
    if (f)
        fclose(f);
    free(mem);
    free(tx);
    free(ty);
    free(vx);
    free(vy);
    free(buf);
    return rc;
}

static void log_line(run *r, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (s && r->log) {
        fprintf(r->log, "%s\n", s);
        fflush(r->log);
    }
    free(s);
    json_decref(o);
}

static const char usage[] =
    "usage: %s train --model DIR --text PATH --out DIR [options]\n"
    "       %s train --emulator PKG --text PATH --out DIR [options]\n"
    "\n"
    "Trains a model directory on text: a LoRA adapter (default; written to OUT in\n"
    "Hugging Face PEFT's layout) or every weight (--full; OUT becomes a model\n"
    "directory). Text is a file, a folder of files or JSON Lines (shared/dataset),\n"
    "tokenised once into a cache beside it; 1%% of the documents (by content hash)\n"
    "are held out for validation. Progress on stderr; OUT/train_log.jsonl logs\n"
    "loss, learning rate and validation loss; OUT/checkpoint/ is replaced\n"
    "atomically every --checkpoint-every steps and on Ctrl-C. --resume continues\n"
    "from it bit for bit. OUT/loss.svg plots the loss curve at the end.\n"
    "\n"
    "What to train:\n"
    "  --full                 every weight of the model\n"
    "  --lora-r N             LoRA rank (8)\n"
    "  --lora-alpha A         LoRA alpha (16; the update is scaled by alpha/r)\n"
    "  --targets LIST         c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj or all (c_attn)\n"
    "  --layers LIST          blocks to adapt, e.g. 0,1,10-11 (all)\n"
    "  --adapter DIR          start from this PEFT adapter instead of a fresh one\n"
    "  --emulator PKG         train on an emulator package (instead of --model): LoRA\n"
    "                         on its adapter blocks only, the middle frozen; the adapter\n"
    "                         written names the full model's blocks and digest\n"
    "Schedule:\n"
    "  --steps N              optimiser steps (100)\n"
    "  --batch B              rows per step (8)\n"
    "  --context T            tokens per row (128, at most the model's context)\n"
    "  --lr X                 peak learning rate (LoRA 1e-3, full 3e-4)\n"
    "  --lr-min X             final learning rate of the cosine decay (lr/10)\n"
    "  --warmup N             linear warm-up steps (steps/20)\n"
    "  --weight-decay X       AdamW decoupled decay on matrices (LoRA 0, full 0.1)\n"
    "  --clip X               global gradient-norm bound, 0 for none (1)\n"
    "  --seed N               batch sampling seed (1)\n"
    "Data:\n"
    "  --text-field NAME      JSON Lines field holding the text (text)\n"
    "  --val-fraction F       share of documents held out for validation (0.01)\n"
    "  --cache PATH           token cache path (PATH.tokcache beside the text)\n"
    "Output:\n"
    "  --checkpoint-every N   steps between checkpoints (steps/10; 0 only at the end)\n"
    "  --eval-every N         steps between validation estimates (checkpoint interval)\n"
    "  --eval-batches N       batches per validation estimate (8)\n"
    "  --log-every N          steps between log lines (steps/200, at least 1)\n"
    "  --dtype F32|BF16|F16   weight dtype of a --full result (F32)\n"
    "  --resume               continue from OUT/checkpoint (same settings required)\n"
    "  --quiet                no progress output\n"
    "\n"
    "Exit status: 0 done, 1 failure, 2 usage error, 130 interrupted (checkpoint\n"
    "saved; rerun with --resume).\n";

enum {
    O_FULL = 256, O_R, O_ALPHA, O_TARGETS, O_LAYERS, O_ADAPTER, O_STEPS, O_BATCH, O_CTX, O_LR,
    O_LRMIN, O_WARMUP, O_WD, O_CLIP, O_SEED, O_FIELD, O_VAL, O_CACHE, O_CKPT, O_EVAL, O_EVALB,
    O_LOGEV, O_DTYPE, O_RESUME, O_QUIET, O_EMU
};

static int parse_args(run *r, int argc, char **argv, int *lr_set, int *wd_set, int *warm_set,
                      int *lrmin_set, int *ckpt_set, int *eval_set, int *log_set)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},  {"text", required_argument, NULL, 't'},
        {"out", required_argument, NULL, 'o'},    {"full", no_argument, NULL, O_FULL},
        {"lora-r", required_argument, NULL, O_R}, {"lora-alpha", required_argument, NULL, O_ALPHA},
        {"targets", required_argument, NULL, O_TARGETS},
        {"layers", required_argument, NULL, O_LAYERS},
        {"adapter", required_argument, NULL, O_ADAPTER},
        {"emulator", required_argument, NULL, O_EMU},
        {"steps", required_argument, NULL, O_STEPS}, {"batch", required_argument, NULL, O_BATCH},
        {"context", required_argument, NULL, O_CTX}, {"lr", required_argument, NULL, O_LR},
        {"lr-min", required_argument, NULL, O_LRMIN},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"weight-decay", required_argument, NULL, O_WD},
        {"clip", required_argument, NULL, O_CLIP}, {"seed", required_argument, NULL, O_SEED},
        {"text-field", required_argument, NULL, O_FIELD},
        {"val-fraction", required_argument, NULL, O_VAL},
        {"cache", required_argument, NULL, O_CACHE},
        {"checkpoint-every", required_argument, NULL, O_CKPT},
        {"eval-every", required_argument, NULL, O_EVAL},
        {"eval-batches", required_argument, NULL, O_EVALB},
        {"log-every", required_argument, NULL, O_LOGEV},
        {"dtype", required_argument, NULL, O_DTYPE}, {"resume", no_argument, NULL, O_RESUME},
        {"quiet", no_argument, NULL, O_QUIET},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *layers = NULL, *targets = NULL;
    long seed = 1;
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': r->model_dir = optarg; break;
        case 't': r->text = optarg; break;
        case 'o': r->out = optarg; break;
        case O_FULL: r->full = 1; break;
        case O_R: bad = sl_cli_int(CMD, "lora-r", optarg, 1, SL_LORA_MAX_RANK, &r->lora_r); break;
        case O_ALPHA: bad = sl_cli_float(CMD, "lora-alpha", optarg, 1e-6, 1e6, &r->lora_alpha); break;
        case O_TARGETS: targets = optarg; break;
        case O_LAYERS: layers = optarg; break;
        case O_ADAPTER: r->adapter_in = optarg; break;
        case O_EMU: r->emulator = optarg; break;
        case O_STEPS: bad = sl_cli_long(CMD, "steps", optarg, 1, 1000000000L, &r->cfg.steps); break;
        case O_BATCH: bad = sl_cli_int(CMD, "batch", optarg, 1, 4096, &r->cfg.B); break;
        case O_CTX: bad = sl_cli_int(CMD, "context", optarg, 1, SL_HFCONFIG_MAX_POSITIONS, &r->cfg.T); break;
        case O_LR: bad = sl_cli_float(CMD, "lr", optarg, 1e-12, 10, &r->cfg.lr); *lr_set = 1; break;
        case O_LRMIN: bad = sl_cli_float(CMD, "lr-min", optarg, 0, 10, &r->cfg.lr_min); *lrmin_set = 1; break;
        case O_WARMUP: bad = sl_cli_long(CMD, "warmup", optarg, 0, 1000000000L, &r->cfg.warmup); *warm_set = 1; break;
        case O_WD: bad = sl_cli_float(CMD, "weight-decay", optarg, 0, 0.999, &r->cfg.weight_decay); *wd_set = 1; break;
        case O_CLIP: bad = sl_cli_float(CMD, "clip", optarg, 0, 1e9, &r->cfg.clip); break;
        case O_SEED: bad = sl_cli_long(CMD, "seed", optarg, 0, LONG_MAX, &seed); break;
        case O_FIELD: r->text_field = optarg; break;
        case O_VAL: bad = sl_cli_float(CMD, "val-fraction", optarg, 0, 0.5, &r->val_fraction); break;
        case O_CACHE: r->cache = optarg; break;
        case O_CKPT: bad = sl_cli_long(CMD, "checkpoint-every", optarg, 0, 1000000000L, &r->ckpt_every); *ckpt_set = 1; break;
        case O_EVAL: bad = sl_cli_long(CMD, "eval-every", optarg, 0, 1000000000L, &r->eval_every); *eval_set = 1; break;
        case O_EVALB: bad = sl_cli_int(CMD, "eval-batches", optarg, 1, 100000, &r->eval_batches); break;
        case O_LOGEV: bad = sl_cli_long(CMD, "log-every", optarg, 1, 1000000000L, &r->log_every); *log_set = 1; break;
        case O_DTYPE:
            if (!strcmp(optarg, "F32")) r->dtype = SL_ST_F32;
            else if (!strcmp(optarg, "BF16")) r->dtype = SL_ST_BF16;
            else if (!strcmp(optarg, "F16")) r->dtype = SL_ST_F16;
            else bad = 2, sl_cli_fail(NULL, CMD ": --dtype '%s' must be F32, BF16 or F16", optarg);
            break;
        case O_RESUME: r->resume = 1; break;
        case O_QUIET: r->quiet = 1; break;
        case 'h': printf(usage, sl_cli_prog(), sl_cli_prog()); return -1;
        default: fprintf(stderr, usage, sl_cli_prog(), sl_cli_prog()); return 2;
        }
        if (bad)
            return 2;
    }
    if (r->emulator && r->model_dir) {
        sl_cli_fail(NULL, CMD ": --emulator PKG is the model; do not give --model too");
        return 2;
    }
    if (r->emulator)
        r->model_dir = r->emulator;
    if (r->emulator && (r->full || layers))
        return sl_cli_fail(NULL, CMD ": --emulator trains LoRA on the package's adapter "
                                 "blocks; --full and --layers do not apply"), 2;
    if (!r->model_dir || !r->text || !r->out || optind < argc) {
        fprintf(stderr, usage, sl_cli_prog(), sl_cli_prog());
        return 2;
    }
    r->cfg.seed = (uint64_t)seed;
    sl_err err = {0};
    if (targets && sl_train_parse_targets(targets, &r->targets, &err))
        return sl_cli_fail(NULL, CMD ": --targets: %s", err.msg), 2;
    if (r->full && (targets || layers || r->adapter_in))
        return sl_cli_fail(NULL, CMD ": --full trains every weight; --targets, --layers and "
                                 "--adapter are LoRA options"), 2;
    if (!r->full && r->dtype != SL_ST_F32)
        return sl_cli_fail(NULL, CMD ": --dtype applies to --full results only"), 2;
    r->nlayers = -1;
    if (layers) {
        /* Checked against the model once it is loaded. */
        if (sl_train_parse_layers(layers, SL_HFCONFIG_MAX_LAYER, r->layers, &r->nlayers, &err))
            return sl_cli_fail(NULL, CMD ": --layers: %s", err.msg), 2;
    }
    return 0;
}

static int setup(run *r, sl_err *err)
{
    int rc;
    if ((rc = sl_modeldir_load(&r->m, r->model_dir, err)))
        return rc;
    if ((rc = sl_tokenizer_load(r->model_dir, &r->tok, err)))
        return rc;
    if (sl_tokenizer_vocab_size(r->tok) > (uint32_t)r->m->V)
        return sl_err_set(err, SL_EINVAL,
                          "%s: the tokenizer has %u tokens, the model's vocabulary only %d",
                          r->model_dir, sl_tokenizer_vocab_size(r->tok), r->m->V);
    char w[PATH_MAX];
    if ((rc = sl_fs_join(w, sizeof w, r->model_dir, SL_MODELDIR_WEIGHTS, err)) ||
        (rc = sl_fs_sha256(w, (uint8_t[32]){0}, r->base_digest, err)))
        return rc;
    if (r->emulator) {
        /* The signature is the site agent's and verify-emulator's business;
         * here the manifest must describe this model. */
        if (!(r->meta = calloc(1, sizeof *r->meta)))
            return sl_err_set(err, SL_ENOMEM, "out of memory");
        if ((rc = sl_emumeta_read(r->emulator, r->meta, err)) ||
            (rc = sl_emulator_check(r->meta, r->m, NULL, err)))
            return sl_err_prefix(err, "%s", r->emulator);
        sl_emulator_adapter_blocks(r->meta, r->layers, &r->nlayers);
        if (r->nlayers == 0)
            return sl_err_set(err, SL_EINVAL, "%s: the package has no adapter blocks",
                              r->emulator);
        if (r->adapter_in && (rc = sl_emulator_adapter_load(&r->lora, r->m, r->meta,
                                                            r->adapter_in, NULL, err)))
            return rc;
    }
    if (!r->full && !r->lora) {
        if (r->adapter_in) {
            sl_peft_config pc;
            if ((rc = sl_adapter_load(&r->lora, r->m, r->adapter_in, &pc, err)))
                return rc;
            if (pc.base_digest[0] && strcmp(pc.base_digest, r->base_digest) != 0)
                return sl_err_set(err, SL_EINVAL,
                                  "%s: adapter was trained on a base with SHA-256 %.16s..., "
                                  "%s has %.16s...",
                                  r->adapter_in, pc.base_digest, w, r->base_digest);
        } else {
            for (int i = 0; i < r->nlayers; i++)
                if (r->layers[i] >= r->m->L)
                    return sl_err_set(err, SL_EINVAL, "--layers: block %d, the model has %d",
                                      r->layers[i], r->m->L);
            if ((rc = sl_lora_create(&r->lora, r->m, r->lora_r, r->lora_alpha, r->targets,
                                     r->nlayers > 0 ? r->layers : NULL,
                                     r->nlayers > 0 ? r->nlayers : 0, r->cfg.seed, err)))
                return rc;
        }
    }
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    o.cache = r->cache;
    o.text_field = r->text_field;
    o.val_per_million = (uint32_t)lround(r->val_fraction * 1e6);
    if (!r->quiet)
        fprintf(stderr, CMD ": reading %s\n", r->text);
    if ((rc = sl_dataset_open(r->text, r->tok, &o, &r->ds, err)))
        return rc;
    if (!r->quiet)
        fprintf(stderr, CMD ": %s %llu training and %llu validation tokens (%s)\n",
                sl_dataset_built(r->ds) ? "tokenised" : "cached",
                (unsigned long long)sl_dataset_tokens(r->ds, SL_DATASET_TRAIN),
                (unsigned long long)sl_dataset_tokens(r->ds, SL_DATASET_VAL),
                sl_dataset_cache_path(r->ds));
    if (sl_dataset_tokens(r->ds, SL_DATASET_TRAIN) < (uint64_t)r->cfg.T + 1)
        return sl_err_set(err, SL_EINVAL, "%s: %llu training tokens, fewer than a row of %d",
                          r->text,
                          (unsigned long long)sl_dataset_tokens(r->ds, SL_DATASET_TRAIN),
                          r->cfg.T + 1);
    return sl_trainer_create(&r->tr, r->m, r->lora, NULL, &r->cfg, err);
}

static void teardown(run *r)
{
    if (r->log)
        fclose(r->log);
    sl_trainer_free(r->tr);
    sl_dataset_close(r->ds);
    sl_tokenizer_free(r->tok);
    sl_lora_free(r->lora);
    free(r->meta);
    sl_gpt2_free(r->m);
}

/* Refuses to overwrite results in OUT unless resuming. */
static int check_out(run *r, sl_err *err)
{
    const char *mine[] = {SL_MODELDIR_WEIGHTS, SL_ADAPTER_WEIGHTS, "checkpoint", LOG_FILE};
    if (r->resume)
        return 0;
    for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++) {
        char p[PATH_MAX];
        if (sl_fs_join(p, sizeof p, r->out, mine[i], err))
            return err->code;
        if (sl_fs_exists(p))
            return sl_err_set(err, SL_EINVAL,
                              "%s already holds %s; pass --resume to continue that run or "
                              "choose another --out",
                              r->out, mine[i]);
    }
    return 0;
}

int sl_cmd_train(int argc, char **argv)
{
    run r = {0};
    sl_train_cfg_init(&r.cfg);
    r.lora_r = 8;
    r.lora_alpha = 16;
    r.targets = SL_LORA_C_ATTN;
    r.eval_batches = 8;
    r.val_fraction = 0.01f;
    r.dtype = SL_ST_F32;
    int lr_set = 0, wd_set = 0, warm_set = 0, lrmin_set = 0, ckpt_set = 0, eval_set = 0,
        log_set = 0;
    int prc = parse_args(&r, argc, argv, &lr_set, &wd_set, &warm_set, &lrmin_set, &ckpt_set,
                         &eval_set, &log_set);
    if (prc)
        return prc < 0 ? 0 : prc;
    if (!lr_set)
        r.cfg.lr = r.full ? 3e-4f : 1e-3f;
    if (!lrmin_set)
        r.cfg.lr_min = r.cfg.lr / 10;
    if (!wd_set)
        r.cfg.weight_decay = r.full ? 0.1f : 0.0f;
    if (!warm_set)
        r.cfg.warmup = r.cfg.steps / 20;
    if (!ckpt_set)
        r.ckpt_every = r.cfg.steps >= 10 ? r.cfg.steps / 10 : 0;
    if (!eval_set)
        r.eval_every = r.ckpt_every;
    if (!log_set)
        r.log_every = r.cfg.steps >= 200 ? r.cfg.steps / 200 : 1;
    sl_err err = {0};
    if (sl_train_cfg_validate(&r.cfg, SL_HFCONFIG_MAX_POSITIONS, &err))
        return sl_cli_fail(NULL, CMD ": %s", err.msg), 2;

    int rc = 1;
    char ck[PATH_MAX] = "", logp[PATH_MAX];
    if (check_out(&r, &err) || sl_fs_mkdirs(r.out, 0755, &err) || setup(&r, &err))
        goto fail;
    if (path_in(logp, sizeof logp, r.out, LOG_FILE))
        goto out;
    if (r.resume) {
        if (find_checkpoint(&r, ck, sizeof ck, &err))
            goto fail;
        if (ck[0]) {
            if (load_checkpoint(&r, ck, &err))
                goto fail;
            if (trim_log(logp, sl_trainer_steps_done(r.tr), &err))
                goto fail;
            if (!r.quiet)
                fprintf(stderr, CMD ": resuming from %s at step %ld\n", ck,
                        sl_trainer_steps_done(r.tr));
        } else if (!r.quiet) {
            fprintf(stderr, CMD ": no checkpoint in %s; starting from step 0\n", r.out);
        }
    }
    r.log = fopen(logp, ck[0] ? "a" : "w");
    if (!r.log) {
        sl_err_errno(&err, "%s", logp);
        goto fail;
    }
    if (!r.quiet)
        fprintf(stderr,
                CMD ": %s, %zu trained parameters; %ld steps of %d x %d tokens, lr %g\n",
                r.full ? "full training" : "LoRA",
                r.full ? r.m->nparams : r.lora->nparams, r.cfg.steps, r.cfg.B, r.cfg.T,
                r.cfg.lr);

    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g_stop = 0;

    sl_progress pr;
    long start = sl_trainer_steps_done(r.tr);
    sl_progress_init(&pr, CMD, "tok/s", (uint64_t)r.cfg.steps, (uint64_t)start, r.quiet);
    double t0 = sl_now(), loss_sum = 0, last_val = NAN;
    long loss_n = 0;
    const double tok_per_step = (double)r.cfg.B * r.cfg.T;
    int can_eval = sl_dataset_tokens(r.ds, SL_DATASET_VAL) >= (uint64_t)r.cfg.T + 1;
    if (!can_eval && r.eval_every && !r.quiet)
        fprintf(stderr, CMD ": the validation split has fewer than %d tokens; no validation "
                        "estimates (more documents or a larger --val-fraction give some)\n",
                r.cfg.T + 1);
    for (long s = start; s < r.cfg.steps && !g_stop; s++) {
        sl_train_stats st;
        if (sl_trainer_step(r.tr, r.ds, &st, &err))
            goto fail_sig;
        loss_sum += st.loss;
        loss_n++;
        double secs = r.seconds_before + (sl_now() - t0);
        if (st.step % r.log_every == 0 || st.step == r.cfg.steps) {
            log_line(&r, json_pack("{s:I, s:f, s:f, s:f, s:I, s:f}", "step", (json_int_t)st.step,
                                   "loss", loss_sum / loss_n, "lr", (double)st.lr, "grad_norm",
                                   st.grad_norm, "tokens",
                                   (json_int_t)(st.step * (long)tok_per_step), "seconds", secs));
            loss_sum = 0;
            loss_n = 0;
        }
        if (can_eval && r.eval_every && (st.step % r.eval_every == 0 || st.step == r.cfg.steps)) {
            double v;
            if (sl_trainer_estimate(r.tr, r.ds, SL_DATASET_VAL, r.eval_batches, 12345, &v, &err))
                goto fail_sig;
            last_val = v;
            log_line(&r, json_pack("{s:I, s:f, s:f}", "step", (json_int_t)st.step, "val_loss", v,
                                   "seconds", secs));
        }
        if (r.ckpt_every && st.step % r.ckpt_every == 0 && st.step < r.cfg.steps &&
            save_checkpoint(&r, secs, &err))
            goto fail_sig;
        char extra[96];
        if (isnan(last_val))
            snprintf(extra, sizeof extra, "loss %.3f", st.loss);
        else
            snprintf(extra, sizeof extra, "loss %.3f val %.3f", st.loss, last_val);
        sl_progress_update(&pr, (uint64_t)st.step, tok_per_step, extra, 0);
    }
    sl_progress_end(&pr);
    double secs = r.seconds_before + (sl_now() - t0);
    if (save_checkpoint(&r, secs, &err))
        goto fail_sig;
    if (g_stop) {
        fprintf(stderr, CMD ": interrupted at step %ld; checkpoint saved in %s/checkpoint; "
                        "rerun with --resume to continue\n",
                sl_trainer_steps_done(r.tr), r.out);
        rc = 130;
        goto out_sig;
    }
    if (write_weights(&r, r.out, r.full ? r.dtype : SL_ST_F32, &err))
        goto fail_sig;
    char svgp[PATH_MAX];
    fflush(r.log);
    if (path_in(svgp, sizeof svgp, r.out, SVG_FILE) ||
        write_loss_svg(logp, svgp, tok_per_step, &err))
        goto fail_sig;
    if (!r.quiet)
        fprintf(stderr, CMD ": done: %ld steps, %.0f tokens in %.0f s; wrote %s\n", r.cfg.steps,
                (double)r.cfg.steps * tok_per_step, secs, r.out);
    rc = 0;
    goto out_sig;
fail_sig:
    sl_progress_end(&pr);
    sl_cli_fail(NULL, CMD ": %s", err.msg);
    rc = 1;
out_sig:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    goto out;
fail:
    sl_cli_fail(NULL, CMD ": %s", err.msg);
    rc = 1;
out:
    teardown(&r);
    return rc;
}
