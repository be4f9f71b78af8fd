/* shared/nn.h - the numeric kernels of the GPT-2 engine, as llm.c-style
 * _forward/_backward pairs over float pointers. Shapes are given in the
 * comments: N rows (= B*T tokens), C channels, OC output channels.
 *
 * Conventions:
 *  - Outputs first. Backward passes ACCUMULATE (+=) into every gradient they
 *    write (dinp, dw, db), so callers zero gradients once per step.
 *  - A NULL gradient pointer means "not wanted" (frozen weight, or the input
 *    needs no gradient): the work for it is skipped.
 *  - Weights follow Hugging Face GPT-2's Conv1D layout: w is [C, OC] (in, out),
 *    so y = x @ w + b is a plain row-major sgemm with no transpose.
 *  - Every large product is a cblas_sgemm; elementwise passes are fused loops
 *    with OpenMP over rows. Results are deterministic for a fixed thread count.
 * Thread-safe for distinct buffers; allocates nothing. */
#ifndef SL_NN_H
#define SL_NN_H
#include <stddef.h>
#include <stdint.h>

/* out[N,C] = (inp - mean) * rstd * w + b; mean[N], rstd[N] cached. */
void sl_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *w, const float *b, int N, int C, float eps);
/* dinp[N,C] += ..., dw[C] += ..., db[C] += ... (each may be NULL). */
void sl_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, const float *mean,
                           const float *rstd, int N, int C);

/* out[N,OC] = inp[N,C] @ w[C,OC] + b[OC] (b may be NULL). With accumulate,
 * out += instead of =. */
void sl_linear_forward(float *out, const float *inp, const float *w, const float *b, int N,
                       int C, int OC, int accumulate);
/* dinp[N,C] += dout @ w^T; dw[C,OC] += inp^T @ dout; db[OC] += sum_n dout. */
void sl_linear_backward(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, int N, int C, int OC);

/* LoRA branch added to a linear output (Hu et al. 2021, PEFT layout):
 * u[N,r] = inp @ A^T with A[r,C]; out[N,OC] += scale * u @ B^T with B[OC,r]. */
void sl_lora_branch_forward(float *out, float *u, const float *inp, const float *A,
                            const float *B, int N, int C, int OC, int r, float scale);
/* du[N,r] is scratch. dA[r,C] +=, dB[OC,r] +=, dinp[N,C] += (each may be NULL). */
void sl_lora_branch_backward(float *dinp, float *dA, float *dB, float *du, const float *dout,
                             const float *inp, const float *u, const float *A, const float *B,
                             int N, int C, int OC, int r, float scale);

/* tanh-approximate GELU ("gelu_new"): out[n] = 0.5 x (1 + tanh(k (x + 0.044715 x^3))). */
void sl_gelu_forward(float *out, const float *inp, size_t n);
void sl_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* Causal multi-head self-attention.
 * qkv[B,T,3C] holds q | k | v, head h using channels [h*hs, (h+1)*hs) of each.
 * att[B,NH,T,T] caches the softmax probabilities (upper triangle zero).
 * out[B,T,C] = concat_h softmax(q k^T / sqrt(hs), causal) v. */
void sl_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                          int NH);
/* dqkv[B,T,3C] +=; datt[B,NH,T,T] is scratch (overwritten). */
void sl_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                           const float *att, int B, int T, int C, int NH);

/* Tied lm_head + softmax cross-entropy, in row chunks so the [N, V] logits
 * never exist at once (the workload is V = 50257: a full logits matrix is
 * 100 MB at N = 512 and would be streamed through memory several times).
 * x[N,C] final hidden states, wte[V,C]. targets[N] (-1 = ignore).
 * losses[N] gets each row's NLL in nats (0 for ignored rows).
 * If dx != NULL: dx[N,C] = d(mean loss)/dx, i.e. dlogits = (softmax - onehot)
 * * dscale, computed in the same pass; if dwte != NULL also dwte += dlogits^T x.
 * scratch holds chunk*V floats (see sl_lmhead_scratch). Returns the number
 * of non-ignored rows. */
int sl_lmhead_xent(float *losses, float *dx, float *dwte, float *scratch, const float *x,
                   const float *wte, const int32_t *targets, int N, int C, int V,
                   float dscale);
/* Logits of selected rows only (for generation): logits[n_rows, V]. */
void sl_lmhead_logits(float *logits, const float *x, const float *wte, int n_rows, int C,
                      int V);
size_t sl_lmhead_scratch(int V);
#define SL_LMHEAD_CHUNK 128

/* Vectorisable expf (max relative error ~2e-7 on [-87, 88]; 0 below). */
float sl_expf(float x);

#endif
