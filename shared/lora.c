#include "shared/lora.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shared/rng.h"

static void target_dims(const sl_gpt2 *m, int target, int *in, int *out)
{
    switch (target) {
    case 0: *in = m->C; *out = 3 * m->C; break;
    case 1: *in = m->C; *out = m->C; break;
    case 2: *in = m->C; *out = m->F; break;
    default: *in = m->F; *out = m->C; break;
    }
}

static float *target_weight(sl_gpt2 *m, int layer, int target)
{
    sl_gpt2_layer *w = &m->layers[layer];
    float *const ws[SL_LORA_NTARGETS] = {w->attn_w, w->attnproj_w, w->fc_w, w->fcproj_w};
    return ws[target];
}

int sl_lora_create(sl_lora **out, const sl_gpt2 *m, int r, float alpha, unsigned targets,
                   const int *layers, int nlayers, uint64_t seed, sl_err *err)
{
    if (r < 1 || r > SL_LORA_MAX_RANK)
        return sl_err_set(err, SL_EINVAL, "lora: rank %d outside 1..%d", r, SL_LORA_MAX_RANK);
    if (!(alpha > 0.0f) || !isfinite(alpha))
        return sl_err_set(err, SL_EINVAL, "lora: alpha %g must be positive", (double)alpha);
    if (targets == 0 || targets >= (1u << SL_LORA_NTARGETS))
        return sl_err_set(err, SL_EINVAL, "lora: target set 0x%x invalid", targets);
    uint8_t *on = calloc((size_t)m->L, 1);
    if (!on)
        return sl_err_set(err, SL_ENOMEM, "lora: out of memory");
    for (int i = 0; i < nlayers; i++) {
        if (layers[i] < 0 || layers[i] >= m->L) {
            free(on);
            return sl_err_set(err, SL_EINVAL, "lora: layer %d outside 0..%d", layers[i], m->L - 1);
        }
        on[layers[i]] = 1;
    }
    if (!layers || nlayers == 0)
        memset(on, 1, (size_t)m->L);

    sl_lora *l = calloc(1, sizeof *l);
    int nslots = 0;
    for (int i = 0; i < m->L; i++)
        for (int t = 0; t < SL_LORA_NTARGETS; t++)
            nslots += on[i] && (targets >> t & 1u);
    if (l) {
        l->slots = calloc((size_t)nslots, sizeof *l->slots);
        l->slot_of = malloc(sizeof(int) * (size_t)m->L * SL_LORA_NTARGETS);
    }
    if (!l || !l->slots || !l->slot_of)
        goto nomem;
    l->r = r;
    l->alpha = alpha;
    l->scale = alpha / (float)r;
    l->targets = targets;
    l->L = m->L;
    l->nslots = nslots;
    size_t off = 0;
    int s = 0;
    for (int i = 0; i < m->L; i++) {
        for (int t = 0; t < SL_LORA_NTARGETS; t++) {
            l->slot_of[i * SL_LORA_NTARGETS + t] = -1;
            if (!on[i] || !(targets >> t & 1u))
                continue;
            sl_lora_slot *sl = &l->slots[s];
            sl->layer = i;
            sl->target = t;
            target_dims(m, t, &sl->in, &sl->out);
            sl->offset = off;
            off += (size_t)r * (size_t)(sl->in + sl->out);
            l->slot_of[i * SL_LORA_NTARGETS + t] = s++;
        }
    }
    l->nparams = off;
    l->params = calloc(off ? off : 1, sizeof(float));
    if (!l->params)
        goto nomem;
    sl_rng rng;
    sl_rng_seed(&rng, seed);
    for (s = 0; s < nslots; s++) {
        sl_lora_slot *sl = &l->slots[s];
        sl->A = l->params + sl->offset;
        sl->B = sl->A + (size_t)r * sl->in;
        /* Kaiming-uniform with a = sqrt(5) (PEFT's init): bound = 1/sqrt(fan_in). */
        double bound = 1.0 / sqrt((double)sl->in);
        for (size_t j = 0; j < (size_t)r * sl->in; j++)
            sl->A[j] = (float)((2.0 * sl_rng_uniform(&rng) - 1.0) * bound);
    }
    free(on);
    *out = l;
    return 0;
nomem:
    free(on);
    sl_lora_free(l);
    return sl_err_set(err, SL_ENOMEM, "lora: cannot allocate the adapter");
}

void sl_lora_free(sl_lora *l)
{
    if (!l)
        return;
    free(l->params);
    free(l->slots);
    free(l->slot_of);
    free(l);
}

const sl_lora_slot *sl_lora_slot_at(const sl_lora *l, int layer, int target)
{
    if (layer < 0 || layer >= l->L || target < 0 || target >= SL_LORA_NTARGETS)
        return NULL;
    int s = l->slot_of[layer * SL_LORA_NTARGETS + target];
    return s < 0 ? NULL : &l->slots[s];
}

void sl_lora_merge(sl_gpt2 *m, const sl_lora *l, float sign)
{
    for (int s = 0; s < l->nslots; s++) {
        const sl_lora_slot *sl = &l->slots[s];
        float *W = target_weight(m, sl->layer, sl->target);
        /* W[in,out] += sign*scale * A^T[in,r] @ B^T[r,out]. */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, sl->in, sl->out, l->r,
                    sign * l->scale, sl->A, sl->in, sl->B, l->r, 1.0f, W, sl->out);
    }
}
