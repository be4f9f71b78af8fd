/* `emulate` and `verify-emulator` (docs/cli.md, docs/offsite.md). */
#include "server/cmd_emulate.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/emupkg.h"
#include "crypto/identity.h"
#include "server/distill.h"
#include "shared/cli.h"
#include "shared/cmd_train.h"
#include "shared/emulator.h"
#include "shared/fsutil.h"
#include "shared/modeldir.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { g_stop = sig; }

static const char *const g_tok_files[] = {"tokenizer.json", "vocab.json", "merges.txt",
                                          "tokenizer_config.json"};

static const char emulate_usage[] =
    "usage: %s emulate --model DIR --out PKG --key KEYFILE\n"
    "                  [--bottom N] [--top N] [--drop RATIO | --keep LIST]\n"
    "                  [--distill TEXT --steps N [--batch N] [--seq N] [--lr X]\n"
    "                   [--kl W] [--seed N] [--work DIR] [--resume]] [--quiet]\n\n"
    "Builds an emulator of the full model in DIR for offsite tuning: the first\n"
    "--bottom and last --top blocks (the adapter, default 2 and 2) are kept as they\n"
    "are, the middle is thinned by uniform layer drop (--drop, default 0.5: keep\n"
    "evenly spaced middle blocks, the first and last included) or to the middle\n"
    "blocks in --keep (full-model indices, e.g. 3,5). With --distill the kept middle\n"
    "blocks are trained on TEXT to reproduce the full middle's output hidden state\n"
    "(MSE, plus --kl W times the KL divergence of the logits), everything else\n"
    "frozen; checkpoints go to --work (default PKG.work); Ctrl-C saves one and\n"
    "--resume continues (exit status 130 when interrupted).\n"
    "PKG (new or empty) receives config.json, model.safetensors, the tokenizer\n"
    "files, manifest.json and manifest.sig, the manifest signed with the server's\n"
    "Ed25519 key KEYFILE (server/server.key from `provision`).\n";

static const char verify_usage[] =
    "usage: %s verify-emulator PKG (--cert CERT | --pubkey HEX)\n"
    "                          [--model FULL | --base-sha256 HEX] [--json]\n\n"
    "Checks an emulator package: manifest.sig is the Ed25519 signature of\n"
    "manifest.json by the key in CERT (the server certificate) or the 64-hex-digit\n"
    "public key HEX; the manifest is well formed; the folder holds exactly the\n"
    "listed files with the listed sizes and SHA-256 digests; and, with --model or\n"
    "--base-sha256, that it was built from that full model. Exit status 1 with the\n"
    "reason (file or field named) if any check fails.\n";

/* PKG must not exist or be an empty folder: a package holds only its own
 * files, and an old package is never half overwritten. */
static int check_out_empty(const char *dir, sl_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : sl_err_errno(err, "%s: open folder", dir);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            rc = sl_err_set(err, SL_EINVAL,
                            "%s is not empty (holds '%.80s'); choose a new --out folder", dir,
                            e->d_name);
            break;
        }
    closedir(d);
    return rc;
}

int sl_cmd_emulate(int argc, char **argv)
{
    enum { O_BOTTOM = 256, O_TOP, O_DROP, O_KEEP, O_DISTILL, O_STEPS, O_BATCH, O_SEQ, O_LR,
           O_KL, O_SEED, O_WORK, O_RESUME, O_QUIET };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"out", required_argument, NULL, 'o'},
        {"key", required_argument, NULL, 'k'},     {"bottom", required_argument, NULL, O_BOTTOM},
        {"top", required_argument, NULL, O_TOP},   {"drop", required_argument, NULL, O_DROP},
        {"keep", required_argument, NULL, O_KEEP}, {"distill", required_argument, NULL, O_DISTILL},
        {"steps", required_argument, NULL, O_STEPS}, {"batch", required_argument, NULL, O_BATCH},
        {"seq", required_argument, NULL, O_SEQ},   {"lr", required_argument, NULL, O_LR},
        {"kl", required_argument, NULL, O_KL},     {"seed", required_argument, NULL, O_SEED},
        {"work", required_argument, NULL, O_WORK}, {"resume", no_argument, NULL, O_RESUME},
        {"quiet", no_argument, NULL, O_QUIET},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *model = NULL, *out = NULL, *key = NULL, *keep_s = NULL, *work = NULL;
    int bottom = SL_EMULATOR_DEFAULT_ADAPTER, top = SL_EMULATOR_DEFAULT_ADAPTER, quiet = 0,
        drop_set = 0, c;
    float drop = (float)SL_EMULATOR_DEFAULT_DROP;
    sl_distill_cfg dc;
    sl_distill_cfg_init(&dc);
    int distill_opts = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:k:h", opts, NULL)) != -1) {
        int bad = 0;
        long v;
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case 'k': key = optarg; break;
        case O_BOTTOM: bad = sl_cli_int("emulate", "bottom", optarg, 0, 256, &bottom); break;
        case O_TOP: bad = sl_cli_int("emulate", "top", optarg, 0, 256, &top); break;
        case O_DROP: bad = sl_cli_float("emulate", "drop", optarg, 0, 0.99, &drop); drop_set = 1; break;
        case O_KEEP: keep_s = optarg; break;
        case O_DISTILL: dc.text = optarg; break;
        case O_STEPS: bad = sl_cli_long("emulate", "steps", optarg, 1, 100000000L, &dc.steps); distill_opts++; break;
        case O_BATCH: bad = sl_cli_int("emulate", "batch", optarg, 1, 4096, &dc.B); distill_opts++; break;
        case O_SEQ: bad = sl_cli_int("emulate", "seq", optarg, 1, 65536, &dc.T); distill_opts++; break;
        case O_LR: bad = sl_cli_float("emulate", "lr", optarg, 1e-8, 1, &dc.lr); distill_opts++; break;
        case O_KL: bad = sl_cli_float("emulate", "kl", optarg, 0, 1000, &dc.kl_weight); distill_opts++; break;
        case O_SEED:
            bad = sl_cli_long("emulate", "seed", optarg, 0, LONG_MAX, &v);
            dc.seed = (uint64_t)v;
            distill_opts++;
            break;
        case O_WORK: work = optarg; distill_opts++; break;
        case O_RESUME: dc.resume = 1; distill_opts++; break;
        case O_QUIET: quiet = 1; break;
        case 'h': printf(emulate_usage, sl_cli_prog()); return 0;
        default: fprintf(stderr, emulate_usage, sl_cli_prog()); return 2;
        }
        if (bad)
            return 2;
    }
    if (!model || !out || !key || optind < argc) {
        fprintf(stderr, emulate_usage, sl_cli_prog());
        return 2;
    }
    if (keep_s && drop_set)
        return sl_cli_fail(NULL, "emulate: --drop and --keep exclude each other"), 2;
    if (!dc.text && distill_opts)
        return sl_cli_fail(NULL, "emulate: --steps, --batch, --seq, --lr, --kl, --seed, --work "
                                 "and --resume need --distill TEXT"), 2;
    dc.quiet = quiet;

    sl_err err = {0};
    int keep[SL_EMUMETA_MAX_LAYERS], nkeep = 0;
    if (keep_s && sl_train_parse_layers(keep_s, SL_EMUMETA_MAX_LAYERS, keep, &nkeep, &err))
        return sl_cli_fail(NULL, "emulate: --keep: %s", err.msg), 2;
    if (sodium_init() < 0)
        return sl_cli_fail(NULL, "emulate: libsodium failed to initialise");

    int rc = 1;
    sl_gpt2 *full = NULL, *emu = NULL;
    sl_emumeta *meta = calloc(1, sizeof *meta);
    uint8_t *sk = sodium_malloc(SL_IDENTITY_SK_BYTES);
    char path[PATH_MAX], dst[PATH_MAX], workbuf[PATH_MAX];
    if (!meta || !sk) {
        sl_err_set(&err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    /* Refuse a bad key or a busy --out before any long work. */
    if (sl_identity_load_secret(key, sk, &err) || check_out_empty(out, &err) ||
        sl_modeldir_load(&full, model, &err) ||
        sl_fs_join(path, sizeof path, model, SL_MODELDIR_WEIGHTS, &err) ||
        sl_fs_sha256(path, (uint8_t[32]){0}, meta->base_sha256, &err))
        goto fail;
    sl_st_dtype dtype = SL_ST_F32;
    if (sl_modeldir_dtype(model, &dtype, &err))
        goto fail;
    double achieved = 0;
    if (sl_emulator_plan(full->L, bottom, top, drop, nkeep ? keep : NULL, nkeep,
                         meta->layer_map, &meta->nblocks, &achieved, &err) ||
        sl_emulator_build(&emu, full, meta->layer_map, meta->nblocks, &err))
        goto fail;
    meta->full_layers = full->L;
    meta->bottom = bottom;
    meta->top = top;
    snprintf(meta->drop_mode, sizeof meta->drop_mode, "%s", nkeep ? "list" : "uniform");
    meta->drop_ratio = nkeep ? achieved : drop;
    if (!quiet) {
        fprintf(stderr, "emulate: %d of %d blocks kept (", meta->nblocks, full->L);
        for (int i = 0; i < meta->nblocks; i++)
            fprintf(stderr, "%s%d%s", i ? "," : "", meta->layer_map[i],
                    sl_emumeta_is_adapter(meta, i) ? "a" : "");
        fprintf(stderr, "; a = adapter block), middle drop %.3f; %zu of %zu parameters\n",
                achieved, emu->nparams, full->nparams);
    }
    if (dc.text) {
        if (!work) {
            if (snprintf(workbuf, sizeof workbuf, "%s.work", out) >= (int)sizeof workbuf) {
                sl_err_set(&err, SL_ELIMIT, "--out path too long");
                goto fail;
            }
            work = workbuf;
        }
        dc.work = work;
        struct sigaction sa = {0}, old_int, old_term;
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
        g_stop = 0;
        dc.stop = &g_stop;
        int drc = sl_distill_run(full, emu, meta, model, &dc, &meta->distill, &err);
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        if (drc == SL_EABORT) {
            fprintf(stderr, "emulate: %s\n", err.msg);
            rc = 130;
            goto out;
        }
        if (drc)
            goto fail;
    }
    if (sl_modeldir_save(emu, out, dtype, &err))
        goto fail;
    for (size_t i = 0; i < sizeof g_tok_files / sizeof g_tok_files[0]; i++) {
        if (sl_fs_join(path, sizeof path, model, g_tok_files[i], &err) ||
            sl_fs_join(dst, sizeof dst, out, g_tok_files[i], &err))
            goto fail;
        if (sl_fs_exists(path) && sl_fs_copy(path, dst, &err))
            goto fail;
    }
    if (sl_emupkg_sign(out, meta, sk, meta, &err))
        goto fail;
    if (!quiet) {
        uint8_t pk[32];
        char fpr[SL_IDENTITY_FPR_CHARS + 1];
        crypto_sign_ed25519_sk_to_pk(pk, sk);
        sl_identity_fingerprint(pk, fpr);
        fprintf(stderr, "emulate: wrote %s (%d files, signed by key %s)\n", out, meta->nfiles,
                fpr);
    }
    rc = 0;
    goto out;
fail:
    sl_cli_fail(NULL, "emulate: %s", err.msg);
out:
    sodium_free(sk); /* zeroes the key */
    sl_gpt2_free(emu);
    sl_gpt2_free(full);
    free(meta);
    return rc;
}

static int parse_pubkey(const char *hex, uint8_t pk[32], sl_err *err)
{
    size_t n = 0;
    const char *end = NULL;
    if (strlen(hex) != 64 || sodium_hex2bin(pk, 32, hex, 64, NULL, &n, &end) != 0 || n != 32 ||
        *end)
        return sl_err_set(err, SL_EINVAL, "--pubkey '%.80s' is not 64 hex digits", hex);
    return 0;
}

int sl_cmd_verify_emulator(int argc, char **argv)
{
    enum { O_CERT = 256, O_PUBKEY, O_MODEL, O_BASE, O_JSON };
    static const struct option opts[] = {
        {"cert", required_argument, NULL, O_CERT},   {"pubkey", required_argument, NULL, O_PUBKEY},
        {"model", required_argument, NULL, O_MODEL}, {"base-sha256", required_argument, NULL, O_BASE},
        {"json", no_argument, NULL, O_JSON},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *cert = NULL, *pubkey = NULL, *model = NULL, *base = NULL;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_CERT: cert = optarg; break;
        case O_PUBKEY: pubkey = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_BASE: base = optarg; break;
        case O_JSON: json = 1; break;
        case 'h': printf(verify_usage, sl_cli_prog()); return 0;
        default: fprintf(stderr, verify_usage, sl_cli_prog()); return 2;
        }
    }
    if (optind != argc - 1 || !!cert == !!pubkey || (model && base)) {
        fprintf(stderr, verify_usage, sl_cli_prog());
        return 2;
    }
    const char *pkg = argv[optind];
    sl_err err = {0};
    uint8_t pk[32];
    char want[65] = "", path[PATH_MAX];
    if (pubkey && parse_pubkey(pubkey, pk, &err))
        return sl_cli_fail(NULL, "verify-emulator: %s", err.msg), 2;
    if (cert && sl_identity_cert_pubkey(cert, pk, &err))
        return sl_cli_fail(NULL, "verify-emulator: %s", err.msg);
    if (base) {
        if (strlen(base) != 64 || strspn(base, "0123456789abcdef") != 64)
            return sl_cli_fail(NULL, "verify-emulator: --base-sha256 '%.80s' is not 64 "
                                     "lowercase hex digits", base), 2;
        snprintf(want, sizeof want, "%s", base);
    }
    if (model && (sl_fs_join(path, sizeof path, model, SL_MODELDIR_WEIGHTS, &err) ||
                  sl_fs_sha256(path, (uint8_t[32]){0}, want, &err)))
        return sl_cli_fail(NULL, "verify-emulator: %s", err.msg);
    sl_emumeta *m = calloc(1, sizeof *m);
    if (!m)
        return sl_cli_fail(NULL, "verify-emulator: out of memory");
    if (sl_emupkg_verify(pkg, pk, want[0] ? want : NULL, m, &err)) {
        free(m);
        return sl_cli_fail(NULL, "verify-emulator: %s", err.msg);
    }
    char fpr[SL_IDENTITY_FPR_CHARS + 1];
    sl_identity_fingerprint(pk, fpr);
    if (json) {
        json_t *map = json_array(), *o;
        for (int i = 0; i < m->nblocks; i++)
            json_array_append_new(map, json_integer(m->layer_map[i]));
        o = json_pack("{s:s, s:b, s:s, s:s, s:b, s:i, s:o, s:i, s:i, s:s, s:f, s:b, s:i}",
                      "package", pkg, "ok", 1, "signer", fpr, "base_model_sha256",
                      m->base_sha256, "base_checked", want[0] != 0, "full_layers",
                      m->full_layers, "layer_map", map, "bottom", m->bottom, "top", m->top,
                      "drop_mode", m->drop_mode, "drop_ratio", m->drop_ratio, "distilled",
                      m->distill.present, "files", m->nfiles);
        char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        printf("package:   %s: signature, manifest and %d files OK (signer %s)\n", pkg,
               m->nfiles, fpr);
        printf("base:      %s%s\n", m->base_sha256,
               want[0] ? " (matches the given model)" : " (not checked: no --model)");
        printf("blocks:    %d of %d:", m->nblocks, m->full_layers);
        for (int i = 0; i < m->nblocks; i++)
            printf(" %d%s", m->layer_map[i], sl_emumeta_is_adapter(m, i) ? "a" : "");
        printf(" (a = adapter)\ndrop:      %s, ratio %.3f\n", m->drop_mode, m->drop_ratio);
        if (m->distill.present)
            printf("distilled: %ld steps on %s, hidden-state MSE %.6g -> %.6g\n",
                   m->distill.steps, m->distill.text, m->distill.mse_before,
                   m->distill.mse_after);
        else
            printf("distilled: no\n");
    }
    free(m);
    return 0;
}
