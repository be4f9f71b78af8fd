#include "shared/modelcmd.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/blas.h"
#include "shared/cli.h"
#include "shared/gpt2.h"
#include "shared/hfconfig.h"
#include "shared/modeldir.h"

int sl_modelcmd_blas(int argc, char **argv)
{
    if (sl_cli_wants_help(argc, argv)) {
        printf("usage: %s blas\n\nPrints the OpenBLAS kernel set (core type) and the number of "
               "threads this binary uses.\nSEALORA_BLAS_CORETYPE=keep keeps OPENBLAS_CORETYPE "
               "as set; =NAME forces NAME.\n", sl_cli_prog());
        return 0;
    }
    if (argc > 1)
        return sl_cli_fail(NULL, "blas: unexpected argument '%s'", argv[1]), 2;
    char d[256];
    sl_blas_describe(d, sizeof d);
    printf("%s\n", d);
    return 0;
}

int sl_modelcmd_inspect(int argc, char **argv)
{
    static const char usage[] =
        "usage: %s inspect --model DIR [--json]\n\n"
        "Loads a Hugging Face GPT-2 model directory (config.json + model.safetensors)\n"
        "and prints its shape, parameter count, weight dtype, and the BLAS kernel set\n"
        "and thread count this binary uses. Exit status 1 if the model does not load.\n";
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *dir = NULL;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': dir = optarg; break;
        case 'j': json = 1; break;
        case 'h': printf(usage, sl_cli_prog()); return 0;
        default: fprintf(stderr, usage, sl_cli_prog()); return 2;
        }
    }
    if (!dir || optind < argc) {
        fprintf(stderr, usage, sl_cli_prog());
        return 2;
    }
    sl_err err = {0};
    sl_gpt2 *m = NULL;
    sl_st_dtype dt = SL_ST_F32;
    if (sl_modeldir_load(&m, dir, &err) || sl_modeldir_dtype(dir, &dt, &err))
        return sl_cli_fail(NULL, "inspect: %s", err.msg);
    const sl_gpt2_config *k = &m->cfg;
    if (json) {
        json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:s, s:{s:s, s:i}}",
                              "model", dir, "n_layer", k->n_layer, "n_head", k->n_head,
                              "n_embd", k->n_embd, "n_inner", m->F, "n_positions", k->n_positions,
                              "vocab_size", k->vocab_size, "parameters", (json_int_t)m->nparams,
                              "dtype", sl_st_dtype_name(dt), "blas", "core", sl_blas_corename(),
                              "threads", sl_blas_threads());
        char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        char blas[256];
        sl_blas_describe(blas, sizeof blas);
        printf("model:      %s\n"
               "shape:      %d layers, %d heads, width %d, MLP %d, context %d, vocabulary %d\n"
               "parameters: %zu (%.1f M; lm_head tied to the token embedding)\n"
               "dtype:      %s\n"
               "BLAS:       %s\n",
               dir, k->n_layer, k->n_head, k->n_embd, m->F, k->n_positions, k->vocab_size,
               m->nparams, m->nparams / 1e6, sl_st_dtype_name(dt), blas);
    }
    sl_gpt2_free(m);
    return 0;
}

/* Parses a positive int option value; 0 on success. */
static int opt_int(const char *name, const char *v, long lo, long hi, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return sl_cli_fail(NULL, "init-model: --%s '%s' must be an integer in %ld..%ld", name, v,
                           lo, hi);
    *out = (int)x;
    return 0;
}

int sl_modelcmd_init_model(int argc, char **argv)
{
    static const char usage[] =
        "usage: %s init-model --out DIR [--layers N] [--heads N] [--embd N]\n"
        "                     [--context N] [--vocab N] [--seed N] [--dtype F32|BF16|F16]\n\n"
        "Writes DIR/config.json and DIR/model.safetensors for a GPT-2 model with\n"
        "Hugging Face's initialisation (N(0, 0.02), residual projections scaled by\n"
        "1/sqrt(2 layers)). Defaults: the GPT-2 small shape (12, 12, 768, 1024, 50257),\n"
        "seed 1, F32. Add tokenizer files to DIR before training on text.\n";
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},    {"layers", required_argument, NULL, 'l'},
        {"heads", required_argument, NULL, 'H'},  {"embd", required_argument, NULL, 'e'},
        {"context", required_argument, NULL, 'c'}, {"vocab", required_argument, NULL, 'v'},
        {"seed", required_argument, NULL, 's'},   {"dtype", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    sl_gpt2_config cfg;
    sl_hfconfig_default(&cfg);
    const char *out = NULL;
    int seed = 1, c;
    sl_st_dtype dt = SL_ST_F32;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:l:H:e:c:v:s:d:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'o': out = optarg; break;
        case 'l': bad = opt_int("layers", optarg, 1, SL_HFCONFIG_MAX_LAYER, &cfg.n_layer); break;
        case 'H': bad = opt_int("heads", optarg, 1, SL_HFCONFIG_MAX_HEAD, &cfg.n_head); break;
        case 'e': bad = opt_int("embd", optarg, 1, SL_HFCONFIG_MAX_EMBD, &cfg.n_embd); break;
        case 'c':
            bad = opt_int("context", optarg, 1, SL_HFCONFIG_MAX_POSITIONS, &cfg.n_positions);
            break;
        case 'v': bad = opt_int("vocab", optarg, 2, SL_HFCONFIG_MAX_VOCAB, &cfg.vocab_size); break;
        case 's': bad = opt_int("seed", optarg, 0, 2147483647, &seed); break;
        case 'd':
            if (strcmp(optarg, "F32") == 0)
                dt = SL_ST_F32;
            else if (strcmp(optarg, "BF16") == 0)
                dt = SL_ST_BF16;
            else if (strcmp(optarg, "F16") == 0)
                dt = SL_ST_F16;
            else
                bad = sl_cli_fail(NULL, "init-model: --dtype '%s' must be F32, BF16 or F16",
                                  optarg);
            break;
        case 'h': printf(usage, sl_cli_prog()); return 0;
        default: fprintf(stderr, usage, sl_cli_prog()); return 2;
        }
        if (bad)
            return 2;
    }
    if (!out || optind < argc) {
        fprintf(stderr, usage, sl_cli_prog());
        return 2;
    }
    /* Special tokens sit at the end of the vocabulary, as in GPT-2. */
    cfg.bos_token_id = cfg.eos_token_id = cfg.vocab_size - 1;
    sl_err err = {0};
    sl_gpt2 *m = NULL;
    if (sl_gpt2_create(&m, &cfg, &err))
        return sl_cli_fail(NULL, "init-model: %s", err.msg);
    sl_gpt2_init_random(m, (uint64_t)seed);
    size_t m_params = m->nparams;
    int rc = sl_modeldir_save(m, out, dt, &err);
    sl_gpt2_free(m);
    if (rc)
        return sl_cli_fail(NULL, "init-model: %s", err.msg);
    fprintf(stderr, "init-model: wrote %s (%d layers, width %d, %zu parameters)\n", out,
            cfg.n_layer, cfg.n_embd, m_params);
    return 0;
}
