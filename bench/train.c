/* bench/train - training and inference throughput of the GPT-2 engine.
 *
 * For a GPT-2-small configuration (12 layers, 768 wide, 12 heads, vocabulary
 * 50257, random weights) and a 6-layer variant, batch 4 x 128, LoRA r=8 on
 * attn.c_attn of every layer, prints: LoRA training tokens/s, forward-only
 * tokens/s, peak RSS, the sgemm rate measured in the same run on the
 * model's dominant shape, and the model FLOP utilisation (useful FLOPs /
 * time / measured sgemm rate). Then runs the PyTorch peer
 * (bench/peers/train_torch.py) with the same kernel set and threads and
 * prints the ratio. Figures are medians; nothing is asserted.
 *
 * Usage: bench/train [--quick] [--no-peer] [--steps N]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "shared/blas.h"
#include "shared/gpt2.h"
#include "shared/lora.h"
#include "shared/optim.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* sgemm GFLOP/s on [M,K] x [K,N] (the c_fc product of a 512-token batch). */
static double sgemm_rate(int M, int N, int K, int reps)
{
    float *a = malloc(sizeof(float) * (size_t)M * K), *b = malloc(sizeof(float) * (size_t)K * N),
          *c = malloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++)
        a[i] = (float)((i * 7) % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)K * N; i++)
        b[i] = (float)((i * 5) % 11) * 0.01f;
    double t[32];
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c,
                    N);
        t[r] = now() - t0;
    }
    double med = median(t + 1, reps); /* first call warms up */
    free(a);
    free(b);
    free(c);
    return 2.0 * M * N * K / med / 1e9;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

typedef struct result {
    double train_tok_s, fwd_tok_s, train_gflops, mfu, rss_mb, ctx_mb;
} result;

static int run_config(int L, int steps, result *res)
{
    sl_gpt2_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_layer = L;
    cfg.n_head = 12;
    cfg.n_embd = 768;
    cfg.n_positions = 1024;
    cfg.vocab_size = 50257;
    cfg.layer_norm_epsilon = 1e-5f;
    cfg.bos_token_id = cfg.eos_token_id = 50256;
    strcpy(cfg.activation_function, "gelu_new");
    cfg.tie_word_embeddings = 1;
    sl_err err = {0};
    sl_gpt2 *m = NULL;
    sl_lora *lo = NULL;
    sl_gpt2_ctx *c = NULL;
    if (sl_gpt2_create(&m, &cfg, &err) || sl_lora_create(&lo, m, 8, 16.0f, SL_LORA_C_ATTN, NULL, 0,
                                                         1, &err)) {
        fprintf(stderr, "bench/train: %s\n", err.msg);
        return 1;
    }
    sl_gpt2_init_random(m, 1);
    int B = 4, T = 128, N = B * T;
    if (sl_gpt2_ctx_create(&c, m, lo, NULL, B, T, &err)) {
        fprintf(stderr, "bench/train: %s\n", err.msg);
        return 1;
    }
    int32_t *x = malloc(sizeof(int32_t) * N), *y = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) {
        x[i] = (int32_t)((i * 7919) % cfg.vocab_size);
        y[i] = (int32_t)((i * 104729 + 3) % cfg.vocab_size);
    }
    sl_param_seg seg = {lo->params, sl_gpt2_lora_grad(c), lo->nparams, 0};
    sl_adamw opt;
    sl_adamw_init(&opt, lo->nparams, 0.0f, &err);
    double tt[64], tf[64];
    int warm = 2;
    /* The sgemm rate is measured right before and right after this model's
     * steps and the higher one is the MFU denominator: on a shared machine a
     * single measurement taken during a disturbance would inflate the MFU. */
    double gemm = sgemm_rate(512, 3072, 768, 9);
    for (int s = 0; s < warm + steps; s++) {
        double t0 = now();
        sl_gpt2_zero_grad(c);
        sl_gpt2_forward(c, x, y, B, T, 1);
        sl_gpt2_backward(c);
        sl_grad_clip(&seg, 1, 1.0);
        sl_adamw_step(&opt, &seg, 1, 1e-4f);
        if (s >= warm)
            tt[s - warm] = now() - t0;
    }
    for (int s = 0; s < warm + steps; s++) {
        double t0 = now();
        sl_gpt2_forward(c, x, y, B, T, 0);
        if (s >= warm)
            tf[s - warm] = now() - t0;
    }
    double gemm2 = sgemm_rate(512, 3072, 768, 9);
    printf("  L=%-2d sgemm [512x768]x[768x3072] before / after: %.1f / %.1f GFLOP/s\n", L, gemm,
           gemm2);
    gemm = gemm2 > gemm ? gemm2 : gemm;
    double mt = median(tt, steps), mf = median(tf, steps);
    double flops = sl_gpt2_step_flops(c, B, T, 1);
    res->train_tok_s = N / mt;
    res->fwd_tok_s = N / mf;
    res->train_gflops = flops / mt / 1e9;
    res->mfu = res->train_gflops / gemm;
    res->rss_mb = peak_rss_mb();
    res->ctx_mb = sl_gpt2_ctx_bytes(c) / 1048576.0;
    printf("  L=%-2d train %7.1f tok/s  forward %7.1f tok/s  step %.3f s  %.1f GFLOP/s  "
           "MFU %.0f%%  ctx %.0f MB  peak RSS %.0f MB\n",
           L, res->train_tok_s, res->fwd_tok_s, mt, res->train_gflops, 100 * res->mfu,
           res->ctx_mb, res->rss_mb);
    fflush(stdout);
    sl_adamw_fini(&opt);
    free(x);
    free(y);
    sl_gpt2_ctx_free(c);
    sl_lora_free(lo);
    sl_gpt2_free(m);
    return 0;
}

/* Runs the PyTorch peer with our kernel set and threads; 0 if unavailable. */
static int run_peer(int L, int steps, double *train, double *fwd)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_CORETYPE=%s OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d "
             "ATEN_CPU_CAPABILITY=avx512 /usr/bin/python3 bench/peers/train_torch.py "
             "--layers %d --steps %d --threads %d 2>&1",
             sl_blas_corename(), sl_blas_threads(), sl_blas_threads(), L, steps,
             sl_blas_threads());
    FILE *p = popen(cmd, "r");
    if (!p)
        return 0;
    char line[512];
    int ok = 0;
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "peer train_tok_s=%lf fwd_tok_s=%lf", train, fwd) == 2)
            ok = 1;
        else if (!ok)
            fprintf(stderr, "  peer: %s", line);
    }
    pclose(p);
    return ok;
}

int main(int argc, char **argv)
{
    sl_blas_boot(argc, argv);
    int steps = 7, peer = 1, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-peer") == 0)
            peer = 0;
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench/train [--quick] [--no-peer] [--steps N]\n");
            return 2;
        }
    }
    if (steps < 1 || steps > 64)
        steps = 7;
    if (quick)
        steps = 3;
    char d[256];
    sl_blas_describe(d, sizeof d);
    printf("bench/train: GPT-2 shapes, batch 4 x 128, LoRA r=8 on attn.c_attn, median of %d "
           "steps\nBLAS: %s\n", steps, d);
    int layers[2] = {12, 6};
    for (int k = 0; k < 2; k++) {
        result r;
        if (run_config(layers[k], steps, &r))
            return 1;
        if (!peer)
            continue;
        double pt = 0, pf = 0;
        if (run_peer(layers[k], steps, &pt, &pf))
            printf("  L=%-2d peer PyTorch train %7.1f tok/s  forward %7.1f tok/s  ratio train "
                   "%.2fx  forward %.2fx\n",
                   layers[k], pt, pf, r.train_tok_s / pt, r.fwd_tok_s / pf);
        else
            printf("  L=%-2d peer PyTorch unavailable (install python3-torch)\n", layers[k]);
        fflush(stdout);
    }
    return 0;
}
