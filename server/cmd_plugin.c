/* `plugin` (docs/cli.md, docs/offsite.md). */
#include "server/cmd_plugin.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "shared/adapter.h"
#include "shared/cli.h"
#include "shared/emulator.h"
#include "shared/fsutil.h"
#include "shared/modeldir.h"

#define ADAPTER_SUBDIR "adapter"

static const char *const g_tok_files[] = {"tokenizer.json", "vocab.json", "merges.txt",
                                          "tokenizer_config.json"};

static const char usage[] =
    "usage: %s plugin --model FULL --adapter DIR --out OUT [--dtype F32|BF16|F16] [--quiet]\n\n"
    "Merges the LoRA adapter in DIR (Hugging Face PEFT layout, e.g. from `train\n"
    "--emulator` or a federated run) into the full model FULL and writes OUT as a\n"
    "Hugging Face model directory (config.json, model.safetensors with GPT-2 names,\n"
    "tokenizer files) plus OUT/" ADAPTER_SUBDIR "/, the unmerged adapter. Refuses an adapter\n"
    "recorded for another base model (SHA-256 of FULL/model.safetensors), whose\n"
    "blocks the model does not have, or whose factor shapes differ, naming it.\n"
    "--dtype: weights of the merged model (F32: a small update survives intact).\n";

int sl_cmd_plugin(int argc, char **argv)
{
    enum { O_DTYPE = 256, O_QUIET };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"adapter", required_argument, NULL, 'a'},
        {"out", required_argument, NULL, 'o'},   {"dtype", required_argument, NULL, O_DTYPE},
        {"quiet", no_argument, NULL, O_QUIET},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *model = NULL, *adapter = NULL, *out = NULL;
    sl_st_dtype dtype = SL_ST_F32;
    int quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:a:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'a': adapter = optarg; break;
        case 'o': out = optarg; break;
        case O_DTYPE:
            if (!strcmp(optarg, "F32"))
                dtype = SL_ST_F32;
            else if (!strcmp(optarg, "BF16"))
                dtype = SL_ST_BF16;
            else if (!strcmp(optarg, "F16"))
                dtype = SL_ST_F16;
            else
                return sl_cli_fail(NULL, "plugin: --dtype '%s' must be F32, BF16 or F16",
                                   optarg), 2;
            break;
        case O_QUIET: quiet = 1; break;
        case 'h': printf(usage, sl_cli_prog()); return 0;
        default: fprintf(stderr, usage, sl_cli_prog()); return 2;
        }
    }
    if (!model || !adapter || !out || optind < argc) {
        fprintf(stderr, usage, sl_cli_prog());
        return 2;
    }
    sl_err err = {0};
    sl_gpt2 *m = NULL;
    sl_lora *l = NULL;
    char path[PATH_MAX], dst[PATH_MAX], digest[65];
    int rc = 1, had_digest = 0;
    if (sl_fs_join(path, sizeof path, out, SL_MODELDIR_WEIGHTS, &err))
        goto fail;
    if (sl_fs_exists(path)) {
        sl_err_set(&err, SL_EINVAL, "%s already holds a model; choose another --out", out);
        goto fail;
    }
    if (sl_modeldir_load(&m, model, &err) ||
        sl_fs_join(path, sizeof path, model, SL_MODELDIR_WEIGHTS, &err) ||
        sl_fs_sha256(path, (uint8_t[32]){0}, digest, &err) ||
        sl_emulator_plugin(m, digest, adapter, &l, &had_digest, &err))
        goto fail;
    if (!had_digest && !quiet)
        fprintf(stderr, "plugin: warning: %s records no base model digest; the shapes fit "
                        "%s but nothing proves it was trained for it\n",
                adapter, model);
    if (sl_modeldir_save(m, out, dtype, &err))
        goto fail;
    for (size_t i = 0; i < sizeof g_tok_files / sizeof g_tok_files[0]; i++) {
        if (sl_fs_join(path, sizeof path, model, g_tok_files[i], &err) ||
            sl_fs_join(dst, sizeof dst, out, g_tok_files[i], &err))
            goto fail;
        if (sl_fs_exists(path) && sl_fs_copy(path, dst, &err))
            goto fail;
    }
    if (sl_fs_join(dst, sizeof dst, out, ADAPTER_SUBDIR, &err) ||
        sl_adapter_save(l, dst, model, digest, &err))
        goto fail;
    if (!quiet) {
        fprintf(stderr, "plugin: merged %d LoRA modules (rank %d) into blocks", l->nslots, l->r);
        int last = -1;
        for (int s = 0; s < l->nslots; s++)
            if (l->slots[s].layer != last)
                fprintf(stderr, " %d", last = l->slots[s].layer);
        fprintf(stderr, " of %s; wrote %s and %s\n", model, out, dst);
    }
    rc = 0;
    goto done;
fail:
    sl_cli_fail(NULL, "plugin: %s", err.msg);
done:
    sl_lora_free(l);
    sl_gpt2_free(m);
    return rc;
}
