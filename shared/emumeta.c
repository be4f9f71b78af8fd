#include "shared/emumeta.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fsutil.h"

static int is_hex64(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n == 64;
}

int sl_emumeta_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SL_EMUMETA_NAME_MAX || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int sl_emumeta_is_adapter(const sl_emumeta *m, int i)
{
    return i >= 0 && i < m->nblocks && (i < m->bottom || i >= m->nblocks - m->top);
}

int sl_emumeta_validate(const sl_emumeta *m, sl_err *err)
{
    if (!is_hex64(m->base_sha256))
        return sl_err_set(err, SL_EINVAL, "base_model_sha256 '%.80s' is not 64 lowercase hex digits",
                          m->base_sha256);
    if (m->full_layers < 1 || m->full_layers > SL_EMUMETA_MAX_LAYERS)
        return sl_err_set(err, SL_EINVAL, "full_layers %d outside 1..%d", m->full_layers,
                          SL_EMUMETA_MAX_LAYERS);
    if (m->nblocks < 1 || m->nblocks > m->full_layers)
        return sl_err_set(err, SL_EINVAL, "layer_map has %d entries, outside 1..%d (full_layers)",
                          m->nblocks, m->full_layers);
    for (int i = 0; i < m->nblocks; i++) {
        int v = m->layer_map[i];
        if (v < 0 || v >= m->full_layers)
            return sl_err_set(err, SL_EINVAL, "layer_map[%d] = %d outside 0..%d", i, v,
                              m->full_layers - 1);
        if (i > 0 && v <= m->layer_map[i - 1])
            return sl_err_set(err, SL_EINVAL, "layer_map[%d] = %d not above layer_map[%d] = %d", i,
                              v, i - 1, m->layer_map[i - 1]);
    }
    if (m->bottom < 0 || m->top < 0 || m->bottom + m->top > m->nblocks)
        return sl_err_set(err, SL_EINVAL,
                          "adapter blocks bottom %d + top %d do not fit the %d emulator blocks",
                          m->bottom, m->top, m->nblocks);
    for (int i = 0; i < m->bottom; i++)
        if (m->layer_map[i] != i)
            return sl_err_set(err, SL_EINVAL,
                              "layer_map[%d] = %d: bottom adapter block %d must be block %d of "
                              "the full model",
                              i, m->layer_map[i], i, i);
    for (int j = 0; j < m->top; j++) {
        int i = m->nblocks - m->top + j, want = m->full_layers - m->top + j;
        if (m->layer_map[i] != want)
            return sl_err_set(err, SL_EINVAL,
                              "layer_map[%d] = %d: top adapter block must be block %d of the full "
                              "model",
                              i, m->layer_map[i], want);
    }
    if (strcmp(m->drop_mode, "uniform") && strcmp(m->drop_mode, "list"))
        return sl_err_set(err, SL_EINVAL, "drop.mode '%.16s' is neither 'uniform' nor 'list'",
                          m->drop_mode);
    if (!(m->drop_ratio >= 0 && m->drop_ratio < 1))
        return sl_err_set(err, SL_EINVAL, "drop.ratio %g outside [0, 1)", m->drop_ratio);
    const sl_emumeta_distill *d = &m->distill;
    if (d->present) {
        if (d->steps < 0 || d->batch < 1 || d->seq < 1 || !isfinite(d->lr) || d->lr < 0 ||
            !isfinite(d->kl_weight) || d->kl_weight < 0 || !isfinite(d->mse_before) ||
            !isfinite(d->mse_after))
            return sl_err_set(err, SL_EINVAL,
                              "distill: steps %ld, batch %d, seq %d, lr %g, kl_weight %g, mse %g "
                              "-> %g: a value is out of range",
                              d->steps, d->batch, d->seq, d->lr, d->kl_weight, d->mse_before,
                              d->mse_after);
        if (d->text_sha256[0] && !is_hex64(d->text_sha256))
            return sl_err_set(err, SL_EINVAL, "distill.text_sha256 is not 64 lowercase hex digits");
    }
    return 0;
}

int sl_emumeta_cmp_file(const void *a, const void *b)
{
    return strcmp(((const sl_emumeta_file *)a)->name, ((const sl_emumeta_file *)b)->name);
}

static json_t *to_json(const sl_emumeta *m)
{
    json_t *o = json_object(), *map = json_array(), *files = json_object();
    for (int i = 0; i < m->nblocks; i++)
        json_array_append_new(map, json_integer(m->layer_map[i]));
    for (int i = 0; i < m->nfiles; i++)
        json_object_set_new(files, m->files[i].name,
                            json_pack("{s:s, s:I}", "sha256", m->files[i].sha256, "bytes",
                                      (json_int_t)m->files[i].bytes));
    json_t *distill = json_null();
    const sl_emumeta_distill *d = &m->distill;
    if (d->present)
        distill = json_pack("{s:s, s:s, s:I, s:i, s:i, s:f, s:f, s:I, s:f, s:f}", "text", d->text,
                            "text_sha256", d->text_sha256, "steps", (json_int_t)d->steps, "batch",
                            d->batch, "seq", d->seq, "lr", d->lr, "kl_weight", d->kl_weight,
                            "seed", (json_int_t)(d->seed & 0x7fffffffffffffffull), "mse_before",
                            d->mse_before, "mse_after", d->mse_after);
    json_object_set_new(o, "format", json_string(SL_EMUMETA_FORMAT));
    json_object_set_new(o, "version", json_integer(SL_EMUMETA_VERSION));
    json_object_set_new(o, "base_model_sha256", json_string(m->base_sha256));
    json_object_set_new(o, "full_layers", json_integer(m->full_layers));
    json_object_set_new(o, "layer_map", map);
    json_object_set_new(o, "adapter", json_pack("{s:i, s:i}", "bottom", m->bottom, "top", m->top));
    json_object_set_new(o, "drop",
                        json_pack("{s:s, s:f}", "mode", m->drop_mode, "ratio", m->drop_ratio));
    json_object_set_new(o, "distill", distill ? distill : json_null());
    json_object_set_new(o, "files", files);
    return o;
}

int sl_emumeta_encode(const sl_emumeta *meta, char **text, size_t *len, sl_err *err)
{
    int rc = sl_emumeta_validate(meta, err);
    if (rc)
        return rc;
    json_t *o = to_json(meta);
    char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    size_t n = s ? strlen(s) : 0;
    char *buf = s ? malloc(n + 2) : NULL;
    if (!buf) {
        free(s);
        return sl_err_set(err, SL_ENOMEM, "manifest: cannot encode");
    }
    memcpy(buf, s, n);
    buf[n++] = '\n';
    buf[n] = 0;
    free(s);
    *text = buf;
    *len = n;
    return 0;
}

/* ---- parsing -------------------------------------------------------------- */

static int want_keys(json_t *o, const char *const *keys, const char *what, const char *field,
                     sl_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int ok = 0;
        for (int i = 0; keys[i]; i++)
            ok |= !strcmp(k, keys[i]);
        if (!ok)
            return sl_err_set(err, SL_EFORMAT, "%s: unknown key '%.64s' in %s", what, k, field);
    }
    for (int i = 0; keys[i]; i++)
        if (!json_object_get(o, keys[i]))
            return sl_err_set(err, SL_EFORMAT, "%s: %s lacks '%s'", what, field, keys[i]);
    return 0;
}

static int get_int(json_t *o, const char *key, long lo, long hi, long *out, const char *what,
                   sl_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return sl_err_set(err, SL_EFORMAT, "%s: '%s' must be an integer", what, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return sl_err_set(err, SL_EFORMAT, "%s: '%s' = %lld outside %ld..%ld", what, key,
                          (long long)x, lo, hi);
    *out = (long)x;
    return 0;
}

static int get_num(json_t *o, const char *key, double *out, const char *what, sl_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        return sl_err_set(err, SL_EFORMAT, "%s: '%s' must be a number", what, key);
    *out = json_number_value(v);
    return 0;
}

static int get_str(json_t *o, const char *key, char *out, size_t cap, const char *what,
                   sl_err *err)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return sl_err_set(err, SL_EFORMAT, "%s: '%s' must be a string", what, key);
    if (json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v))
        return sl_err_set(err, SL_EFORMAT, "%s: '%s' is longer than %zu bytes or holds NUL", what,
                          key, cap - 1);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int parse_obj(json_t *o, const char *what, sl_emumeta *m, sl_err *err)
{
    static const char *const top[] = {"format", "version", "base_model_sha256", "full_layers",
                                      "layer_map", "adapter", "drop", "distill", "files", NULL};
    static const char *const ad[] = {"bottom", "top", NULL};
    static const char *const dr[] = {"mode", "ratio", NULL};
    static const char *const di[] = {"text", "text_sha256", "steps", "batch", "seq", "lr",
                                     "kl_weight", "seed", "mse_before", "mse_after", NULL};
    static const char *const fi[] = {"sha256", "bytes", NULL};
    long x;
    int rc;
    char fmt[32];
    if (!json_is_object(o))
        return sl_err_set(err, SL_EFORMAT, "%s: not a JSON object", what);
    if ((rc = want_keys(o, top, what, "the manifest", err)) ||
        (rc = get_str(o, "format", fmt, sizeof fmt, what, err)))
        return rc;
    if (strcmp(fmt, SL_EMUMETA_FORMAT))
        return sl_err_set(err, SL_EFORMAT, "%s: format '%s' is not '%s'", what, fmt,
                          SL_EMUMETA_FORMAT);
    if ((rc = get_int(o, "version", SL_EMUMETA_VERSION, SL_EMUMETA_VERSION, &x, what, err)) ||
        (rc = get_str(o, "base_model_sha256", m->base_sha256, sizeof m->base_sha256, what, err)) ||
        (rc = get_int(o, "full_layers", 1, SL_EMUMETA_MAX_LAYERS, &x, what, err)))
        return rc;
    m->full_layers = (int)x;
    json_t *map = json_object_get(o, "layer_map");
    if (!json_is_array(map) || json_array_size(map) < 1 ||
        json_array_size(map) > SL_EMUMETA_MAX_LAYERS)
        return sl_err_set(err, SL_EFORMAT, "%s: 'layer_map' must be an array of 1..%d integers",
                          what, SL_EMUMETA_MAX_LAYERS);
    m->nblocks = (int)json_array_size(map);
    for (int i = 0; i < m->nblocks; i++) {
        json_t *v = json_array_get(map, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= SL_EMUMETA_MAX_LAYERS)
            return sl_err_set(err, SL_EFORMAT, "%s: layer_map[%d] is not an integer in 0..%d",
                              what, i, SL_EMUMETA_MAX_LAYERS - 1);
        m->layer_map[i] = (int)json_integer_value(v);
    }
    json_t *a = json_object_get(o, "adapter");
    if (!json_is_object(a))
        return sl_err_set(err, SL_EFORMAT, "%s: 'adapter' must be an object", what);
    if ((rc = want_keys(a, ad, what, "adapter", err)) ||
        (rc = get_int(a, "bottom", 0, SL_EMUMETA_MAX_LAYERS, &x, what, err)))
        return rc;
    m->bottom = (int)x;
    if ((rc = get_int(a, "top", 0, SL_EMUMETA_MAX_LAYERS, &x, what, err)))
        return rc;
    m->top = (int)x;
    json_t *d = json_object_get(o, "drop");
    if (!json_is_object(d))
        return sl_err_set(err, SL_EFORMAT, "%s: 'drop' must be an object", what);
    if ((rc = want_keys(d, dr, what, "drop", err)) ||
        (rc = get_str(d, "mode", m->drop_mode, sizeof m->drop_mode, what, err)) ||
        (rc = get_num(d, "ratio", &m->drop_ratio, what, err)))
        return rc;
    json_t *ds = json_object_get(o, "distill");
    memset(&m->distill, 0, sizeof m->distill);
    if (!json_is_null(ds)) {
        sl_emumeta_distill *q = &m->distill;
        if (!json_is_object(ds))
            return sl_err_set(err, SL_EFORMAT, "%s: 'distill' must be null or an object", what);
        q->present = 1;
        if ((rc = want_keys(ds, di, what, "distill", err)) ||
            (rc = get_str(ds, "text", q->text, sizeof q->text, what, err)) ||
            (rc = get_str(ds, "text_sha256", q->text_sha256, sizeof q->text_sha256, what, err)) ||
            (rc = get_int(ds, "steps", 0, LONG_MAX, &q->steps, what, err)) ||
            (rc = get_int(ds, "batch", 1, 1 << 20, &x, what, err)))
            return rc;
        q->batch = (int)x;
        if ((rc = get_int(ds, "seq", 1, 1 << 20, &x, what, err)))
            return rc;
        q->seq = (int)x;
        if ((rc = get_num(ds, "lr", &q->lr, what, err)) ||
            (rc = get_num(ds, "kl_weight", &q->kl_weight, what, err)) ||
            (rc = get_int(ds, "seed", 0, LONG_MAX, &x, what, err)))
            return rc;
        q->seed = (uint64_t)x;
        if ((rc = get_num(ds, "mse_before", &q->mse_before, what, err)) ||
            (rc = get_num(ds, "mse_after", &q->mse_after, what, err)))
            return rc;
    }
    json_t *files = json_object_get(o, "files");
    if (!json_is_object(files))
        return sl_err_set(err, SL_EFORMAT, "%s: 'files' must be an object", what);
    if (json_object_size(files) > SL_EMUMETA_MAX_FILES)
        return sl_err_set(err, SL_ELIMIT, "%s: 'files' lists %zu files, more than %d", what,
                          json_object_size(files), SL_EMUMETA_MAX_FILES);
    const char *k;
    json_t *v;
    m->nfiles = 0;
    json_object_foreach(files, k, v) {
        sl_emumeta_file *f = &m->files[m->nfiles];
        char field[160];
        snprintf(field, sizeof field, "files['%.100s']", k);
        if (!sl_emumeta_name_ok(k) || !strcmp(k, SL_EMUMETA_FILE) || !strcmp(k, SL_EMUMETA_SIG_FILE))
            return sl_err_set(err, SL_EFORMAT, "%s: %s: not a valid package file name", what,
                              field);
        if (!json_is_object(v))
            return sl_err_set(err, SL_EFORMAT, "%s: %s must be an object", what, field);
        if ((rc = want_keys(v, fi, what, field, err)) ||
            (rc = get_str(v, "sha256", f->sha256, sizeof f->sha256, what, err)))
            return rc;
        if (!is_hex64(f->sha256))
            return sl_err_set(err, SL_EFORMAT, "%s: %s.sha256 is not 64 lowercase hex digits",
                              what, field);
        if ((rc = get_int(v, "bytes", 0, LONG_MAX, &x, what, err)))
            return rc;
        f->bytes = (uint64_t)x;
        snprintf(f->name, sizeof f->name, "%s", k);
        m->nfiles++;
    }
    qsort(m->files, (size_t)m->nfiles, sizeof m->files[0], sl_emumeta_cmp_file);
    static const char *const needed[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        int found = 0;
        for (int j = 0; j < m->nfiles; j++)
            found |= !strcmp(m->files[j].name, needed[i]);
        if (!found)
            return sl_err_set(err, SL_EFORMAT, "%s: 'files' does not list %s", what, needed[i]);
    }
    if ((rc = sl_emumeta_validate(m, err))) {
        if (err)
            err->code = SL_EFORMAT;
        return sl_err_prefix(err, "%s", what), SL_EFORMAT;
    }
    return 0;
}

int sl_emumeta_parse(const char *text, size_t len, const char *what, sl_emumeta *meta,
                    sl_err *err)
{
    if (len > SL_EMUMETA_MAX_BYTES)
        return sl_err_set(err, SL_ELIMIT, "%s: %zu bytes exceeds the limit of %u", what, len,
                          SL_EMUMETA_MAX_BYTES);
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return sl_err_set(err, SL_EFORMAT, "%s: line %d: %s", what, je.line, je.text);
    sl_emumeta *m = calloc(1, sizeof *m);
    int rc = m ? parse_obj(o, what, m, err) : sl_err_set(err, SL_ENOMEM, "%s: out of memory", what);
    if (!rc)
        *meta = *m;
    free(m);
    json_decref(o);
    return rc;
}

int sl_emumeta_read(const char *dir, sl_emumeta *meta, sl_err *err)
{
    char p[PATH_MAX];
    uint8_t *text = NULL;
    size_t n = 0;
    int rc = sl_fs_join(p, sizeof p, dir, SL_EMUMETA_FILE, err);
    if (!rc)
        rc = sl_fs_read_all(p, SL_EMUMETA_MAX_BYTES, &text, &n, err);
    if (!rc)
        rc = sl_emumeta_parse((const char *)text, n, p, meta, err);
    free(text);
    return rc;
}
