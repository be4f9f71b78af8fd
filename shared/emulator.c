#include "shared/emulator.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/adapter.h"

int sl_emulator_plan(int L, int bottom, int top, double drop, const int *keep, int nkeep,
                     int *map, int *n, double *achieved, sl_err *err)
{
    if (L < 1 || L > SL_EMUMETA_MAX_LAYERS)
        return sl_err_set(err, SL_EINVAL, "emulator: %d blocks outside 1..%d", L,
                          SL_EMUMETA_MAX_LAYERS);
    if (bottom < 0 || top < 0 || bottom + top > L)
        return sl_err_set(err, SL_EINVAL,
                          "emulator: %d bottom + %d top adapter blocks do not fit %d blocks",
                          bottom, top, L);
    int M = L - bottom - top, k = 0;
    uint8_t on[SL_EMUMETA_MAX_LAYERS] = {0};
    if (nkeep > 0) {
        for (int i = 0; i < nkeep; i++) {
            if (keep[i] < bottom || keep[i] >= L - top)
                return sl_err_set(err, SL_EINVAL,
                                  "emulator: kept block %d is not a middle block (%d..%d)",
                                  keep[i], bottom, L - top - 1);
            if (on[keep[i]])
                return sl_err_set(err, SL_EINVAL, "emulator: block %d kept twice", keep[i]);
            on[keep[i]] = 1;
        }
        k = nkeep;
    } else {
        if (!(drop >= 0 && drop < 1))
            return sl_err_set(err, SL_EINVAL, "emulator: drop ratio %g outside [0, 1)", drop);
        if (M > 0) {
            k = (int)lround(M * (1.0 - drop));
            if (k < 1)
                k = 1;
            if (k > M)
                k = M;
            for (int i = 0; i < k; i++) {
                int idx = k == 1 ? 0 : (int)lround((double)i * (M - 1) / (k - 1));
                on[bottom + idx] = 1;
            }
        }
    }
    int c = 0;
    for (int i = 0; i < L; i++)
        if (i < bottom || i >= L - top || on[i])
            map[c++] = i;
    *n = c;
    if (achieved)
        *achieved = M > 0 ? 1.0 - (double)k / M : 0.0;
    return 0;
}

int sl_emulator_build(sl_gpt2 **out, const sl_gpt2 *full, const int *map, int n, sl_err *err)
{
    if (n < 1 || n > full->L)
        return sl_err_set(err, SL_EINVAL, "emulator: %d blocks outside 1..%d", n, full->L);
    for (int i = 0; i < n; i++)
        if (map[i] < 0 || map[i] >= full->L || (i > 0 && map[i] <= map[i - 1]))
            return sl_err_set(err, SL_EINVAL,
                              "emulator: layer map entry %d (%d) not ascending within 0..%d", i,
                              map[i], full->L - 1);
    sl_gpt2_config cfg = full->cfg;
    cfg.n_layer = n;
    sl_gpt2 *e = NULL;
    int rc = sl_gpt2_create(&e, &cfg, err);
    if (rc)
        return rc;
    for (int i = 0; i < e->ntensors; i++) {
        sl_gpt2_tensor t, s;
        sl_gpt2_tensor_info(e, i, &t);
        int j = i;
        if (t.layer >= 0)
            j = SL_GPT2_LAYER0 + map[t.layer] * SL_T_PER_LAYER + t.kind;
        else if (i >= SL_GPT2_LAYER0)
            j = i + (full->L - n) * SL_T_PER_LAYER; /* ln_f */
        sl_gpt2_tensor_info(full, j, &s);
        memcpy(t.data, s.data, t.numel * sizeof(float));
    }
    *out = e;
    return 0;
}

int sl_emulator_check(const sl_emumeta *meta, const sl_gpt2 *emu, const sl_gpt2 *full,
                      sl_err *err)
{
    int rc = sl_emumeta_validate(meta, err);
    if (rc)
        return rc;
    if (emu && emu->L != meta->nblocks)
        return sl_err_set(err, SL_EINVAL,
                          "the emulator model has %d blocks but its manifest's layer_map has %d",
                          emu->L, meta->nblocks);
    if (full && full->L != meta->full_layers)
        return sl_err_set(err, SL_EINVAL,
                          "the full model has %d blocks but the manifest says full_layers %d",
                          full->L, meta->full_layers);
    return 0;
}

void sl_emulator_adapter_blocks(const sl_emumeta *meta, int *layers, int *n)
{
    int k = 0;
    for (int i = 0; i < meta->nblocks; i++)
        if (sl_emumeta_is_adapter(meta, i))
            layers[k++] = i;
    *n = k;
}

int sl_emulator_lora_remap(sl_lora **out, const sl_lora *src, const int *map, int n,
                           int to_full, int dst_L, sl_err *err)
{
    if (n < 1 || dst_L < 1 || (!to_full && dst_L != n) || (to_full && src->L != n))
        return sl_err_set(err, SL_EINVAL,
                          "lora remap: adapter for %d blocks, map of %d, target of %d blocks "
                          "do not fit together",
                          src->L, n, dst_L);
    int *to = malloc(sizeof(int) * (size_t)src->L);
    if (!to)
        return sl_err_set(err, SL_ENOMEM, "lora remap: out of memory");
    for (int l = 0; l < src->L; l++)
        to[l] = -1;
    for (int i = 0; i < n; i++) {
        if (map[i] < 0 || (to_full && map[i] >= dst_L) || (!to_full && map[i] >= src->L) ||
            (i > 0 && map[i] <= map[i - 1])) {
            free(to);
            return sl_err_set(err, SL_EINVAL, "lora remap: map entry %d (%d) out of order or range",
                              i, map[i]);
        }
        if (to_full)
            to[i] = map[i];
        else
            to[map[i]] = i;
    }
    for (int s = 0; s < src->nslots; s++)
        if (to[src->slots[s].layer] < 0) {
            int bad = src->slots[s].layer;
            free(to);
            return sl_err_set(err, SL_EINVAL,
                              "the adapter adapts block %d, which the emulator does not keep",
                              bad);
        }
    sl_lora *l = calloc(1, sizeof *l);
    if (l) {
        l->slots = calloc((size_t)(src->nslots ? src->nslots : 1), sizeof *l->slots);
        l->slot_of = malloc(sizeof(int) * (size_t)dst_L * SL_LORA_NTARGETS);
        l->params = malloc(sizeof(float) * (src->nparams ? src->nparams : 1));
    }
    if (!l || !l->slots || !l->slot_of || !l->params) {
        free(to);
        sl_lora_free(l);
        return sl_err_set(err, SL_ENOMEM, "lora remap: out of memory");
    }
    l->r = src->r;
    l->alpha = src->alpha;
    l->scale = src->scale;
    l->targets = src->targets;
    l->L = dst_L;
    l->nslots = src->nslots;
    l->nparams = src->nparams;
    memcpy(l->params, src->params, sizeof(float) * src->nparams);
    for (int i = 0; i < dst_L * SL_LORA_NTARGETS; i++)
        l->slot_of[i] = -1;
    for (int s = 0; s < src->nslots; s++) {
        sl_lora_slot *d = &l->slots[s];
        *d = src->slots[s];
        d->layer = to[d->layer];
        d->A = l->params + d->offset;
        d->B = d->A + (size_t)l->r * d->in;
        l->slot_of[d->layer * SL_LORA_NTARGETS + d->target] = s;
    }
    free(to);
    *out = l;
    return 0;
}

int sl_emulator_adapter_save(const sl_lora *emu_lora, const sl_emumeta *meta, const char *dir,
                             const char *base_model, sl_err *err)
{
    sl_lora *full = NULL;
    int rc = sl_emulator_lora_remap(&full, emu_lora, meta->layer_map, meta->nblocks, 1,
                                    meta->full_layers, err);
    if (rc)
        return rc;
    rc = sl_adapter_save(full, dir, base_model, meta->base_sha256, err);
    sl_lora_free(full);
    return rc;
}

int sl_emulator_adapter_load(sl_lora **out, const sl_gpt2 *emu, const sl_emumeta *meta,
                             const char *dir, sl_peft_config *cfg_out, sl_err *err)
{
    int rc = sl_emulator_check(meta, emu, NULL, err);
    if (rc)
        return rc;
    /* The adapter loader and sl_lora_create read only the block count and
     * the widths of the model they are given: a shallow copy of the
     * emulator with the full model's block count describes the full
     * model's shapes (every block of a GPT-2 has the same widths). */
    sl_gpt2 shape = *emu;
    shape.L = meta->full_layers;
    sl_lora *full = NULL, *l = NULL;
    sl_peft_config pc;
    if ((rc = sl_adapter_load(&full, &shape, dir, &pc, err)))
        return rc;
    if (pc.base_digest[0] && strcmp(pc.base_digest, meta->base_sha256)) {
        sl_lora_free(full);
        return sl_err_set(err, SL_EINVAL,
                          "%s: adapter was trained for a base with SHA-256 %.16s..., the "
                          "emulator was built from %.16s...",
                          dir, pc.base_digest, meta->base_sha256);
    }
    rc = sl_emulator_lora_remap(&l, full, meta->layer_map, meta->nblocks, 0, meta->nblocks, err);
    sl_lora_free(full);
    if (rc)
        return sl_err_prefix(err, "%s", dir);
    if (cfg_out)
        *cfg_out = pc;
    *out = l;
    return 0;
}

int sl_emulator_plugin(sl_gpt2 *full, const char *full_digest, const char *dir, sl_lora **used,
                       int *had_digest, sl_err *err)
{
    sl_lora *l = NULL;
    sl_peft_config pc;
    int rc = sl_adapter_load(&l, full, dir, &pc, err);
    if (rc)
        return rc;
    if (pc.base_digest[0] && strcmp(pc.base_digest, full_digest)) {
        sl_lora_free(l);
        return sl_err_set(err, SL_EINVAL,
                          "%s: the adapter was trained for a base model with SHA-256 %s, not "
                          "this model's %s",
                          dir, pc.base_digest, full_digest);
    }
    sl_lora_merge(full, l, 1.0f);
    if (had_digest)
        *had_digest = pc.base_digest[0] != 0;
    if (used)
        *used = l;
    else
        sl_lora_free(l);
    return 0;
}
