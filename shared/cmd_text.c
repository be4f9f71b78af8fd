/* The `eval` and `generate` model commands (docs/cli.md). */
#include "shared/cmd_text.h"

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shared/adapter.h"
#include "shared/cli.h"
#include "shared/dataset.h"
#include "shared/fsutil.h"
#include "shared/modeldir.h"
#include "shared/progress.h"
#include "shared/sample.h"
#include "shared/tokenizer.h"
#include "shared/train.h"

#define EVAL_MAX_FILE (1u << 30)

int sl_text_load(const char *model_dir, const char *adapter_dir, sl_gpt2 **m_out,
                 sl_tokenizer **tok_out, sl_err *err)
{
    sl_gpt2 *m = NULL;
    sl_tokenizer *tok = NULL;
    char w[PATH_MAX], hex[65];
    uint8_t dig[32];
    int rc = sl_modeldir_load(&m, model_dir, err);
    if (!rc)
        rc = sl_tokenizer_load(model_dir, &tok, err);
    if (!rc && sl_tokenizer_vocab_size(tok) > (uint32_t)m->V)
        rc = sl_err_set(err, SL_EINVAL,
                        "%s: the tokenizer has %u tokens, the model's vocabulary only %d",
                        model_dir, sl_tokenizer_vocab_size(tok), m->V);
    if (!rc && adapter_dir) {
        rc = sl_fs_join(w, sizeof w, model_dir, SL_MODELDIR_WEIGHTS, err);
        if (!rc)
            rc = sl_fs_sha256(w, dig, hex, err);
        if (!rc)
            rc = sl_adapter_merge_dir(m, adapter_dir, hex, err);
    }
    if (rc) {
        sl_gpt2_free(m);
        sl_tokenizer_free(tok);
        return rc;
    }
    *m_out = m;
    *tok_out = tok;
    return 0;
}

static const char eval_usage[] =
    "usage: %s eval --model DIR [--adapter DIR] --text PATH [--json]\n"
    "                [--context T] [--batch B] [--cache PATH]\n"
    "                [--split all|train|val [--val-fraction F]]\n"
    "\n"
    "Mean next-token negative log-likelihood (nats) and perplexity of a model,\n"
    "with a PEFT LoRA adapter merged if given. A single text file is one\n"
    "document, tokenised with no added special tokens and cut into windows of\n"
    "context+1 tokens that overlap by one token, so every token after the first\n"
    "is predicted exactly once. A folder or a .jsonl file is read as training\n"
    "reads it (documents joined by <|endoftext|>, tokenised once into a cache);\n"
    "every token after the first is predicted once. With --split, a file too is\n"
    "read that way, and val evaluates only the documents `train` holds out for\n"
    "validation (same --val-fraction, default 0.01), train only the others.\n"
    "  --context T   window length (the model's context)\n"
    "  --batch B     windows per forward pass (8)\n"
    "  --json        print {\"tokens\": N, \"nll\": X, \"ppl\": Y}\n";

int sl_cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"adapter", required_argument, NULL, 'a'},
        {"text", required_argument, NULL, 't'},    {"json", no_argument, NULL, 'j'},
        {"context", required_argument, NULL, 'c'}, {"batch", required_argument, NULL, 'b'},
        {"cache", required_argument, NULL, 'C'},   {"split", required_argument, NULL, 'S'},
        {"val-fraction", required_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *model = NULL, *adapter = NULL, *text = NULL, *cache = NULL;
    int json = 0, T = 0, B = 8, split = -1, c;
    float valf = 0.01f;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:a:t:jc:b:C:S:V:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'a': adapter = optarg; break;
        case 't': text = optarg; break;
        case 'j': json = 1; break;
        case 'c': bad = sl_cli_int("eval", "context", optarg, 1, SL_HFCONFIG_MAX_POSITIONS, &T); break;
        case 'b': bad = sl_cli_int("eval", "batch", optarg, 1, 1024, &B); break;
        case 'C': cache = optarg; break;
        case 'S':
            if (!strcmp(optarg, "all"))
                split = -1;
            else if (!strcmp(optarg, "train"))
                split = SL_DATASET_TRAIN;
            else if (!strcmp(optarg, "val"))
                split = SL_DATASET_VAL;
            else
                bad = 2, sl_cli_fail(NULL, "eval: --split '%s' must be all, train or val", optarg);
            break;
        case 'V': bad = sl_cli_float("eval", "val-fraction", optarg, 0, 0.5, &valf); break;
        case 'h': printf(eval_usage, sl_cli_prog()); return 0;
        default: fprintf(stderr, eval_usage, sl_cli_prog()); return 2;
        }
        if (bad)
            return 2;
    }
    if (!model || !text || optind < argc) {
        fprintf(stderr, eval_usage, sl_cli_prog());
        return 2;
    }
    sl_err err = {0};
    sl_gpt2 *m = NULL;
    sl_tokenizer *tok = NULL;
    sl_gpt2_ctx *ctx = NULL;
    sl_dataset *ds = NULL;
    uint8_t *buf = NULL;
    size_t n = 0;
    sl_ids ids;
    sl_ids_init(&ids, 0);
    sl_eval_result r = {0};
    int rc = sl_text_load(model, adapter, &m, &tok, &err);
    if (rc)
        goto out;
    if (T == 0)
        T = m->maxT;
    if (T > m->maxT) {
        rc = sl_err_set(&err, SL_EINVAL, "--context %d exceeds the model's %d", T, m->maxT);
        goto out;
    }
    if ((rc = sl_gpt2_ctx_create(&ctx, m, NULL, NULL, B, T, &err)))
        goto out;
    struct stat st;
    size_t tl = strlen(text);
    int single = split < 0 && stat(text, &st) == 0 && S_ISREG(st.st_mode) &&
                 !(tl > 6 && strcmp(text + tl - 6, ".jsonl") == 0);
    if (single) {
        if ((rc = sl_fs_read_all(text, EVAL_MAX_FILE, &buf, &n, &err)) ||
            (rc = sl_tokenizer_encode(tok, buf, n, 0, &ids, &err)))
            goto out;
        if (ids.n < 2) {
            rc = sl_err_set(&err, SL_EINVAL, "%s: %zu tokens; need at least 2 to evaluate",
                            text, ids.n);
            goto out;
        }
        rc = sl_eval_ids(ctx, B, T, ids.v, ids.n, &r, &err);
    } else {
        sl_dataset_opts o;
        sl_dataset_opts_init(&o);
        o.val_per_million = split < 0 ? 0 : (uint32_t)lround(valf * 1e6);
        o.cache = cache;
        if ((rc = sl_dataset_open(text, tok, &o, &ds, &err)))
            goto out;
        rc = sl_eval_split(ctx, B, T, ds, split < 0 ? SL_DATASET_TRAIN : split, 0, &r, &err);
    }
    if (rc)
        goto out;
    if (json)
        printf("{\"tokens\": %llu, \"nll\": %.6f, \"ppl\": %.4f}\n",
               (unsigned long long)r.tokens, r.nll, r.ppl);
    else
        printf("tokens: %llu\nnll:    %.4f nats/token\nppl:    %.3f\n",
               (unsigned long long)r.tokens, r.nll, r.ppl);
out:
    if (rc)
        sl_cli_fail(NULL, "eval: %s", err.msg);
    sl_ids_fini(&ids);
    free(buf);
    sl_dataset_close(ds);
    sl_gpt2_ctx_free(ctx);
    sl_tokenizer_free(tok);
    sl_gpt2_free(m);
    return rc ? 1 : 0;
}

static const char gen_usage[] =
    "usage: %s generate --model DIR [--adapter DIR] --prompt TEXT [options]\n"
    "\n"
    "Continues TEXT with the model (a PEFT LoRA adapter merged if given) and\n"
    "writes the prompt and its continuation to stdout as they are produced.\n"
    "  --max-tokens N    tokens to add (100)\n"
    "  --temperature X   0 for greedy decoding (0.8)\n"
    "  --top-k N         keep the N likeliest tokens, 0 for all (40)\n"
    "  --top-p X         keep the smallest set with this much probability (0.95)\n"
    "  --seed N          sampling seed; the same seed gives the same text (1)\n"
    "  --no-stop         keep going past <|endoftext|> instead of stopping there\n";

int sl_cmd_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},       {"adapter", required_argument, NULL, 'a'},
        {"prompt", required_argument, NULL, 'p'},      {"max-tokens", required_argument, NULL, 'n'},
        {"temperature", required_argument, NULL, 'T'}, {"top-k", required_argument, NULL, 'k'},
        {"top-p", required_argument, NULL, 'P'},       {"seed", required_argument, NULL, 's'},
        {"no-stop", no_argument, NULL, 'S'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *model = NULL, *adapter = NULL, *prompt = NULL;
    int max_new = 100, stop = 1, c;
    long seed = 1;
    sl_sample_cfg sc = {0.8f, 40, 0.95f};
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:a:p:n:T:k:P:s:Sh", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case 'a': adapter = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': bad = sl_cli_int("generate", "max-tokens", optarg, 0, 100000, &max_new); break;
        case 'T': bad = sl_cli_float("generate", "temperature", optarg, 0, 100, &sc.temperature); break;
        case 'k': bad = sl_cli_int("generate", "top-k", optarg, 0, 1 << 24, &sc.top_k); break;
        case 'P': bad = sl_cli_float("generate", "top-p", optarg, 1e-9, 1, &sc.top_p); break;
        case 's': bad = sl_cli_long("generate", "seed", optarg, 0, LONG_MAX, &seed); break;
        case 'S': stop = 0; break;
        case 'h': printf(gen_usage, sl_cli_prog()); return 0;
        default: fprintf(stderr, gen_usage, sl_cli_prog()); return 2;
        }
        if (bad)
            return 2;
    }
    if (!model || !prompt || optind < argc) {
        fprintf(stderr, gen_usage, sl_cli_prog());
        return 2;
    }
    sl_err err = {0};
    sl_gpt2 *m = NULL;
    sl_tokenizer *tok = NULL;
    sl_gpt2_ctx *ctx = NULL;
    float *logits = NULL;
    void *scratch = NULL;
    sl_ids ids;
    sl_ids_init(&ids, 0);
    int rc = sl_text_load(model, adapter, &m, &tok, &err);
    if (rc)
        goto out;
    if ((rc = sl_gpt2_ctx_create(&ctx, m, NULL, NULL, 1, m->maxT, &err)))
        goto out;
    logits = malloc(sizeof(float) * (size_t)m->V);
    scratch = malloc(2 * sizeof(float) * (size_t)m->V);
    if (!logits || !scratch) {
        rc = sl_err_set(&err, SL_ENOMEM, "out of memory");
        goto out;
    }
    /* The sequence starts with <|endoftext|>, as in pretraining, so the
     * first prompt token is predicted in its usual context. */
    int32_t eot = sl_tokenizer_eot(tok);
    if ((rc = sl_ids_push(&ids, eot, &err)) ||
        (rc = sl_tokenizer_encode(tok, prompt, strlen(prompt), 0, &ids, &err)))
        goto out;
    fwrite(prompt, 1, strlen(prompt), stdout);
    fflush(stdout);
    sl_rng rng;
    sl_rng_seed(&rng, (uint64_t)seed);
    /* Ids past the tokenizer's vocabulary (padding rows of the embedding)
     * are never produced. */
    int32_t V_tok = (int32_t)sl_tokenizer_vocab_size(tok);
    int32_t *banned = NULL;
    int nb = m->V - V_tok;
    if (nb > 0) {
        banned = malloc(sizeof(int32_t) * (size_t)nb);
        if (!banned) {
            rc = sl_err_set(&err, SL_ENOMEM, "out of memory");
            goto out;
        }
        for (int i = 0; i < nb; i++)
            banned[i] = V_tok + i;
    }
    for (int i = 0; i < max_new; i++) {
        size_t len = ids.n < (size_t)m->maxT ? ids.n : (size_t)m->maxT;
        const int32_t *win = ids.v + ids.n - len;
        sl_gpt2_forward(ctx, win, NULL, 1, (int)len, 0);
        sl_gpt2_logits_at(ctx, 0, (int)len - 1, logits);
        int32_t next = sl_sample_next(logits, m->V, &sc, &rng, scratch, banned, nb > 0 ? nb : 0);
        if (next == eot && stop)
            break;
        if ((rc = sl_ids_push(&ids, next, &err)))
            break;
        size_t bl;
        const uint8_t *b = sl_tokenizer_token(tok, next, &bl);
        if (b)
            fwrite(b, 1, bl, stdout);
        fflush(stdout);
    }
    free(banned);
    fputc('\n', stdout);
out:
    if (rc)
        sl_cli_fail(NULL, "generate: %s", err.msg);
    sl_ids_fini(&ids);
    free(logits);
    free(scratch);
    sl_gpt2_ctx_free(ctx);
    sl_tokenizer_free(tok);
    sl_gpt2_free(m);
    return rc ? 1 : 0;
}
