#include "shared/nn.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Hot elementwise loops are compiled for AVX-512, AVX2 and baseline x86-64
 * and picked at load time, so default (portable) builds still use the wide
 * vector units; -march=native stays opt-in (NATIVE=1). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif

/* ---- exp ---------------------------------------------------------------
 * Cephes-style expf: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6
 * polynomial, 2^n through the exponent bits. Branch-free so loops using it
 * vectorise; rounding to nearest via the 1.5*2^23 trick (no SSE4.1 needed). */
static inline float expf_inline(float x)
{
    x = x < -87.33654f ? -87.33654f : x;
    x = x > 88.72283f ? 88.72283f : x;
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    /* n in [-126, 128]: split 2^n as 2^(n/2) * 2^(n - n/2) to stay normal. */
    int ni = (int)n;
    int n1 = ni / 2, n2 = ni - n1;
    union { int32_t i; float f; } a, b;
    a.i = (n1 + 127) << 23;
    b.i = (n2 + 127) << 23;
    return y * a.f * b.f;
}

float sl_expf(float x) { return expf_inline(x); }

/* ---- layernorm --------------------------------------------------------- */

HOT static void ln_row_forward(float *out, float *mean_out, float *rstd_out, const float *x,
                               const float *w, const float *b, int C, float eps)
{
    float m = 0.0f;
#pragma omp simd reduction(+ : m)
    for (int i = 0; i < C; i++)
        m += x[i];
    m /= (float)C;
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int i = 0; i < C; i++) {
        float d = x[i] - m;
        v += d * d;
    }
    v /= (float)C;
    float s = 1.0f / sqrtf(v + eps);
#pragma omp simd
    for (int i = 0; i < C; i++)
        out[i] = (x[i] - m) * s * w[i] + b[i];
    *mean_out = m;
    *rstd_out = s;
}

void sl_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *w, const float *b, int N, int C, float eps)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        ln_row_forward(out + (size_t)n * C, mean + n, rstd + n, inp + (size_t)n * C, w, b, C,
                       eps);
}

HOT static void ln_row_backward(float *dx, const float *dout, const float *x, const float *w,
                                float m, float s, int C)
{
    float dmean = 0.0f, dnm = 0.0f;
#pragma omp simd reduction(+ : dmean, dnm)
    for (int i = 0; i < C; i++) {
        float nrm = (x[i] - m) * s;
        float dn = w[i] * dout[i];
        dmean += dn;
        dnm += dn * nrm;
    }
    dmean /= (float)C;
    dnm /= (float)C;
#pragma omp simd
    for (int i = 0; i < C; i++) {
        float nrm = (x[i] - m) * s;
        dx[i] += (w[i] * dout[i] - dmean - nrm * dnm) * s;
    }
}

void sl_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, const float *mean,
                           const float *rstd, int N, int C)
{
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            ln_row_backward(dinp + (size_t)n * C, dout + (size_t)n * C, inp + (size_t)n * C, w,
                            mean[n], rstd[n], C);
    }
    if (dw || db) {
        /* Column sums in a fixed order (deterministic, no atomics). */
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++) {
            float sw = 0.0f, sb = 0.0f;
            for (int n = 0; n < N; n++) {
                float g = dout[(size_t)n * C + c];
                sw += g * (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
                sb += g;
            }
            if (dw)
                dw[c] += sw;
            if (db)
                db[c] += sb;
        }
    }
}

/* ---- linear (HF Conv1D: w is [C, OC]) --------------------------------- */

void sl_linear_forward(float *out, const float *inp, const float *w, const float *b, int N,
                       int C, int OC, int accumulate)
{
    float beta = accumulate ? 1.0f : 0.0f;
    if (b) {
        if (!accumulate) {
#pragma omp parallel for schedule(static)
            for (int n = 0; n < N; n++)
                memcpy(out + (size_t)n * OC, b, sizeof(float) * (size_t)OC);
        } else {
#pragma omp parallel for schedule(static)
            for (int n = 0; n < N; n++) {
                float *o = out + (size_t)n * OC;
#pragma omp simd
                for (int j = 0; j < OC; j++)
                    o[j] += b[j];
            }
        }
        beta = 1.0f;
    }
    /* out[N,OC] (+)= inp[N,C] @ w[C,OC]: no transposes in row-major. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OC, C, 1.0f, inp, C, w, OC, beta,
                out, OC);
}

void sl_linear_backward(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, int N, int C, int OC)
{
    if (dinp) /* dinp[N,C] += dout[N,OC] @ w^T (w is [C,OC], so transpose B). */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, OC, 1.0f, dout, OC, w, OC,
                    1.0f, dinp, C);
    if (dw) /* dw[C,OC] += inp^T[C,N] @ dout[N,OC]. */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, OC, N, 1.0f, inp, C, dout, OC,
                    1.0f, dw, OC);
    if (db) {
#pragma omp parallel for schedule(static)
        for (int j = 0; j < OC; j++) {
            float s = 0.0f;
            for (int n = 0; n < N; n++)
                s += dout[(size_t)n * OC + j];
            db[j] += s;
        }
    }
}

/* ---- LoRA branch ------------------------------------------------------- */

void sl_lora_branch_forward(float *out, float *u, const float *inp, const float *A,
                            const float *B, int N, int C, int OC, int r, float scale)
{
    /* u[N,r] = inp[N,C] @ A^T (A is [r,C]). */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, C, 1.0f, inp, C, A, C, 0.0f, u,
                r);
    /* out[N,OC] += scale * u[N,r] @ B^T (B is [OC,r]). */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, r, scale, u, r, B, r, 1.0f, out,
                OC);
}

void sl_lora_branch_backward(float *dinp, float *dA, float *dB, float *du, const float *dout,
                             const float *inp, const float *u, const float *A, const float *B,
                             int N, int C, int OC, int r, float scale)
{
    if (dB) /* dB[OC,r] += scale * dout^T[OC,N] @ u[N,r]. */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, r, N, scale, dout, OC, u, r,
                    1.0f, dB, r);
    if (!dA && !dinp)
        return;
    /* du[N,r] = scale * dout[N,OC] @ B[OC,r]. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, OC, scale, dout, OC, B, r,
                0.0f, du, r);
    if (dA) /* dA[r,C] += du^T[r,N] @ inp[N,C]. */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, C, N, 1.0f, du, r, inp, C, 1.0f,
                    dA, C);
    if (dinp) /* dinp[N,C] += du[N,r] @ A[r,C]. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, r, 1.0f, du, r, A, C, 1.0f,
                    dinp, C);
}

/* ---- GELU (tanh approximation, as HF "gelu_new") ------------------------ */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

static inline float tanh_inline(float z)
{
    /* tanh z = 1 - 2 / (e^{2z} + 1); exact limits at +-inf via the clamp in expf. */
    return 1.0f - 2.0f / (expf_inline(2.0f * z) + 1.0f);
}

HOT static void gelu_fwd_block(float *out, const float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float z = GELU_K * (v + 0.044715f * v * v * v);
        out[i] = 0.5f * v * (1.0f + tanh_inline(z));
    }
}

HOT static void gelu_bwd_block(float *dx, const float *x, const float *dout, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float z = GELU_K * (v + 0.044715f * v * v * v);
        float t = tanh_inline(z);
        float sech2 = 1.0f - t * t;
        float g = 0.5f * (1.0f + t) + 0.5f * v * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] += g * dout[i];
    }
}

#define ELEM_BLOCK 4096

void sl_gelu_forward(float *out, const float *inp, size_t n)
{
    long nb = (long)((n + ELEM_BLOCK - 1) / ELEM_BLOCK);
#pragma omp parallel for schedule(static)
    for (long k = 0; k < nb; k++) {
        size_t s = (size_t)k * ELEM_BLOCK, e = s + ELEM_BLOCK < n ? s + ELEM_BLOCK : n;
        gelu_fwd_block(out + s, inp + s, e - s);
    }
}

void sl_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
    long nb = (long)((n + ELEM_BLOCK - 1) / ELEM_BLOCK);
#pragma omp parallel for schedule(static)
    for (long k = 0; k < nb; k++) {
        size_t s = (size_t)k * ELEM_BLOCK, e = s + ELEM_BLOCK < n ? s + ELEM_BLOCK : n;
        gelu_bwd_block(dinp + s, inp + s, dout + s, e - s);
    }
}

/* ---- attention ---------------------------------------------------------- */

HOT static void causal_softmax_row(float *row, int len, int T)
{
    float mx = -INFINITY;
    for (int j = 0; j < len; j++)
        mx = row[j] > mx ? row[j] : mx;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < len; j++) {
        float e = expf_inline(row[j] - mx);
        row[j] = e;
        s += e;
    }
    float inv = 1.0f / s;
#pragma omp simd
    for (int j = 0; j < len; j++)
        row[j] *= inv;
    for (int j = len; j < T; j++)
        row[j] = 0.0f;
}

void sl_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    int ld = 3 * C;
    /* One (batch, head) pair per task; OpenBLAS's OpenMP build runs the
     * sgemm calls inside a parallel region single-threaded. */
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * ld + (size_t)h * hs;
        const float *k = q + C, *v = q + 2 * C;
        float *a = att + ((size_t)b * NH + h) * T * T;
        /* scores[T,T] = scale * q[T,hs] @ k^T; rows of q/k are 3C apart. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, ld, k, ld,
                    0.0f, a, T);
        for (int t = 0; t < T; t++)
            causal_softmax_row(a + (size_t)t * T, t + 1, T);
        /* out[T,hs] (row stride C) = att[T,T] @ v[T,hs]; the zero upper
         * triangle keeps it causal. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, v, ld,
                    0.0f, out + (size_t)b * T * C + (size_t)h * hs, C);
    }
}

HOT static void softmax_row_backward(float *d, const float *p, int len, int T)
{
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < len; j++)
        dot += p[j] * d[j];
#pragma omp simd
    for (int j = 0; j < len; j++)
        d[j] = p[j] * (d[j] - dot);
    for (int j = len; j < T; j++)
        d[j] = 0.0f;
}

void sl_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                           const float *att, int B, int T, int C, int NH)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    int ld = 3 * C;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        size_t off = (size_t)b * T * ld + (size_t)h * hs;
        const float *q = qkv + off, *k = q + C, *v = q + 2 * C;
        float *dq = dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
        const float *a = att + ((size_t)b * NH + h) * T * T;
        float *da = datt + ((size_t)b * NH + h) * T * T;
        const float *dO = dout + (size_t)b * T * C + (size_t)h * hs;
        /* datt[T,T] = dout[T,hs] @ v^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dO, C, v, ld,
                    0.0f, da, T);
        /* dv[T,hs] += att^T @ dout */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, dO, C,
                    1.0f, dv, ld);
        for (int t = 0; t < T; t++)
            softmax_row_backward(da + (size_t)t * T, a + (size_t)t * T, t + 1, T);
        /* dq += scale * dpre @ k; dk += scale * dpre^T @ q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, scale, da, T, k, ld,
                    1.0f, dq, ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, scale, da, T, q, ld,
                    1.0f, dk, ld);
    }
}

/* ---- lm_head + cross-entropy ------------------------------------------ */

size_t sl_lmhead_scratch(int V) { return (size_t)SL_LMHEAD_CHUNK * (size_t)V; }

/* Turns one row of logits into dlogits in place; returns the row's NLL. */
HOT static float xent_row(float *row, int V, int target, float dscale, int want_grad)
{
    float mx = -INFINITY;
    for (int j = 0; j < V; j++)
        mx = row[j] > mx ? row[j] : mx;
    float tl = row[target];
    float s = 0.0f;
    if (want_grad) {
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < V; j++) {
            float e = expf_inline(row[j] - mx);
            row[j] = e;
            s += e;
        }
        float inv = dscale / s;
#pragma omp simd
        for (int j = 0; j < V; j++)
            row[j] *= inv;
        row[target] -= dscale;
    } else {
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < V; j++)
            s += expf_inline(row[j] - mx);
    }
    return logf(s) + mx - tl;
}

int sl_lmhead_xent(float *losses, float *dx, float *dwte, float *scratch, const float *x,
                   const float *wte, const int32_t *targets, int N, int C, int V, float dscale)
{
    int counted = 0;
    for (int n0 = 0; n0 < N; n0 += SL_LMHEAD_CHUNK) {
        int rows = N - n0 < SL_LMHEAD_CHUNK ? N - n0 : SL_LMHEAD_CHUNK;
        const float *xc = x + (size_t)n0 * C;
        /* logits[rows,V] = x[rows,C] @ wte^T (wte is [V,C]). */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, V, C, 1.0f, xc, C, wte, C,
                    0.0f, scratch, V);
        int want = dx != NULL || dwte != NULL;
#pragma omp parallel for schedule(static) reduction(+ : counted)
        for (int i = 0; i < rows; i++) {
            float *row = scratch + (size_t)i * V;
            int tgt = targets[n0 + i];
            if (tgt < 0 || tgt >= V) {
                losses[n0 + i] = 0.0f;
                if (want)
                    memset(row, 0, sizeof(float) * (size_t)V);
                continue;
            }
            losses[n0 + i] = xent_row(row, V, tgt, dscale, want);
            counted++;
        }
        if (dx) /* dx[rows,C] = dlogits[rows,V] @ wte[V,C] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, C, V, 1.0f, scratch, V,
                        wte, C, 0.0f, dx + (size_t)n0 * C, C);
        if (dwte) /* dwte[V,C] += dlogits^T[V,rows] @ x[rows,C] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, rows, 1.0f, scratch, V,
                        xc, C, 1.0f, dwte, C);
    }
    return counted;
}

void sl_lmhead_logits(float *logits, const float *x, const float *wte, int n_rows, int C, int V)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_rows, V, C, 1.0f, x, C, wte, C, 0.0f,
                logits, V);
}
