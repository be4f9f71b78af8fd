#include "shared/gpt2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/lora.h"
#include "shared/nn.h"
#include "shared/rng.h"

/* ---- model ------------------------------------------------------------- */

static const char *const kind_suffix[SL_T_PER_LAYER] = {
    "ln_1.weight",      "ln_1.bias",      "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",      "ln_2.bias",
    "mlp.c_fc.weight",  "mlp.c_fc.bias",  "mlp.c_proj.weight",  "mlp.c_proj.bias",
};

/* Shape of a block tensor kind. */
static void kind_shape(const sl_gpt2_config *cfg, int kind, int *ndim, int64_t shape[2])
{
    int64_t C = cfg->n_embd, F = cfg->n_inner > 0 ? cfg->n_inner : 4 * cfg->n_embd;
    static const int nd[SL_T_PER_LAYER] = {1, 1, 2, 1, 2, 1, 1, 1, 2, 1, 2, 1};
    int64_t s0[SL_T_PER_LAYER] = {C, C, C, 3 * C, C, C, C, C, C, F, F, C};
    int64_t s1[SL_T_PER_LAYER] = {0, 0, 3 * C, 0, C, 0, 0, 0, F, 0, C, 0};
    *ndim = nd[kind];
    shape[0] = s0[kind];
    shape[1] = s1[kind];
}

/* Floats a model of this configuration holds, in our layout. */
static size_t count_params(const sl_gpt2_config *cfg)
{
    size_t C = (size_t)cfg->n_embd;
    size_t n = (size_t)cfg->vocab_size * C + (size_t)cfg->n_positions * C + 2 * C;
    for (int k = 0; k < SL_T_PER_LAYER; k++) {
        int nd;
        int64_t s[2];
        kind_shape(cfg, k, &nd, s);
        n += (size_t)cfg->n_layer * (size_t)s[0] * (size_t)(nd == 2 ? s[1] : 1);
    }
    return n;
}

void sl_gpt2_tensor_info(const sl_gpt2 *m, int i, sl_gpt2_tensor *t)
{
    memset(t, 0, sizeof *t);
    t->layer = -1;
    t->kind = -1;
    int last = SL_GPT2_LAYER0 + m->L * SL_T_PER_LAYER;
    if (i == SL_GPT2_WTE || i == SL_GPT2_WPE) {
        snprintf(t->name, sizeof t->name, "transformer.%s.weight", i == SL_GPT2_WTE ? "wte" : "wpe");
        t->ndim = 2;
        t->shape[0] = i == SL_GPT2_WTE ? m->V : m->maxT;
        t->shape[1] = m->C;
        t->data = i == SL_GPT2_WTE ? m->wte : m->wpe;
        t->decay = 1;
    } else if (i >= last) {
        snprintf(t->name, sizeof t->name, "transformer.ln_f.%s", i == last ? "weight" : "bias");
        t->ndim = 1;
        t->shape[0] = m->C;
        t->data = i == last ? m->lnf_w : m->lnf_b;
    } else {
        int l = (i - SL_GPT2_LAYER0) / SL_T_PER_LAYER, k = (i - SL_GPT2_LAYER0) % SL_T_PER_LAYER;
        snprintf(t->name, sizeof t->name, "transformer.h.%d.%s", l, kind_suffix[k]);
        kind_shape(&m->cfg, k, &t->ndim, t->shape);
        t->layer = l;
        t->kind = k;
        t->decay = t->ndim == 2;
        float *const *p = (float *const *)&m->layers[l];
        t->data = p[k];
    }
    t->numel = (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1);
}

int sl_gpt2_tensor_find(const sl_gpt2 *m, const char *name)
{
    char full[128];
    if (strncmp(name, "transformer.", 12) != 0) {
        snprintf(full, sizeof full, "transformer.%s", name);
        name = full;
    }
    for (int i = 0; i < m->ntensors; i++) {
        sl_gpt2_tensor t;
        sl_gpt2_tensor_info(m, i, &t);
        if (strcmp(t.name, name) == 0)
            return i;
    }
    return -1;
}

int sl_gpt2_create(sl_gpt2 **out, const sl_gpt2_config *cfg, sl_err *err)
{
    int rc = sl_hfconfig_validate(cfg, err);
    if (rc)
        return rc;
    sl_gpt2 *m = calloc(1, sizeof *m);
    if (!m)
        return sl_err_set(err, SL_ENOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->L = cfg->n_layer;
    m->C = cfg->n_embd;
    m->NH = cfg->n_head;
    m->F = cfg->n_inner > 0 ? cfg->n_inner : 4 * cfg->n_embd;
    m->V = cfg->vocab_size;
    m->maxT = cfg->n_positions;
    m->ntensors = SL_GPT2_LAYER0 + m->L * SL_T_PER_LAYER + 2;
    m->nparams = count_params(cfg);
    m->layers = calloc((size_t)m->L, sizeof *m->layers);
    m->params = calloc(m->nparams, sizeof(float));
    if (!m->layers || !m->params) {
        size_t n = m->nparams;
        sl_gpt2_free(m);
        return sl_err_set(err, SL_ENOMEM, "model: cannot allocate %zu parameters", n);
    }
    /* Carve tensors in canonical order. */
    float *p = m->params;
    m->wte = p;
    p += (size_t)m->V * m->C;
    m->wpe = p;
    p += (size_t)m->maxT * m->C;
    for (int l = 0; l < m->L; l++) {
        float **slot = (float **)&m->layers[l];
        for (int k = 0; k < SL_T_PER_LAYER; k++) {
            int nd;
            int64_t s[2];
            kind_shape(cfg, k, &nd, s);
            slot[k] = p;
            p += (size_t)s[0] * (size_t)(nd == 2 ? s[1] : 1);
        }
    }
    m->lnf_w = p;
    p += m->C;
    m->lnf_b = p;
    p += m->C;
    *out = m;
    return 0;
}

void sl_gpt2_free(sl_gpt2 *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->layers);
    free(m);
}

void sl_gpt2_init_random(sl_gpt2 *m, uint64_t seed)
{
    sl_rng rng;
    sl_rng_seed(&rng, seed);
    double proj_std = 0.02 / sqrt(2.0 * m->L);
    for (int i = 0; i < m->ntensors; i++) {
        sl_gpt2_tensor t;
        sl_gpt2_tensor_info(m, i, &t);
        int is_ln_w = t.kind == SL_T_LN1_W || t.kind == SL_T_LN2_W ||
                      (t.layer < 0 && t.ndim == 1 && strstr(t.name, "weight"));
        if (t.ndim == 2) {
            double sd = (t.kind == SL_T_ATTNPROJ_W || t.kind == SL_T_FCPROJ_W) ? proj_std : 0.02;
            for (size_t j = 0; j < t.numel; j++)
                t.data[j] = (float)(sd * sl_rng_normal(&rng));
        } else {
            float v = is_ln_w ? 1.0f : 0.0f;
            for (size_t j = 0; j < t.numel; j++)
                t.data[j] = v;
        }
    }
}

/* ---- context ----------------------------------------------------------- */

typedef struct layer_act {
    float *ln1, *ln1_mean, *ln1_rstd; /* [N,C], [N], [N] */
    float *qkv;                       /* [N,3C] */
    float *att;                       /* [B,NH,T,T] */
    float *atty;                      /* [N,C] */
    float *res2;                      /* [N,C] residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* [N,C], [N], [N] */
    float *fch, *fch_gelu;            /* [N,F] */
    float *res3;                      /* [N,C] block output */
    float *u[SL_LORA_NTARGETS];       /* [N,r] LoRA inner activations */
} layer_act;

struct sl_gpt2_ctx {
    sl_gpt2 *m;
    sl_lora *lora;
    int B, T;               /* planned maximum */
    int curB, curT;         /* of the last forward */
    int have_grad;          /* last forward prepared backward */
    int fwd_blocks;         /* blocks the last forward ran (L for a whole one), -1 none */
    int lowest;             /* lowest block that needs gradients flowing in */
    int embed_train;        /* wte or wpe trainable */
    uint8_t *trainable;     /* [ntensors] */
    float **grads;          /* [ntensors], NULL if frozen */
    float *lora_grad;
    uint8_t *mem;           /* the one arena */
    size_t bytes;
    /* activations */
    int32_t *inputs;        /* [N] */
    float *encoded;         /* [N,C] */
    layer_act *acts;        /* [L] */
    float *lnf, *lnf_mean, *lnf_rstd, *dlnf; /* [N,C], [N], [N], [N,C] */
    float *losses;          /* [N] */
    float *lm_scratch;      /* [CHUNK, V] */
    /* backward scratch */
    float *dres, *dc1, *dqkv, *datt, *dF1, *dF2, *du;
};

/* Carves buffers from mem (or only counts when mem is NULL). 64-byte aligned. */
typedef struct carver {
    uint8_t *base;
    size_t off;
} carver;

static void *carve(carver *cv, size_t bytes)
{
    size_t off = (cv->off + 63) & ~(size_t)63;
    cv->off = off + bytes;
    return cv->base ? cv->base + off : NULL;
}

#define CARVE_F(cv, n) ((float *)carve(cv, sizeof(float) * (size_t)(n)))

static void layout(sl_gpt2_ctx *c, carver *cv)
{
    sl_gpt2 *m = c->m;
    size_t N = (size_t)c->B * c->T, C = m->C, F = m->F;
    int r = c->lora ? c->lora->r : 0;
    c->inputs = carve(cv, sizeof(int32_t) * N);
    c->encoded = CARVE_F(cv, N * C);
    for (int l = 0; l < m->L; l++) {
        layer_act *a = &c->acts[l];
        a->ln1 = CARVE_F(cv, N * C);
        a->ln1_mean = CARVE_F(cv, N);
        a->ln1_rstd = CARVE_F(cv, N);
        a->qkv = CARVE_F(cv, N * 3 * C);
        a->att = CARVE_F(cv, (size_t)c->B * m->NH * c->T * c->T);
        a->atty = CARVE_F(cv, N * C);
        a->res2 = CARVE_F(cv, N * C);
        a->ln2 = CARVE_F(cv, N * C);
        a->ln2_mean = CARVE_F(cv, N);
        a->ln2_rstd = CARVE_F(cv, N);
        a->fch = CARVE_F(cv, N * F);
        a->fch_gelu = CARVE_F(cv, N * F);
        a->res3 = CARVE_F(cv, N * C);
        for (int k = 0; k < SL_LORA_NTARGETS; k++)
            a->u[k] = (c->lora && sl_lora_slot_at(c->lora, l, k)) ? CARVE_F(cv, N * r) : NULL;
    }
    c->lnf = CARVE_F(cv, N * C);
    c->lnf_mean = CARVE_F(cv, N);
    c->lnf_rstd = CARVE_F(cv, N);
    c->dlnf = CARVE_F(cv, N * C);
    c->losses = CARVE_F(cv, N);
    c->lm_scratch = CARVE_F(cv, sl_lmhead_scratch(m->V));
    c->dres = CARVE_F(cv, N * C);
    c->dc1 = CARVE_F(cv, N * C);
    c->dqkv = CARVE_F(cv, N * 3 * C);
    c->datt = CARVE_F(cv, (size_t)c->B * m->NH * c->T * c->T);
    c->dF1 = CARVE_F(cv, N * F);
    c->dF2 = CARVE_F(cv, N * F);
    c->du = r ? CARVE_F(cv, N * (size_t)r) : NULL;
    for (int i = 0; i < m->ntensors; i++) {
        c->grads[i] = NULL;
        if (c->trainable[i]) {
            sl_gpt2_tensor t;
            sl_gpt2_tensor_info(m, i, &t);
            c->grads[i] = CARVE_F(cv, t.numel);
        }
    }
    c->lora_grad = c->lora ? CARVE_F(cv, c->lora->nparams) : NULL;
}

int sl_gpt2_ctx_create(sl_gpt2_ctx **out, sl_gpt2 *m, sl_lora *lora, const uint8_t *trainable,
                       int B, int T, sl_err *err)
{
    if (B < 1 || T < 1 || T > m->maxT)
        return sl_err_set(err, SL_EINVAL, "context: batch %d x %d invalid (context limit %d)", B,
                          T, m->maxT);
    if ((size_t)B * T > (size_t)1 << 24)
        return sl_err_set(err, SL_ELIMIT, "context: %d x %d tokens per batch is too many", B, T);
    if (lora && lora->L != m->L)
        return sl_err_set(err, SL_EINVAL, "context: adapter made for %d layers, model has %d",
                          lora->L, m->L);
    sl_gpt2_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return sl_err_set(err, SL_ENOMEM, "context: out of memory");
    c->m = m;
    c->lora = lora;
    c->B = B;
    c->T = T;
    c->fwd_blocks = -1;
    c->acts = calloc((size_t)m->L, sizeof *c->acts);
    c->trainable = calloc((size_t)m->ntensors, 1);
    c->grads = calloc((size_t)m->ntensors, sizeof *c->grads);
    if (!c->acts || !c->trainable || !c->grads)
        goto nomem;
    if (trainable)
        memcpy(c->trainable, trainable, (size_t)m->ntensors);
    /* Gradients must flow down to the lowest block holding anything trainable. */
    c->embed_train = c->trainable[SL_GPT2_WPE] || c->trainable[SL_GPT2_WTE];
    c->lowest = m->L;
    for (int i = SL_GPT2_LAYER0; i < SL_GPT2_LAYER0 + m->L * SL_T_PER_LAYER; i++)
        if (c->trainable[i] && (i - SL_GPT2_LAYER0) / SL_T_PER_LAYER < c->lowest)
            c->lowest = (i - SL_GPT2_LAYER0) / SL_T_PER_LAYER;
    if (lora)
        for (int s = 0; s < lora->nslots; s++)
            if (lora->slots[s].layer < c->lowest)
                c->lowest = lora->slots[s].layer;
    if (c->embed_train)
        c->lowest = 0;

    carver count = {NULL, 0};
    layout(c, &count);
    c->bytes = count.off + 64;
    c->mem = aligned_alloc(64, (c->bytes + 63) & ~(size_t)63);
    if (!c->mem)
        goto nomem;
    memset(c->mem, 0, c->bytes); /* touch every page now, not inside a step */
    carver real = {c->mem, 0};
    layout(c, &real);
    *out = c;
    return 0;
nomem:
    sl_gpt2_ctx_free(c);
    return sl_err_set(err, SL_ENOMEM, "context: cannot allocate activations for %d x %d", B, T);
}

void sl_gpt2_ctx_free(sl_gpt2_ctx *c)
{
    if (!c)
        return;
    free(c->mem);
    free(c->acts);
    free(c->trainable);
    free(c->grads);
    free(c);
}

size_t sl_gpt2_ctx_bytes(const sl_gpt2_ctx *c) { return c->bytes; }
float *sl_gpt2_grad(sl_gpt2_ctx *c, int i) { return c->grads[i]; }
float *sl_gpt2_lora_grad(sl_gpt2_ctx *c) { return c->lora_grad; }
const float *sl_gpt2_losses(const sl_gpt2_ctx *c) { return c->losses; }

void sl_gpt2_zero_grad(sl_gpt2_ctx *c)
{
    for (int i = 0; i < c->m->ntensors; i++) {
        if (c->grads[i]) {
            sl_gpt2_tensor t;
            sl_gpt2_tensor_info(c->m, i, &t);
            memset(c->grads[i], 0, sizeof(float) * t.numel);
        }
    }
    if (c->lora_grad)
        memset(c->lora_grad, 0, sizeof(float) * c->lora->nparams);
}

/* Index of the weight tensor of block l, kind k. */
static int tidx(int l, int k) { return SL_GPT2_LAYER0 + l * SL_T_PER_LAYER + k; }

static const sl_lora_slot *slot_for(const sl_gpt2_ctx *c, int l, int target)
{
    return c->lora ? sl_lora_slot_at(c->lora, l, target) : NULL;
}

/* Linear layer plus its LoRA branch, if any. */
static void linear_fwd(sl_gpt2_ctx *c, int l, int target, float *out, float *u, const float *inp,
                       const float *w, const float *b, int N, int IN, int OUT, int accumulate)
{
    sl_linear_forward(out, inp, w, b, N, IN, OUT, accumulate);
    const sl_lora_slot *s = slot_for(c, l, target);
    if (s)
        sl_lora_branch_forward(out, u, inp, s->A, s->B, N, IN, OUT, c->lora->r, c->lora->scale);
}

static void linear_bwd(sl_gpt2_ctx *c, int l, int target, int wkind, float *dinp,
                       const float *dout, const float *inp, const float *u, const float *w,
                       int N, int IN, int OUT)
{
    sl_linear_backward(dinp, c->grads[tidx(l, wkind)], c->grads[tidx(l, wkind + 1)], dout, inp, w,
                       N, IN, OUT);
    const sl_lora_slot *s = slot_for(c, l, target);
    if (s) {
        float *gA = c->lora_grad + s->offset;
        float *gB = gA + (size_t)c->lora->r * s->in;
        sl_lora_branch_backward(dinp, gA, gB, c->du, dout, inp, u, s->A, s->B, N, IN, OUT,
                                c->lora->r, c->lora->scale);
    }
}

/* Embeddings and blocks [0, nblocks); the hidden state after them, or NULL
 * (nothing computed) for bad input. */
static const float *run_blocks(sl_gpt2_ctx *c, const int32_t *inputs, int B, int T, int nblocks)
{
    sl_gpt2 *m = c->m;
    c->have_grad = 0;
    c->fwd_blocks = -1;
    if (B < 1 || T < 1 || B > c->B || T > c->T || nblocks < 0 || nblocks > m->L)
        return NULL;
    int N = B * T, C = m->C, F = m->F;
    for (int n = 0; n < N; n++)
        if (inputs[n] < 0 || inputs[n] >= m->V)
            return NULL;
    c->curB = B;
    c->curT = T;
    memcpy(c->inputs, inputs, sizeof(int32_t) * (size_t)N);

#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *te = m->wte + (size_t)inputs[n] * C, *pe = m->wpe + (size_t)(n % T) * C;
        float *o = c->encoded + (size_t)n * C;
        for (int i = 0; i < C; i++)
            o[i] = te[i] + pe[i];
    }
    const float *x = c->encoded;
    float eps = m->cfg.layer_norm_epsilon;
    for (int l = 0; l < nblocks; l++) {
        sl_gpt2_layer *w = &m->layers[l];
        layer_act *a = &c->acts[l];
        sl_layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, N, C, eps);
        linear_fwd(c, l, 0, a->qkv, a->u[0], a->ln1, w->attn_w, w->attn_b, N, C, 3 * C, 0);
        sl_attention_forward(a->atty, a->att, a->qkv, B, T, C, m->NH);
        memcpy(a->res2, x, sizeof(float) * (size_t)N * C);
        linear_fwd(c, l, 1, a->res2, a->u[1], a->atty, w->attnproj_w, w->attnproj_b, N, C, C, 1);
        sl_layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, w->ln2_w, w->ln2_b, N, C,
                             eps);
        linear_fwd(c, l, 2, a->fch, a->u[2], a->ln2, w->fc_w, w->fc_b, N, C, F, 0);
        sl_gelu_forward(a->fch_gelu, a->fch, (size_t)N * F);
        memcpy(a->res3, a->res2, sizeof(float) * (size_t)N * C);
        linear_fwd(c, l, 3, a->res3, a->u[3], a->fch_gelu, w->fcproj_w, w->fcproj_b, N, F, C, 1);
        x = a->res3;
    }
    if (nblocks == m->L)
        sl_layernorm_forward(c->lnf, c->lnf_mean, c->lnf_rstd, x, m->lnf_w, m->lnf_b, N, C, eps);
    c->fwd_blocks = nblocks;
    return x;
}

float sl_gpt2_forward(sl_gpt2_ctx *c, const int32_t *inputs, const int32_t *targets, int B,
                      int T, int want_grad)
{
    sl_gpt2 *m = c->m;
    c->have_grad = 0;
    if (want_grad && !targets)
        return NAN;
    if (!run_blocks(c, inputs, B, T, m->L))
        return NAN;
    int N = B * T, C = m->C;
    if (!targets)
        return NAN;
    int count = 0;
    for (int n = 0; n < N; n++)
        count += targets[n] >= 0 && targets[n] < m->V;
    float dscale = count ? 1.0f / (float)count : 0.0f;
    sl_lmhead_xent(c->losses, want_grad ? c->dlnf : NULL,
                   want_grad ? c->grads[SL_GPT2_WTE] : NULL, c->lm_scratch, c->lnf, m->wte,
                   targets, N, C, m->V, dscale);
    double sum = 0.0; /* double: the logged loss must not depend on N's size */
    for (int n = 0; n < N; n++)
        sum += c->losses[n];
    c->have_grad = want_grad;
    return count ? (float)(sum / count) : NAN;
}

/* Backward of the last forward from dfinal (d final LayerNorm output, or
 * NULL) and dh (d hidden after nblocks blocks, or NULL). */
static void backward_core(sl_gpt2_ctx *c, int nblocks, const float *dh, const float *dfinal)
{
    sl_gpt2 *m = c->m;
    int B = c->curB, T = c->curT, N = B * T, C = m->C, F = m->F, L = m->L;
    size_t NC = (size_t)N * C, NF = (size_t)N * F;
    float **g = c->grads;
    int last = SL_GPT2_LAYER0 + L * SL_T_PER_LAYER;
    const float *xL = L ? c->acts[L - 1].res3 : c->encoded;

    memset(c->dres, 0, sizeof(float) * NC);
    if (dfinal)
        sl_layernorm_backward(c->lowest < L ? c->dres : NULL, g[last], g[last + 1], dfinal, xL,
                              m->lnf_w, c->lnf_mean, c->lnf_rstd, N, C);
    /* Without a gradient at the top, the blocks above nblocks get none. */
    int top = dfinal ? L : nblocks;
    if (dh && nblocks == 0)
        for (size_t i = 0; i < NC; i++)
            c->dres[i] += dh[i];
    for (int l = top - 1; l >= c->lowest; l--) {
        if (dh && l == nblocks - 1)
            for (size_t i = 0; i < NC; i++)
                c->dres[i] += dh[i];
        sl_gpt2_layer *w = &m->layers[l];
        layer_act *a = &c->acts[l];
        const float *xin = l ? c->acts[l - 1].res3 : c->encoded;
        /* Gradient below this block is needed by lower blocks or embeddings. */
        int need_below = l > c->lowest || c->embed_train;
        int need_ln1 = need_below || g[tidx(l, SL_T_LN1_W)] || g[tidx(l, SL_T_LN1_B)];

        /* MLP: res3 = res2 + fcproj(gelu(fc(ln2(res2)))); dres is d res3. */
        memset(c->dF1, 0, sizeof(float) * NF);
        linear_bwd(c, l, 3, SL_T_FCPROJ_W, c->dF1, c->dres, a->fch_gelu, a->u[3], w->fcproj_w, N,
                   F, C);
        memset(c->dF2, 0, sizeof(float) * NF);
        sl_gelu_backward(c->dF2, a->fch, c->dF1, NF);
        memset(c->dc1, 0, sizeof(float) * NC);
        linear_bwd(c, l, 2, SL_T_FC_W, c->dc1, c->dF2, a->ln2, a->u[2], w->fc_w, N, C, F);
        sl_layernorm_backward(c->dres, g[tidx(l, SL_T_LN2_W)], g[tidx(l, SL_T_LN2_B)], c->dc1,
                              a->res2, w->ln2_w, a->ln2_mean, a->ln2_rstd, N, C);
        /* Attention: res2 = x + proj(attn(c_attn(ln1(x)))); dres is d res2. */
        memset(c->dc1, 0, sizeof(float) * NC);
        linear_bwd(c, l, 1, SL_T_ATTNPROJ_W, c->dc1, c->dres, a->atty, a->u[1], w->attnproj_w, N,
                   C, C);
        memset(c->dqkv, 0, sizeof(float) * NC * 3);
        sl_attention_backward(c->dqkv, c->datt, c->dc1, a->qkv, a->att, B, T, C, m->NH);
        if (need_ln1)
            memset(c->dc1, 0, sizeof(float) * NC);
        linear_bwd(c, l, 0, SL_T_ATTN_W, need_ln1 ? c->dc1 : NULL, c->dqkv, a->ln1, a->u[0],
                   w->attn_w, N, C, 3 * C);
        if (need_ln1)
            sl_layernorm_backward(need_below ? c->dres : NULL, g[tidx(l, SL_T_LN1_W)],
                                  g[tidx(l, SL_T_LN1_B)], c->dc1, xin, w->ln1_w, a->ln1_mean,
                                  a->ln1_rstd, N, C);
    }
    if (c->embed_train && c->lowest == 0 && (dfinal || dh)) {
        /* dres is d encoded; scatter into the embeddings in token order
         * (sequential: repeated ids make a parallel scatter racy). */
        float *gte = g[SL_GPT2_WTE], *gpe = g[SL_GPT2_WPE];
        for (int n = 0; n < N; n++) {
            const float *d = c->dres + (size_t)n * C;
            if (gte) {
                float *o = gte + (size_t)c->inputs[n] * C;
                for (int i = 0; i < C; i++)
                    o[i] += d[i];
            }
            if (gpe) {
                float *o = gpe + (size_t)(n % T) * C;
                for (int i = 0; i < C; i++)
                    o[i] += d[i];
            }
        }
    }
}

void sl_gpt2_backward(sl_gpt2_ctx *c)
{
    if (!c->have_grad)
        return;
    c->have_grad = 0;
    backward_core(c, c->m->L, NULL, c->dlnf);
}

const float *sl_gpt2_forward_hidden(sl_gpt2_ctx *c, const int32_t *inputs, int B, int T,
                                    int nblocks)
{
    return run_blocks(c, inputs, B, T, nblocks);
}

const float *sl_gpt2_hidden(const sl_gpt2_ctx *c, int nblocks)
{
    if (nblocks < 0 || nblocks > c->fwd_blocks)
        return NULL;
    return nblocks ? c->acts[nblocks - 1].res3 : c->encoded;
}

const float *sl_gpt2_final(const sl_gpt2_ctx *c)
{
    return c->fwd_blocks == c->m->L ? c->lnf : NULL;
}

int sl_gpt2_backward_hidden(sl_gpt2_ctx *c, int nblocks, const float *dh, const float *dfinal,
                            sl_err *err)
{
    if (c->fwd_blocks < 0 || nblocks < 0 || nblocks > c->fwd_blocks)
        return sl_err_set(err, SL_ESTATE,
                          "backward from block output %d: the last forward ran %d blocks",
                          nblocks, c->fwd_blocks);
    if (dfinal && c->fwd_blocks != c->m->L)
        return sl_err_set(err, SL_ESTATE,
                          "backward from the final LayerNorm: the last forward stopped after "
                          "block %d of %d",
                          c->fwd_blocks, c->m->L);
    c->have_grad = 0;
    backward_core(c, nblocks, dh, dfinal);
    return 0;
}

void sl_gpt2_logits_at(sl_gpt2_ctx *c, int b, int t, float *logits)
{
    const float *x = c->lnf + ((size_t)b * c->curT + t) * c->m->C;
    sl_lmhead_logits(logits, x, c->m->wte, 1, c->m->C, c->m->V);
}

double sl_gpt2_step_flops(const sl_gpt2_ctx *c, int B, int T, int backward)
{
    const sl_gpt2 *m = c->m;
    double N = (double)B * T, C = m->C, F = m->F, V = m->V, L = m->L;
    /* Per block: c_attn 3C^2, c_proj C^2, fc CF, fcproj FC (multiply-adds per
     * token), attention scores + values 2*T*C per token (full square, as sgemm
     * computes it). */
    double block = N * (3 * C * C + C * C + 2 * C * F) + 2.0 * N * T * C;
    double head = N * C * V;
    double lora = 0;
    if (c->lora)
        for (int s = 0; s < c->lora->nslots; s++)
            lora += N * c->lora->r * (c->lora->slots[s].in + c->lora->slots[s].out);
    double fwd = 2.0 * (L * block + head + lora);
    if (!backward)
        return fwd;
    /* Backward: input gradients for every product (same cost as forward),
     * weight gradients only for trainable tensors, LoRA both. */
    double bwd = 2.0 * (L * block + head + 2 * lora);
    for (int i = 0; i < m->ntensors; i++) {
        if (!c->grads[i])
            continue;
        sl_gpt2_tensor t;
        sl_gpt2_tensor_info(m, i, &t);
        if (t.ndim == 2)
            bwd += 2.0 * (i == SL_GPT2_WPE ? 0 : N * (double)t.numel);
    }
    return fwd + bwd;
}
