/* bench/offsite - costs of offsite tuning's pieces on a GPT-2 shaped like
 * the embedded base model (8 blocks, width 320, 5 heads, vocabulary 8192,
 * random weights: the speed does not depend on them).
 *
 * Prints: (1) signing and verifying an emulator package (SHA-256 of every
 * file + Ed25519), MB/s over the package's bytes; (2) one LoRA training
 * step (rank 8, all four modules, adapter blocks 0 1 6 7) of B x T tokens
 * on the full model and on its drop-0.5 emulator, tokens/s and the
 * context's bytes; (3) one distillation step (teacher forward to the last
 * middle block + student forward/backward from the hidden state) with and
 * without the logit KL term. Medians of 3; nothing is asserted.
 *
 * Usage: bench/offsite [--batch B] [--seq T]
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto/emupkg.h"
#include "server/distill.h"
#include "shared/emulator.h"
#include "shared/fsutil.h"
#include "shared/hfconfig.h"
#include "shared/modeldir.h"
#include "shared/train.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double median3(double a, double b, double c)
{
    if (a > b) { double t = a; a = b; b = t; }
    if (b > c) { double t = b; b = c; c = t; }
    return a > b ? a : b;
}

static int die(const sl_err *e)
{
    fprintf(stderr, "bench/offsite: %s\n", e->msg);
    return 1;
}

/* Median seconds of one LoRA step on m. */
static double lora_step(sl_gpt2 *m, const int *layers, int n, int B, int T, const int32_t *x,
                        size_t *ctx_bytes, sl_err *err)
{
    sl_lora *l = NULL;
    sl_trainer *tr = NULL;
    sl_train_cfg c;
    sl_train_cfg_init(&c);
    c.B = B;
    c.T = T;
    c.steps = 10;
    c.warmup = 0;
    double t[3] = {0, 0, 0};
    if (sl_lora_create(&l, m, 8, 16, 0xF, layers, n, 1, err) ||
        sl_trainer_create(&tr, m, l, NULL, &c, err))
        return -1;
    for (int i = 0; i < 4; i++) { /* one warm-up step */
        double t0 = now();
        if (sl_trainer_step_batch(tr, x, x + B * T, NULL, err))
            return -1;
        if (i)
            t[i - 1] = now() - t0;
    }
    *ctx_bytes = sl_gpt2_ctx_bytes(sl_trainer_ctx(tr));
    sl_trainer_free(tr);
    sl_lora_free(l);
    return median3(t[0], t[1], t[2]);
}

int main(int argc, char **argv)
{
    int B = 8, T = 128;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seq") && i + 1 < argc)
            T = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--batch B] [--seq T]\n", argv[0]);
            return 2;
        }
    }
    if (B < 1 || T < 1 || T > 256 || sodium_init() < 0)
        return 2;
    sl_err err = {0};
    sl_gpt2_config cfg;
    sl_hfconfig_default(&cfg);
    cfg.n_layer = 8;
    cfg.n_head = 5;
    cfg.n_embd = 320;
    cfg.n_positions = 256;
    cfg.vocab_size = 8192;
    cfg.bos_token_id = cfg.eos_token_id = 8191;
    sl_gpt2 *full = NULL, *emu = NULL;
    sl_emumeta meta;
    memset(&meta, 0, sizeof meta);
    if (sl_gpt2_create(&full, &cfg, &err))
        return die(&err);
    sl_gpt2_init_random(full, 1);
    if (sl_emulator_plan(8, 2, 2, 0.5, NULL, 0, meta.layer_map, &meta.nblocks, &meta.drop_ratio,
                         &err) ||
        sl_emulator_build(&emu, full, meta.layer_map, meta.nblocks, &err))
        return die(&err);
    meta.full_layers = 8;
    meta.bottom = meta.top = 2;
    strcpy(meta.drop_mode, "uniform");
    memset(meta.base_sha256, 'a', 64);

    /* (1) package sign + verify */
    char dir[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sealora-bench-offsite-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (sl_modeldir_save(emu, dir, SL_ST_F16, &err))
        return die(&err);
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    double ts[3], tv[3];
    for (int i = 0; i < 3; i++) {
        double t0 = now();
        if (sl_emupkg_sign(dir, &meta, sk, NULL, &err))
            return die(&err);
        ts[i] = now() - t0;
        t0 = now();
        if (sl_emupkg_verify(dir, pk, NULL, NULL, &err))
            return die(&err);
        tv[i] = now() - t0;
    }
    char wp[300];
    snprintf(wp, sizeof wp, "%s/%s", dir, SL_MODELDIR_WEIGHTS);
    FILE *f = fopen(wp, "rb");
    long bytes = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        bytes = ftell(f);
        fclose(f);
    }
    printf("package (emulator, F16 weights %.1f MB): sign %.3f s (%.0f MB/s), verify %.3f s "
           "(%.0f MB/s)\n",
           bytes / 1e6, median3(ts[0], ts[1], ts[2]), bytes / 1e6 / median3(ts[0], ts[1], ts[2]),
           median3(tv[0], tv[1], tv[2]), bytes / 1e6 / median3(tv[0], tv[1], tv[2]));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench/offsite: could not remove %s\n", dir);

    /* (2) LoRA steps */
    int32_t *x = malloc(sizeof(int32_t) * (size_t)B * T * 2);
    for (int i = 0; i < 2 * B * T; i++)
        x[i] = (int32_t)((i * 2654435761u) % 8192);
    int ef[] = {0, 1, 6, 7}, ee[] = {0, 1, 4, 5};
    size_t bf = 0, be = 0;
    double sf = lora_step(full, ef, 4, B, T, x, &bf, &err);
    double se = lora_step(emu, ee, 4, B, T, x, &be, &err);
    if (sf < 0 || se < 0)
        return die(&err);
    printf("LoRA step, %d x %d tokens: full model %.3f s (%.0f tok/s, context %.1f MiB), "
           "emulator %.3f s (%.0f tok/s, context %.1f MiB): %.2fx\n",
           B, T, sf, B * T / sf, bf / 1048576.0, se, B * T / se, be / 1048576.0, sf / se);

    /* (3) distillation steps */
    uint8_t *mask = calloc((size_t)emu->ntensors, 1);
    for (int k = 0; k < SL_T_PER_LAYER; k++)
        mask[SL_GPT2_LAYER0 + 2 * SL_T_PER_LAYER + k] = 1;
    sl_gpt2_ctx *c = NULL;
    if (sl_gpt2_ctx_create(&c, emu, NULL, mask, B, T, &err))
        return die(&err);
    for (int kl = 0; kl <= 1; kl++) {
        double t[3];
        for (int i = 0; i < 4; i++) {
            double l, t0 = now();
            sl_gpt2_zero_grad(c);
            if (sl_distill_batch_loss(full, emu, &meta, c, x, B, T, kl ? 0.5f : 0.0f, 1, &l, &err))
                return die(&err);
            if (i)
                t[i - 1] = now() - t0;
        }
        double m = median3(t[0], t[1], t[2]);
        printf("distillation step, %d x %d tokens, %s: %.3f s (%.0f tok/s; includes setting up "
               "the teacher's context)\n",
               B, T, kl ? "MSE + logit KL" : "MSE", m, B * T / m);
    }
    sl_gpt2_ctx_free(c);
    free(mask);
    free(x);
    sl_gpt2_free(emu);
    sl_gpt2_free(full);
    return 0;
}
