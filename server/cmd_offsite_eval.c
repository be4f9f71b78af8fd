/* `offsite-eval` (docs/cli.md, docs/offsite.md). */
#include "server/cmd_offsite_eval.h"

#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/emupkg.h"
#include "crypto/identity.h"
#include "server/distill.h"
#include "server/offsite.h"
#include "shared/cli.h"
#include "shared/cmd_train.h"
#include "shared/emulator.h"
#include "shared/fsutil.h"
#include "shared/modeldir.h"
#include "shared/tokenizer.h"

#define CMD "offsite-eval"

static const char usage[] =
    "usage: %s offsite-eval --model FULL --train TEXT --heldout TEXT --out DIR\n"
    "         [--emulator PKG [--cert CERT | --pubkey HEX]]\n"
    "         [--bottom N] [--top N] [--drop RATIO | --keep LIST]\n"
    "         [--distill TEXT [--distill-steps N] [--distill-lr X] [--distill-kl W]]\n"
    "         [--steps N] [--batch B] [--seq T] [--lora-r R] [--lora-alpha A]\n"
    "         [--targets LIST] [--lr X] [--seed N] [--eval-tokens N] [--json] [--quiet]\n\n"
    "The offsite table: held-out perplexity of (1) the full model FULL zero-shot,\n"
    "(2) the emulator zero-shot, (3) the emulator with a LoRA tuned on TEXT (its\n"
    "adapter blocks only), (4) that LoRA plugged into the full model, (5) a LoRA\n"
    "of the same size tuned on TEXT directly on the full model; and the parameter\n"
    "count, LoRA training tokens/s and training memory of emulator and full model.\n"
    "The emulator is PKG (its manifest must name FULL's digest; with --cert or\n"
    "--pubkey its signature and files are checked too), or built here as `emulate`\n"
    "builds it (--bottom/--top 2, --drop 0.5 or --keep, optional distillation on\n"
    "public text). TEXT and the held-out text are files, folders or JSON Lines.\n"
    "Prints the table (or JSON with --json) and writes DIR/offsite.txt,\n"
    "DIR/offsite.json, DIR/offsite.svg (bar chart), the two LoRAs as PEFT adapters\n"
    "(DIR/lora-emulator, DIR/lora-full) and token caches.\n\n"
    "  --steps N        LoRA steps for rows 3 and 5 each (200)\n"
    "  --batch B        rows per step and per evaluation forward (8)\n"
    "  --seq T          tokens per row (128)\n"
    "  --lora-r R       rank (8); --lora-alpha A (16); --targets LIST (all)\n"
    "  --lr X           peak learning rate (1e-3, cosine to a tenth); --seed N (1)\n"
    "  --eval-tokens N  held-out tokens evaluated, from the start (65536; 0 = all)\n"
    "  --distill-steps N, --distill-lr X, --distill-kl W: as emulate's --steps, --lr, --kl\n";

static int parse_pubkey(const char *hex, uint8_t pk[32])
{
    size_t n = 0;
    const char *end = NULL;
    return strlen(hex) != 64 || sodium_hex2bin(pk, 32, hex, 64, NULL, &n, &end) != 0 ||
           n != 32 || *end;
}

static int write_file(const char *dir, const char *name, int kind, const sl_offsite_table *t,
                      const sl_emumeta *meta, const sl_offsite_cfg *cfg, const char *what,
                      sl_err *err)
{
    char p[PATH_MAX], tmp[PATH_MAX + 8];
    int rc = sl_fs_join(p, sizeof p, dir, name, err);
    if (rc)
        return rc;
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return sl_err_errno(err, "%s", tmp);
    int bad = kind == 0   ? sl_offsite_write_text(f, t, meta, what)
              : kind == 1 ? sl_offsite_write_json(f, t, meta, cfg, what)
                          : sl_offsite_write_svg(f, t, what);
    if (fclose(f) || bad) {
        remove(tmp);
        return sl_err_set(err, SL_EIO, "%s: write failed", p);
    }
    if (rename(tmp, p))
        return sl_err_errno(err, "%s: rename", p);
    return 0;
}

static sl_dataset *open_text(const char *path, const sl_tokenizer *tok, const char *out,
                             const char *cache_name, sl_err *err)
{
    char cache[PATH_MAX];
    sl_dataset_opts o;
    sl_dataset_opts_init(&o);
    o.val_per_million = 0; /* the whole text is one split */
    o.cache = cache;
    sl_dataset *ds = NULL;
    if (sl_fs_join(cache, sizeof cache, out, cache_name, err) ||
        sl_dataset_open(path, tok, &o, &ds, err))
        return NULL;
    return ds;
}

int sl_cmd_offsite_eval(int argc, char **argv)
{
    enum { O_TRAIN = 256, O_HELD, O_EMU, O_CERT, O_PUBKEY, O_BOTTOM, O_TOP, O_DROP, O_KEEP,
           O_DISTILL, O_DSTEPS, O_DLR, O_DKL, O_STEPS, O_BATCH, O_SEQ, O_R, O_ALPHA, O_TARGETS,
           O_LR, O_SEED, O_EVALTOK, O_JSON, O_QUIET };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},       {"out", required_argument, NULL, 'o'},
        {"train", required_argument, NULL, O_TRAIN},   {"heldout", required_argument, NULL, O_HELD},
        {"emulator", required_argument, NULL, O_EMU},  {"cert", required_argument, NULL, O_CERT},
        {"pubkey", required_argument, NULL, O_PUBKEY}, {"bottom", required_argument, NULL, O_BOTTOM},
        {"top", required_argument, NULL, O_TOP},       {"drop", required_argument, NULL, O_DROP},
        {"keep", required_argument, NULL, O_KEEP},     {"distill", required_argument, NULL, O_DISTILL},
        {"distill-steps", required_argument, NULL, O_DSTEPS},
        {"distill-lr", required_argument, NULL, O_DLR}, {"distill-kl", required_argument, NULL, O_DKL},
        {"steps", required_argument, NULL, O_STEPS},   {"batch", required_argument, NULL, O_BATCH},
        {"seq", required_argument, NULL, O_SEQ},       {"lora-r", required_argument, NULL, O_R},
        {"lora-alpha", required_argument, NULL, O_ALPHA},
        {"targets", required_argument, NULL, O_TARGETS}, {"lr", required_argument, NULL, O_LR},
        {"seed", required_argument, NULL, O_SEED},     {"eval-tokens", required_argument, NULL, O_EVALTOK},
        {"json", no_argument, NULL, O_JSON},           {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0}};
    const char *model = NULL, *out = NULL, *train = NULL, *held = NULL, *pkg = NULL,
               *cert = NULL, *pubkey = NULL, *keep_s = NULL, *targets = NULL;
    int bottom = SL_EMULATOR_DEFAULT_ADAPTER, top = SL_EMULATOR_DEFAULT_ADAPTER, json = 0,
        build_opts = 0, drop_set = 0, c;
    float drop = (float)SL_EMULATOR_DEFAULT_DROP;
    sl_offsite_cfg cfg;
    sl_offsite_cfg_init(&cfg);
    sl_distill_cfg dc;
    sl_distill_cfg_init(&dc);
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:h", opts, NULL)) != -1) {
        int bad = 0;
        long v = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case O_TRAIN: train = optarg; break;
        case O_HELD: held = optarg; break;
        case O_EMU: pkg = optarg; break;
        case O_CERT: cert = optarg; break;
        case O_PUBKEY: pubkey = optarg; break;
        case O_BOTTOM: bad = sl_cli_int(CMD, "bottom", optarg, 0, 256, &bottom); build_opts++; break;
        case O_TOP: bad = sl_cli_int(CMD, "top", optarg, 0, 256, &top); build_opts++; break;
        case O_DROP: bad = sl_cli_float(CMD, "drop", optarg, 0, 0.99, &drop); build_opts++; drop_set = 1; break;
        case O_KEEP: keep_s = optarg; build_opts++; break;
        case O_DISTILL: dc.text = optarg; build_opts++; break;
        case O_DSTEPS: bad = sl_cli_long(CMD, "distill-steps", optarg, 1, 100000000L, &dc.steps); break;
        case O_DLR: bad = sl_cli_float(CMD, "distill-lr", optarg, 1e-8, 1, &dc.lr); break;
        case O_DKL: bad = sl_cli_float(CMD, "distill-kl", optarg, 0, 1000, &dc.kl_weight); break;
        case O_STEPS: bad = sl_cli_long(CMD, "steps", optarg, 1, 100000000L, &cfg.steps); break;
        case O_BATCH: bad = sl_cli_int(CMD, "batch", optarg, 1, 4096, &cfg.B); break;
        case O_SEQ: bad = sl_cli_int(CMD, "seq", optarg, 1, 65536, &cfg.T); break;
        case O_R: bad = sl_cli_int(CMD, "lora-r", optarg, 1, 1024, &cfg.lora_r); break;
        case O_ALPHA: bad = sl_cli_float(CMD, "lora-alpha", optarg, 1e-6, 1e6, &cfg.lora_alpha); break;
        case O_TARGETS: targets = optarg; break;
        case O_LR: bad = sl_cli_float(CMD, "lr", optarg, 1e-8, 1, &cfg.lr); break;
        case O_SEED:
            bad = sl_cli_long(CMD, "seed", optarg, 0, LONG_MAX, &v);
            cfg.seed = (uint64_t)v;
            break;
        case O_EVALTOK:
            bad = sl_cli_long(CMD, "eval-tokens", optarg, 0, LONG_MAX, &v);
            cfg.eval_tokens = (uint64_t)v;
            break;
        case O_JSON: json = 1; break;
        case O_QUIET: cfg.quiet = dc.quiet = 1; break;
        case 'h': printf(usage, sl_cli_prog()); return 0;
        default: fprintf(stderr, usage, sl_cli_prog()); return 2;
        }
        if (bad)
            return 2;
    }
    if (!model || !out || !train || !held || optind < argc) {
        fprintf(stderr, usage, sl_cli_prog());
        return 2;
    }
    if (pkg && build_opts)
        return sl_cli_fail(NULL, CMD ": --emulator uses a built package; --bottom, --top, "
                                 "--drop, --keep and --distill build one"), 2;
    if (!pkg && (cert || pubkey))
        return sl_cli_fail(NULL, CMD ": --cert and --pubkey check an --emulator package"), 2;
    if (cert && pubkey)
        return sl_cli_fail(NULL, CMD ": give --cert or --pubkey, not both"), 2;
    if (keep_s && drop_set)
        return sl_cli_fail(NULL, CMD ": --drop and --keep exclude each other"), 2;
    sl_err err = {0};
    if (targets && sl_train_parse_targets(targets, &cfg.targets, &err))
        return sl_cli_fail(NULL, CMD ": --targets: %s", err.msg), 2;
    int keep[SL_EMUMETA_MAX_LAYERS], nkeep = 0;
    if (keep_s && sl_train_parse_layers(keep_s, SL_EMUMETA_MAX_LAYERS, keep, &nkeep, &err))
        return sl_cli_fail(NULL, CMD ": --keep: %s", err.msg), 2;
    uint8_t pk[32];
    if (pubkey && parse_pubkey(pubkey, pk))
        return sl_cli_fail(NULL, CMD ": --pubkey '%.80s' is not 64 hex digits", pubkey), 2;

    int rc = 1;
    sl_gpt2 *full = NULL, *emu = NULL;
    sl_tokenizer *tok = NULL;
    sl_dataset *dtrain = NULL, *dheld = NULL;
    sl_emumeta *meta = calloc(1, sizeof *meta);
    sl_offsite_table *t = calloc(1, sizeof *t);
    char path[PATH_MAX], digest[65], what[PATH_MAX + 64];
    if (!meta || !t) {
        sl_err_set(&err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    if (sl_fs_mkdirs(out, 0755, &err) || sl_modeldir_load(&full, model, &err) ||
        sl_fs_join(path, sizeof path, model, SL_MODELDIR_WEIGHTS, &err) ||
        sl_fs_sha256(path, (uint8_t[32]){0}, digest, &err) ||
        sl_tokenizer_load(model, &tok, &err))
        goto fail;
    if (pkg) {
        if (cert && sl_identity_cert_pubkey(cert, pk, &err))
            goto fail;
        if ((cert || pubkey) ? sl_emupkg_verify(pkg, pk, digest, meta, &err)
                             : sl_emumeta_read(pkg, meta, &err))
            goto fail;
        if (strcmp(meta->base_sha256, digest)) {
            sl_err_set(&err, SL_EINVAL,
                       "%s was built from a model with SHA-256 %.16s..., %s has %.16s...", pkg,
                       meta->base_sha256, model, digest);
            goto fail;
        }
        if (sl_modeldir_load(&emu, pkg, &err) || sl_emulator_check(meta, emu, full, &err))
            goto fail;
    } else {
        double achieved = 0;
        snprintf(meta->base_sha256, sizeof meta->base_sha256, "%s", digest);
        if (sl_emulator_plan(full->L, bottom, top, drop, nkeep ? keep : NULL, nkeep,
                             meta->layer_map, &meta->nblocks, &achieved, &err) ||
            sl_emulator_build(&emu, full, meta->layer_map, meta->nblocks, &err))
            goto fail;
        meta->full_layers = full->L;
        meta->bottom = bottom;
        meta->top = top;
        snprintf(meta->drop_mode, sizeof meta->drop_mode, "%s", nkeep ? "list" : "uniform");
        meta->drop_ratio = nkeep ? achieved : drop;
        if (dc.text) {
            char work[PATH_MAX];
            if (sl_fs_join(work, sizeof work, out, "distill.work", &err))
                goto fail;
            dc.work = work;
            dc.T = dc.T < cfg.T ? dc.T : cfg.T;
            if (sl_distill_run(full, emu, meta, model, &dc, &meta->distill, &err))
                goto fail;
        }
    }
    if (cfg.T > full->maxT) {
        sl_err_set(&err, SL_EINVAL, "--seq %d exceeds the model's context of %d", cfg.T,
                   full->maxT);
        goto fail;
    }
    if (!(dtrain = open_text(train, tok, out, "train.tokcache", &err)) ||
        !(dheld = open_text(held, tok, out, "heldout.tokcache", &err)))
        goto fail;
    snprintf(what, sizeof what, "%s, drop %s %.2f%s", model, meta->drop_mode, meta->drop_ratio,
             meta->distill.present ? ", distilled" : "");
    cfg.save_dir = out;
    cfg.base_name = model;
    cfg.base_digest = digest;
    if (!cfg.quiet)
        fprintf(stderr, CMD ": %s; training text %llu tokens, held-out %llu tokens\n", what,
                (unsigned long long)sl_dataset_tokens(dtrain, SL_DATASET_TRAIN),
                (unsigned long long)sl_dataset_tokens(dheld, SL_DATASET_TRAIN));
    if (sl_offsite_run(full, emu, meta, dtrain, dheld, &cfg, t, &err) ||
        write_file(out, "offsite.txt", 0, t, meta, &cfg, what, &err) ||
        write_file(out, "offsite.json", 1, t, meta, &cfg, what, &err) ||
        write_file(out, "offsite.svg", 2, t, meta, &cfg, what, &err))
        goto fail;
    if (json ? sl_offsite_write_json(stdout, t, meta, &cfg, what)
             : sl_offsite_write_text(stdout, t, meta, what)) {
        sl_err_set(&err, SL_EIO, "writing to standard output failed");
        goto fail;
    }
    rc = 0;
    goto done;
fail:
    sl_cli_fail(NULL, CMD ": %s", err.msg);
done:
    sl_dataset_close(dheld);
    sl_dataset_close(dtrain);
    sl_tokenizer_free(tok);
    sl_gpt2_free(emu);
    sl_gpt2_free(full);
    free(t);
    free(meta);
    return rc;
}
