#include "shared/adapter.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fsutil.h"
#include "shared/safetensors.h"

/* The adapter passes LoRA target bits to shared/peft unchanged. */
_Static_assert(SL_LORA_C_ATTN == SL_PEFT_ATTN_C_ATTN && SL_LORA_C_PROJ == SL_PEFT_ATTN_C_PROJ &&
                   SL_LORA_MLP_FC == SL_PEFT_MLP_C_FC && SL_LORA_MLP_PROJ == SL_PEFT_MLP_C_PROJ,
               "LoRA and PEFT target bits must agree");

typedef struct names {
    char a[160], b[160];
} names;

static int slot_names(const sl_lora_slot *s, names *n, sl_err *err)
{
    int rc = sl_peft_tensor_name(n->a, sizeof n->a, s->layer, 1u << s->target, 0, err);
    return rc ? rc : sl_peft_tensor_name(n->b, sizeof n->b, s->layer, 1u << s->target, 1, err);
}

int sl_adapter_save(const sl_lora *l, const char *dir, const char *base_model,
                    const char *base_digest, sl_err *err)
{
    char cpath[PATH_MAX], wpath[PATH_MAX];
    int rc = sl_fs_mkdirs(dir, 0755, err);
    if (!rc)
        rc = sl_fs_join(cpath, sizeof cpath, dir, SL_ADAPTER_CONFIG, err);
    if (!rc)
        rc = sl_fs_join(wpath, sizeof wpath, dir, SL_ADAPTER_WEIGHTS, err);
    if (rc)
        return rc;
    sl_peft_config c;
    sl_peft_config_default(&c);
    c.r = l->r;
    c.lora_alpha = l->alpha;
    c.target_mask = l->targets;
    c.fan_in_fan_out = 1;
    /* layers_to_transform: the blocks that carry slots (empty = all). */
    uint8_t *on = calloc((size_t)l->L, 1);
    if (!on)
        return sl_err_set(err, SL_ENOMEM, "adapter save: out of memory");
    for (int s = 0; s < l->nslots; s++)
        on[l->slots[s].layer] = 1;
    c.nlayers = 0;
    for (int i = 0; i < l->L; i++)
        if (on[i])
            c.layers[c.nlayers++] = i;
    if (c.nlayers == l->L)
        c.nlayers = 0;
    free(on);
    snprintf(c.base_model, sizeof c.base_model, "%s", base_model ? base_model : "");
    snprintf(c.base_digest, sizeof c.base_digest, "%s", base_digest ? base_digest : "");
    sl_st_entry *e = calloc((size_t)l->nslots * 2 + 1, sizeof *e);
    names *nm = calloc((size_t)l->nslots + 1, sizeof *nm);
    if (!e || !nm) {
        free(e);
        free(nm);
        return sl_err_set(err, SL_ENOMEM, "adapter save: out of memory");
    }
    for (int s = 0; s < l->nslots && !rc; s++) {
        const sl_lora_slot *sl = &l->slots[s];
        rc = slot_names(sl, &nm[s], err);
        e[2 * s] = (sl_st_entry){nm[s].a, SL_ST_F32, 2, {l->r, sl->in}, sl->A};
        e[2 * s + 1] = (sl_st_entry){nm[s].b, SL_ST_F32, 2, {sl->out, l->r}, sl->B};
    }
    const char *meta[] = {"format", "pt"};
    if (!rc)
        rc = sl_st_write(wpath, e, (size_t)l->nslots * 2, meta, 1, err);
    if (!rc)
        rc = sl_peft_config_save(&c, cpath, err);
    free(e);
    free(nm);
    return rc;
}

static int read_factor(const sl_st_file *f, const char *name, float *dst, int64_t d0, int64_t d1,
                       const char *path, sl_err *err)
{
    const sl_st_tensor *t = sl_st_find(f, name);
    if (!t)
        return sl_err_set(err, SL_EFORMAT, "%s: missing tensor '%s'", path, name);
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return sl_err_set(err, SL_EFORMAT, "%s: tensor '%s' has shape [%lld, %lld], the model "
                          "needs [%lld, %lld]", path, name, (long long)t->shape[0],
                          t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)d0,
                          (long long)d1);
    int rc = sl_st_read_f32(t, dst, (size_t)(d0 * d1), err);
    return rc ? sl_err_prefix(err, "%s: tensor '%s'", path, name) : 0;
}

int sl_adapter_load(sl_lora **out, const sl_gpt2 *m, const char *dir, sl_peft_config *cfg_out,
                    sl_err *err)
{
    char cpath[PATH_MAX], wpath[PATH_MAX];
    int rc = sl_fs_join(cpath, sizeof cpath, dir, SL_ADAPTER_CONFIG, err);
    if (!rc)
        rc = sl_fs_join(wpath, sizeof wpath, dir, SL_ADAPTER_WEIGHTS, err);
    if (rc)
        return rc;
    sl_peft_config c;
    rc = sl_peft_config_load(&c, cpath, err);
    if (rc)
        return rc;
    for (int i = 0; i < c.nlayers; i++)
        if (c.layers[i] >= m->L)
            return sl_err_set(err, SL_EINVAL, "%s: layers_to_transform names block %d but the "
                              "model has %d blocks", cpath, c.layers[i], m->L);
    sl_lora *l = NULL;
    rc = sl_lora_create(&l, m, c.r, c.lora_alpha, c.target_mask, c.layers, c.nlayers, 0, err);
    if (rc)
        return sl_err_prefix(err, "%s", cpath);
    sl_st_file *f = NULL;
    rc = sl_st_open(&f, wpath, err);
    for (int s = 0; s < l->nslots && !rc; s++) {
        sl_lora_slot *sl = &l->slots[s];
        names nm;
        rc = slot_names(sl, &nm, err);
        if (!rc)
            rc = read_factor(f, nm.a, sl->A, l->r, sl->in, wpath, err);
        if (!rc)
            rc = read_factor(f, nm.b, sl->B, sl->out, l->r, wpath, err);
    }
    if (!rc && sl_st_count(f) != (size_t)l->nslots * 2) {
        /* Every expected factor was found, so the rest are strays. */
        for (size_t i = 0; i < sl_st_count(f) && !rc; i++) {
            const char *name = sl_st_at(f, i)->name;
            int known = 0;
            for (int s = 0; s < l->nslots && !known; s++) {
                names nm;
                slot_names(&l->slots[s], &nm, NULL);
                known = strcmp(name, nm.a) == 0 || strcmp(name, nm.b) == 0;
            }
            if (!known)
                rc = sl_err_set(err, SL_EFORMAT, "%s: tensor '%s' is not part of the adapter "
                                "that %s describes", wpath, name, SL_ADAPTER_CONFIG);
        }
    }
    sl_st_close(f);
    if (rc) {
        sl_lora_free(l);
        return rc;
    }
    if (cfg_out)
        *cfg_out = c;
    *out = l;
    return 0;
}

int sl_adapter_merge_dir(sl_gpt2 *m, const char *dir, const char *base_digest, sl_err *err)
{
    sl_lora *l = NULL;
    sl_peft_config c;
    int rc = sl_adapter_load(&l, m, dir, &c, err);
    if (rc)
        return rc;
    if (base_digest && c.base_digest[0] && strcmp(base_digest, c.base_digest) != 0) {
        sl_lora_free(l);
        return sl_err_set(err, SL_EINVAL,
                          "%s/%s: the adapter was trained on base weights with SHA-256 %.16s..., "
                          "this model's are %.16s...",
                          dir, SL_ADAPTER_CONFIG, c.base_digest, base_digest);
    }
    sl_lora_merge(m, l, 1.0f);
    sl_lora_free(l);
    return 0;
}
