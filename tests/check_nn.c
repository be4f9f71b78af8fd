/* Kernels of the engine: every backward against central finite differences
 * (tolerance reasoning in tests/gradcheck.h), fast paths against naive
 * references, and the fused lm_head loss against a plain softmax. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shared/nn.h"
#include "tests/fixtures.h"
#include "tests/gradcheck.h"

#define TOL 5e-4

static float *rnd(sl_test_rng *r, size_t n, float scale)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    ck_assert_ptr_nonnull(x);
    sl_test_fill(r, x, n, scale);
    return x;
}

static float *zeros(size_t n)
{
    float *x = calloc(n ? n : 1, sizeof(float));
    ck_assert_ptr_nonnull(x);
    return x;
}

static double dot_d(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* ---- layernorm ---- */
typedef struct { float *out, *mean, *rstd, *inp, *w, *b, *R; int N, C; } ln_ctx;
static double ln_f(void *p)
{
    ln_ctx *c = p;
    sl_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, 1e-5f);
    return dot_d(c->out, c->R, (size_t)c->N * c->C);
}

START_TEST(test_layernorm_grad)
{
    sl_test_rng r = {1};
    int N = 6, C = 24;
    size_t NC = (size_t)N * C;
    ln_ctx c = {zeros(NC), zeros(N), zeros(N), rnd(&r, NC, 2.0f), rnd(&r, C, 1.0f),
                rnd(&r, C, 1.0f), rnd(&r, NC, 1.0f), N, C};
    float *dinp = zeros(NC), *dw = zeros(C), *db = zeros(C);
    ln_f(&c);
    sl_layernorm_backward(dinp, dw, db, c.R, c.inp, c.w, c.mean, c.rstd, N, C);
    ck_assert_double_lt(sl_gradcheck(c.inp, NC, dinp, ln_f, &c, 1e-2f, 200), TOL);
    ck_assert_double_lt(sl_gradcheck(c.w, C, dw, ln_f, &c, 1e-2f, 200), TOL);
    ck_assert_double_lt(sl_gradcheck(c.b, C, db, ln_f, &c, 1e-2f, 200), TOL);
    /* Forward against a naive double computation. */
    ln_f(&c);
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int i = 0; i < C; i++)
            m += c.inp[n * C + i];
        m /= C;
        for (int i = 0; i < C; i++)
            v += (c.inp[n * C + i] - m) * (c.inp[n * C + i] - m);
        v /= C;
        for (int i = 0; i < C; i++) {
            double want = (c.inp[n * C + i] - m) / sqrt(v + 1e-5) * c.w[i] + c.b[i];
            ck_assert_double_eq_tol(c.out[n * C + i], want, 1e-5 * (1 + fabs(want)));
        }
    }
    /* Accumulation: a second backward doubles the gradients. */
    float *dw2 = zeros(C);
    memcpy(dw2, dw, sizeof(float) * C);
    sl_layernorm_backward(NULL, dw2, NULL, c.R, c.inp, c.w, c.mean, c.rstd, N, C);
    for (int i = 0; i < C; i++)
        ck_assert_float_eq_tol(dw2[i], 2 * dw[i], 1e-5f * (1 + fabsf(dw[i])));
    free(c.out); free(c.mean); free(c.rstd); free(c.inp); free(c.w); free(c.b); free(c.R);
    free(dinp); free(dw); free(db); free(dw2);
}
END_TEST

/* ---- linear + LoRA ---- */
typedef struct {
    float *out, *u, *inp, *w, *b, *A, *B, *R;
    int N, C, OC, r;
    float scale;
} lin_ctx;
static double lin_f(void *p)
{
    lin_ctx *c = p;
    sl_linear_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC, 0);
    if (c->A)
        sl_lora_branch_forward(c->out, c->u, c->inp, c->A, c->B, c->N, c->C, c->OC, c->r,
                               c->scale);
    return dot_d(c->out, c->R, (size_t)c->N * c->OC);
}

START_TEST(test_linear_lora_grad)
{
    sl_test_rng rg = {2};
    int N = 7, C = 12, OC = 20, r = 3;
    lin_ctx c = {zeros((size_t)N * OC), zeros((size_t)N * r), rnd(&rg, (size_t)N * C, 1.0f),
                 rnd(&rg, (size_t)C * OC, 0.5f), rnd(&rg, OC, 0.5f), rnd(&rg, (size_t)r * C, 0.5f),
                 rnd(&rg, (size_t)OC * r, 0.5f), rnd(&rg, (size_t)N * OC, 1.0f), N, C, OC, r, 1.7f};
    float *dinp = zeros((size_t)N * C), *dw = zeros((size_t)C * OC), *db = zeros(OC);
    float *dA = zeros((size_t)r * C), *dB = zeros((size_t)OC * r), *du = zeros((size_t)N * r);
    lin_f(&c);
    sl_linear_backward(dinp, dw, db, c.R, c.inp, c.w, N, C, OC);
    sl_lora_branch_backward(dinp, dA, dB, du, c.R, c.inp, c.u, c.A, c.B, N, C, OC, r, c.scale);
    ck_assert_double_lt(sl_gradcheck(c.inp, (size_t)N * C, dinp, lin_f, &c, 1e-2f, 300), TOL);
    ck_assert_double_lt(sl_gradcheck(c.w, (size_t)C * OC, dw, lin_f, &c, 1e-2f, 300), TOL);
    ck_assert_double_lt(sl_gradcheck(c.b, OC, db, lin_f, &c, 1e-2f, 300), TOL);
    ck_assert_double_lt(sl_gradcheck(c.A, (size_t)r * C, dA, lin_f, &c, 1e-2f, 300), TOL);
    ck_assert_double_lt(sl_gradcheck(c.B, (size_t)OC * r, dB, lin_f, &c, 1e-2f, 300), TOL);
    /* Forward against the definition y = x W + b + s (x A^T) B^T. */
    lin_f(&c);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OC; j++) {
            double y = c.b[j];
            for (int i = 0; i < C; i++)
                y += (double)c.inp[n * C + i] * c.w[i * OC + j];
            for (int k = 0; k < r; k++) {
                double uk = 0;
                for (int i = 0; i < C; i++)
                    uk += (double)c.inp[n * C + i] * c.A[k * C + i];
                y += c.scale * uk * c.B[j * r + k];
            }
            ck_assert_double_eq_tol(c.out[n * OC + j], y, 1e-4 * (1 + fabs(y)));
        }
    free(c.out); free(c.u); free(c.inp); free(c.w); free(c.b); free(c.A); free(c.B); free(c.R);
    free(dinp); free(dw); free(db); free(dA); free(dB); free(du);
}
END_TEST

/* ---- GELU ---- */
typedef struct { float *out, *inp, *R; size_t n; } gelu_ctx;
static double gelu_f(void *p)
{
    gelu_ctx *c = p;
    sl_gelu_forward(c->out, c->inp, c->n);
    return dot_d(c->out, c->R, c->n);
}

START_TEST(test_gelu)
{
    sl_test_rng r = {3};
    size_t n = 9000; /* spans several blocks and a ragged tail */
    gelu_ctx c = {zeros(n), rnd(&r, n, 5.0f), rnd(&r, n, 1.0f), n};
    float *d = zeros(n);
    gelu_f(&c);
    sl_gelu_backward(d, c.inp, c.R, n);
    ck_assert_double_lt(sl_gradcheck(c.inp, n, d, gelu_f, &c, 1e-2f, 500), TOL);
    gelu_f(&c);
    for (size_t i = 0; i < n; i++) {
        double x = c.inp[i];
        double want = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        ck_assert_double_eq_tol(c.out[i], want, 1e-6 * (1 + fabs(want)));
    }
    free(c.out); free(c.inp); free(c.R); free(d);
}
END_TEST

START_TEST(test_expf_accuracy)
{
    double worst = 0;
    for (float x = -87.0f; x < 88.0f; x += 0.01237f) {
        double want = exp((double)x), got = sl_expf(x);
        double rel = fabs(got - want) / want;
        worst = rel > worst ? rel : worst;
    }
    ck_assert_double_lt(worst, 4e-7); /* a few float ulps */
    ck_assert_float_eq(sl_expf(0.0f), 1.0f);
    ck_assert(sl_expf(-1000.0f) < 1e-37f && sl_expf(-1000.0f) >= 0.0f);
    ck_assert(isfinite(sl_expf(1000.0f)));
}
END_TEST

/* ---- attention ---- */
typedef struct { float *out, *att, *qkv, *R; int B, T, C, NH; } att_ctx;
static double att_f(void *p)
{
    att_ctx *c = p;
    sl_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH);
    return dot_d(c->out, c->R, (size_t)c->B * c->T * c->C);
}

START_TEST(test_attention)
{
    sl_test_rng r = {4};
    int B = 2, T = 5, C = 12, NH = 3, hs = C / NH;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
    att_ctx c = {zeros(no), zeros(na), rnd(&r, nq, 1.0f), rnd(&r, no, 1.0f), B, T, C, NH};
    float *dqkv = zeros(nq), *datt = zeros(na);
    att_f(&c);
    sl_attention_backward(dqkv, datt, c.R, c.qkv, c.att, B, T, C, NH);
    ck_assert_double_lt(sl_gradcheck(c.qkv, nq, dqkv, att_f, &c, 1e-2f, 400), TOL);
    /* Forward against a naive causal attention. */
    att_f(&c);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                double w[16], mx = -1e30, s = 0;
                const float *q = c.qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                for (int u = 0; u <= t; u++) {
                    const float *k = c.qkv + ((size_t)b * T + u) * 3 * C + C + h * hs;
                    w[u] = 0;
                    for (int i = 0; i < hs; i++)
                        w[u] += (double)q[i] * k[i];
                    w[u] /= sqrt(hs);
                    mx = w[u] > mx ? w[u] : mx;
                }
                for (int u = 0; u <= t; u++)
                    s += (w[u] = exp(w[u] - mx));
                for (int i = 0; i < hs; i++) {
                    double o = 0;
                    for (int u = 0; u <= t; u++)
                        o += w[u] / s * c.qkv[((size_t)b * T + u) * 3 * C + 2 * C + h * hs + i];
                    ck_assert_double_eq_tol(c.out[((size_t)b * T + t) * C + h * hs + i], o, 1e-5);
                }
            }
    free(c.out); free(c.att); free(c.qkv); free(c.R); free(dqkv); free(datt);
}
END_TEST

/* ---- lm_head + cross-entropy ---- */
typedef struct { float *losses, *scratch, *x, *wte; int32_t *tg; int N, C, V; } xent_ctx;
static double xent_f(void *p)
{
    xent_ctx *c = p;
    int cnt = sl_lmhead_xent(c->losses, NULL, NULL, c->scratch, c->x, c->wte, c->tg, c->N, c->C,
                             c->V, 0.0f);
    double s = 0;
    for (int n = 0; n < c->N; n++)
        s += c->losses[n];
    return s / cnt;
}

START_TEST(test_lmhead_xent)
{
    sl_test_rng r = {5};
    /* N > SL_LMHEAD_CHUNK so the chunking is exercised; one ignored row. */
    int N = SL_LMHEAD_CHUNK + 9, C = 8, V = 11;
    xent_ctx c = {zeros(N), zeros(sl_lmhead_scratch(V)), rnd(&r, (size_t)N * C, 1.0f),
                  rnd(&r, (size_t)V * C, 1.0f), malloc(sizeof(int32_t) * N), N, C, V};
    for (int n = 0; n < N; n++)
        c.tg[n] = (int32_t)(sl_test_rand(&r) % V);
    c.tg[3] = -1;
    float *dx = zeros((size_t)N * C), *dw = zeros((size_t)V * C);
    int cnt = sl_lmhead_xent(c.losses, dx, dw, c.scratch, c.x, c.wte, c.tg, N, C, V,
                             1.0f / (N - 1));
    ck_assert_int_eq(cnt, N - 1);
    ck_assert_float_eq(c.losses[3], 0.0f);
    /* Losses against a naive log-softmax in double. */
    for (int n = 0; n < N; n++) {
        if (c.tg[n] < 0)
            continue;
        double lg[16], mx = -1e30, s = 0;
        for (int v = 0; v < V; v++) {
            lg[v] = 0;
            for (int i = 0; i < C; i++)
                lg[v] += (double)c.x[n * C + i] * c.wte[v * C + i];
            mx = lg[v] > mx ? lg[v] : mx;
        }
        for (int v = 0; v < V; v++)
            s += exp(lg[v] - mx);
        double want = log(s) + mx - lg[c.tg[n]];
        ck_assert_double_eq_tol(c.losses[n], want, 1e-5 * (1 + want));
    }
    ck_assert_double_lt(sl_gradcheck(c.x, (size_t)N * C, dx, xent_f, &c, 1e-2f, 300), TOL);
    ck_assert_double_lt(sl_gradcheck(c.wte, (size_t)V * C, dw, xent_f, &c, 1e-2f, 300), TOL);
    free(c.losses); free(c.scratch); free(c.x); free(c.wte); free(c.tg); free(dx); free(dw);
}
END_TEST

START_TEST(test_gradcheck_detects_errors)
{
    /* The check itself must be able to fail: a gradient scaled by 1.01 and one with a
     * flipped sign are both caught. */
    sl_test_rng r = {6};
    size_t n = 9000;
    gelu_ctx c = {zeros(n), rnd(&r, n, 3.0f), rnd(&r, n, 1.0f), n};
    float *d = zeros(n);
    gelu_f(&c);
    sl_gelu_backward(d, c.inp, c.R, n);
    for (size_t i = 0; i < n; i++)
        d[i] = -d[i];
    ck_assert_double_gt(sl_gradcheck(c.inp, n, d, gelu_f, &c, 1e-2f, 300), 0.5);
    for (size_t i = 0; i < n; i++)
        d[i] = -d[i] * 1.01f;
    ck_assert_double_gt(sl_gradcheck(c.inp, n, d, gelu_f, &c, 1e-2f, 300), TOL);
    free(c.out); free(c.inp); free(c.R); free(d);
}
END_TEST

Suite *nn_suite(void)
{
    Suite *s = suite_create("nn");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_layernorm_grad);
    tcase_add_test(core, test_linear_lora_grad);
    tcase_add_test(core, test_gelu);
    tcase_add_test(core, test_attention);
    tcase_add_test(core, test_lmhead_xent);
    suite_add_tcase(s, core);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, test_expf_accuracy);
    tcase_add_test(lim, test_gradcheck_detects_errors);
    suite_add_tcase(s, lim);
    return s;
}
