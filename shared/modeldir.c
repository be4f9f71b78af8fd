#include "shared/modeldir.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fsutil.h"
#include "shared/hfconfig.h"

/* Tensors a checkpoint may carry that hold no weights of ours. */
static int ignorable(const char *name)
{
    size_t n = strlen(name);
    static const char *const tails[] = {".attn.bias", ".attn.masked_bias"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t t = strlen(tails[i]);
        if (n > t && strcmp(name + n - t, tails[i]) == 0)
            return 1;
    }
    return 0;
}

static int load_weights(sl_gpt2 *m, sl_st_file *f, const char *path, sl_err *err)
{
    uint8_t *seen = calloc((size_t)m->ntensors, 1);
    if (!seen)
        return sl_err_set(err, SL_ENOMEM, "%s: out of memory", path);
    int rc = 0;
    const sl_st_tensor *lm_head = NULL;
    for (size_t i = 0; i < sl_st_count(f) && !rc; i++) {
        const sl_st_tensor *st = sl_st_at(f, i);
        if (strcmp(st->name, "lm_head.weight") == 0) {
            lm_head = st;
            continue;
        }
        int idx = sl_gpt2_tensor_find(m, st->name);
        if (idx < 0) {
            if (!ignorable(st->name))
                rc = sl_err_set(err, SL_EFORMAT, "%s: unexpected tensor '%s' for a GPT-2 model",
                                path, st->name);
            continue;
        }
        sl_gpt2_tensor t;
        sl_gpt2_tensor_info(m, idx, &t);
        if (seen[idx]) {
            rc = sl_err_set(err, SL_EFORMAT, "%s: tensor '%s' appears twice (with and without "
                            "the 'transformer.' prefix)", path, st->name);
            break;
        }
        int shape_ok = st->ndim == t.ndim && st->shape[0] == t.shape[0] &&
                       (t.ndim == 1 || st->shape[1] == t.shape[1]);
        if (!shape_ok) {
            rc = sl_err_set(err, SL_EFORMAT,
                            "%s: tensor '%s' has shape [%lld%s%lld] where config.json implies "
                            "[%lld%s%lld]", path, st->name, (long long)st->shape[0],
                            st->ndim > 1 ? ", " : "", st->ndim > 1 ? (long long)st->shape[1] : 0LL,
                            (long long)t.shape[0], t.ndim > 1 ? ", " : "",
                            t.ndim > 1 ? (long long)t.shape[1] : 0LL);
            break;
        }
        rc = sl_st_read_f32(st, t.data, t.numel, err);
        if (rc)
            sl_err_prefix(err, "%s: tensor '%s'", path, st->name);
        seen[idx] = 1;
    }
    for (int i = 0; i < m->ntensors && !rc; i++) {
        if (!seen[i]) {
            sl_gpt2_tensor t;
            sl_gpt2_tensor_info(m, i, &t);
            rc = sl_err_set(err, SL_EFORMAT, "%s: missing tensor '%s'", path, t.name);
        }
    }
    if (!rc && lm_head) {
        /* We only implement the tied head: an lm_head must equal wte. */
        size_t n = (size_t)m->V * m->C;
        float *tmp = lm_head->nelem == n ? malloc(sizeof(float) * n) : NULL;
        if (lm_head->nelem != n)
            rc = sl_err_set(err, SL_EFORMAT, "%s: 'lm_head.weight' has %zu values, expected %zu",
                            path, lm_head->nelem, n);
        else if (!tmp)
            rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", path);
        else if (!(rc = sl_st_read_f32(lm_head, tmp, n, err)) &&
                 memcmp(tmp, m->wte, sizeof(float) * n) != 0)
            rc = sl_err_set(err, SL_EFORMAT, "%s: 'lm_head.weight' differs from the token "
                            "embedding; untied heads are not supported", path);
        free(tmp);
    }
    free(seen);
    return rc;
}

int sl_modeldir_load(sl_gpt2 **out, const char *dir, sl_err *err)
{
    char cpath[PATH_MAX], wpath[PATH_MAX];
    int rc = sl_fs_join(cpath, sizeof cpath, dir, SL_MODELDIR_CONFIG, err);
    if (!rc)
        rc = sl_fs_join(wpath, sizeof wpath, dir, SL_MODELDIR_WEIGHTS, err);
    if (rc)
        return rc;
    sl_gpt2_config cfg;
    rc = sl_hfconfig_load(&cfg, cpath, err);
    if (rc)
        return rc;
    if (!cfg.tie_word_embeddings)
        return sl_err_set(err, SL_EFORMAT, "%s: tie_word_embeddings is false; only GPT-2's tied "
                          "lm_head is supported", cpath);
    sl_gpt2 *m = NULL;
    rc = sl_gpt2_create(&m, &cfg, err);
    if (rc)
        return sl_err_prefix(err, "%s", cpath);
    sl_st_file *f = NULL;
    rc = sl_st_open(&f, wpath, err);
    if (!rc)
        rc = load_weights(m, f, wpath, err);
    sl_st_close(f);
    if (rc) {
        sl_gpt2_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int sl_modeldir_save(const sl_gpt2 *m, const char *dir, sl_st_dtype dtype, sl_err *err)
{
    if (dtype != SL_ST_F32 && dtype != SL_ST_F16 && dtype != SL_ST_BF16)
        return sl_err_set(err, SL_EINVAL, "model save: dtype %s not supported (F32, F16, BF16)",
                          sl_st_dtype_name(dtype));
    char cpath[PATH_MAX], wpath[PATH_MAX];
    int rc = sl_fs_mkdirs(dir, 0755, err);
    if (!rc)
        rc = sl_fs_join(cpath, sizeof cpath, dir, SL_MODELDIR_CONFIG, err);
    if (!rc)
        rc = sl_fs_join(wpath, sizeof wpath, dir, SL_MODELDIR_WEIGHTS, err);
    if (rc)
        return rc;
    sl_st_entry *e = calloc((size_t)m->ntensors, sizeof *e);
    sl_gpt2_tensor *t = calloc((size_t)m->ntensors, sizeof *t);
    if (!e || !t) {
        free(e);
        free(t);
        return sl_err_set(err, SL_ENOMEM, "model save: out of memory");
    }
    for (int i = 0; i < m->ntensors; i++) {
        sl_gpt2_tensor_info(m, i, &t[i]);
        e[i].name = t[i].name;
        e[i].dtype = dtype;
        e[i].ndim = t[i].ndim;
        e[i].shape[0] = t[i].shape[0];
        e[i].shape[1] = t[i].shape[1];
        e[i].data = t[i].data;
    }
    /* transformers refuses safetensors files without format=pt metadata. */
    const char *meta[] = {"format", "pt"};
    rc = sl_st_write(wpath, e, (size_t)m->ntensors, meta, 1, err);
    if (!rc)
        rc = sl_hfconfig_save(&m->cfg, cpath, err);
    free(e);
    free(t);
    return rc;
}

int sl_modeldir_dtype(const char *dir, sl_st_dtype *dtype, sl_err *err)
{
    char wpath[PATH_MAX];
    int rc = sl_fs_join(wpath, sizeof wpath, dir, SL_MODELDIR_WEIGHTS, err);
    sl_st_file *f = NULL;
    if (!rc)
        rc = sl_st_open(&f, wpath, err);
    if (rc)
        return rc;
    rc = SL_EFORMAT;
    for (size_t i = 0; i < sl_st_count(f) && rc; i++) {
        const sl_st_tensor *t = sl_st_at(f, i);
        if (t->dtype == SL_ST_F32 || t->dtype == SL_ST_F16 || t->dtype == SL_ST_BF16) {
            *dtype = t->dtype;
            rc = 0;
        }
    }
    sl_st_close(f);
    return rc ? sl_err_set(err, rc, "%s: no floating-point tensors", wpath) : 0;
}
