#include "shared/peft.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/fsutil.h"
#include "shared/hfconfig.h"

#define DIGEST_KEY "sealora_base_sha256"

static const char *const g_modules[SL_PEFT_NMODULES] = {"attn.c_attn", "attn.c_proj",
                                                         "mlp.c_fc", "mlp.c_proj"};

const char *sl_peft_module_name(unsigned bit)
{
    for (int i = 0; i < SL_PEFT_NMODULES; i++)
        if (bit == 1u << i)
            return g_modules[i];
    return NULL;
}

void sl_peft_config_default(sl_peft_config *c)
{
    memset(c, 0, sizeof *c);
    c->r = 8;
    c->lora_alpha = 16.0f;
    c->lora_dropout = 0.0f;
    c->target_mask = SL_PEFT_ATTN_C_ATTN;
    c->fan_in_fan_out = 1;
}

int sl_peft_layer_selected(const sl_peft_config *c, int layer)
{
    if (c->nlayers == 0)
        return 1;
    for (int i = 0; i < c->nlayers; i++)
        if (c->layers[i] == layer)
            return 1;
    return 0;
}

int sl_peft_tensor_name(char *out, size_t cap, int layer, unsigned bit, int is_b, sl_err *err)
{
    const char *m = sl_peft_module_name(bit);
    if (!m || layer < 0 || layer >= SL_PEFT_MAX_LAYERS)
        return sl_err_set(err, SL_EINVAL, "no LoRA tensor for layer %d, module bit 0x%x", layer,
                          bit);
    int n = snprintf(out, cap, "base_model.model.transformer.h.%d.%s.lora_%c.weight", layer, m,
                     is_b ? 'B' : 'A');
    if (n < 0 || (size_t)n >= cap)
        return sl_err_set(err, SL_ELIMIT, "LoRA tensor name needs %d bytes, %zu given", n + 1,
                          cap);
    return 0;
}

static int is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int sl_peft_config_validate(const sl_peft_config *c, sl_err *err)
{
    if (c->r < 1 || c->r > SL_PEFT_MAX_RANK)
        return sl_err_set(err, SL_EINVAL, "r = %d is outside 1..%d", c->r, SL_PEFT_MAX_RANK);
    if (!isfinite(c->lora_alpha) || c->lora_alpha <= 0.0f)
        return sl_err_set(err, SL_EINVAL, "lora_alpha = %g is not a positive number",
                          (double)c->lora_alpha);
    if (!(c->lora_dropout >= 0.0f && c->lora_dropout < 1.0f))
        return sl_err_set(err, SL_EINVAL, "lora_dropout = %g is outside [0, 1)",
                          (double)c->lora_dropout);
    if (c->target_mask == 0 || (c->target_mask & ~SL_PEFT_ALL_TARGETS))
        return sl_err_set(err, SL_EINVAL, "target_mask 0x%x selects no module or an unknown one",
                          c->target_mask);
    if (c->nlayers < 0 || c->nlayers > SL_PEFT_MAX_LAYERS)
        return sl_err_set(err, SL_EINVAL, "nlayers = %d is outside 0..%d", c->nlayers,
                          SL_PEFT_MAX_LAYERS);
    uint8_t seen[SL_PEFT_MAX_LAYERS] = {0};
    for (int i = 0; i < c->nlayers; i++) {
        int l = c->layers[i];
        if (l < 0 || l >= SL_PEFT_MAX_LAYERS)
            return sl_err_set(err, SL_EINVAL, "layers_to_transform[%d] = %d is outside 0..%d", i,
                              l, SL_PEFT_MAX_LAYERS - 1);
        if (seen[l]++)
            return sl_err_set(err, SL_EINVAL, "layers_to_transform lists layer %d twice", l);
    }
    if (c->fan_in_fan_out != 1)
        return sl_err_set(err, SL_EINVAL, "fan_in_fan_out = %d: GPT-2's Conv1D weights are "
                          "[in, out], so it must be true", c->fan_in_fan_out);
    if (!memchr(c->base_model, 0, sizeof c->base_model))
        return sl_err_set(err, SL_EINVAL, "base_model is not NUL-terminated");
    if (!memchr(c->base_digest, 0, sizeof c->base_digest) ||
        (c->base_digest[0] && !is_hex64(c->base_digest)))
        return sl_err_set(err, SL_EINVAL, "base_digest \"%.64s\" is not 64 lowercase hex digits",
                          c->base_digest);
    return 0;
}

/* ---- loading ------------------------------------------------------------ */

static void show(const json_t *v, char *out, size_t cap)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s)
        snprintf(out, cap, "(unprintable)");
    else if (strlen(s) > 60)
        snprintf(out, cap, "%.57s...", s);
    else
        snprintf(out, cap, "%s", s);
    free(s);
}

static int bad(sl_err *err, const char *what, const char *key, const json_t *v,
               const char *expect)
{
    char b[80];
    if (v)
        show(v, b, sizeof b);
    else
        snprintf(b, sizeof b, "missing");
    return sl_err_set(err, SL_EINVAL, "%s: key '%s' is %s, expected %s", what, key, b, expect);
}

/* A key that, if present and not null, must hold `want` (a JSON value). */
static int want_value(json_t *root, const char *what, const char *key, json_t *want,
                      const char *expect, sl_err *err)
{
    json_t *v = json_object_get(root, key);
    int rc = 0;
    if (v && !json_is_null(v) && !json_equal(v, want))
        rc = bad(err, what, key, v, expect);
    json_decref(want);
    return rc;
}

/* A key that, if present, must be null or an empty list/object. */
static int want_empty(json_t *root, const char *what, const char *key, sl_err *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0) ||
        (json_is_object(v) && json_object_size(v) == 0))
        return 0;
    return bad(err, what, key, v, "null or empty (not supported)");
}

static int parse_targets(json_t *v, const char *what, unsigned *mask, sl_err *err)
{
    const char *expect = "a list of GPT-2 module names (c_attn, c_proj, c_fc, attn.c_attn, "
                         "attn.c_proj, mlp.c_fc, mlp.c_proj)";
    if (!v || json_is_null(v)) { /* PEFT's default for gpt2 */
        *mask = SL_PEFT_ATTN_C_ATTN;
        return 0;
    }
    if (json_is_string(v))
        return bad(err, what, "target_modules", v,
                   "a list of module names (a single string is a regular expression in PEFT, "
                   "not supported)");
    if (!json_is_array(v) || json_array_size(v) == 0)
        return bad(err, what, "target_modules", v, expect);
    static const struct {
        const char *name;
        unsigned bits;
    } names[] = {
        {"c_attn", SL_PEFT_ATTN_C_ATTN},
        {"c_proj", SL_PEFT_ATTN_C_PROJ | SL_PEFT_MLP_C_PROJ},
        {"c_fc", SL_PEFT_MLP_C_FC},
        {"attn.c_attn", SL_PEFT_ATTN_C_ATTN},
        {"attn.c_proj", SL_PEFT_ATTN_C_PROJ},
        {"mlp.c_fc", SL_PEFT_MLP_C_FC},
        {"mlp.c_proj", SL_PEFT_MLP_C_PROJ},
    };
    unsigned m = 0;
    size_t i;
    json_t *a;
    json_array_foreach(v, i, a)
    {
        unsigned bits = 0;
        for (size_t k = 0; json_is_string(a) && k < sizeof names / sizeof names[0]; k++)
            if (strcmp(json_string_value(a), names[k].name) == 0)
                bits = names[k].bits;
        if (!bits) {
            char b[80];
            show(a, b, sizeof b);
            return sl_err_set(err, SL_EINVAL, "%s: key 'target_modules' names %s, which is not a "
                              "GPT-2 LoRA target (c_attn, c_proj, c_fc, attn.c_attn, attn.c_proj,"
                              " mlp.c_fc, mlp.c_proj)", what, b);
        }
        m |= bits;
    }
    *mask = m;
    return 0;
}

static int int_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int parse_layers(json_t *root, const char *what, sl_peft_config *c, sl_err *err)
{
    json_t *v = json_object_get(root, "layers_to_transform");
    const char *expect = "null, a layer index or a non-empty list of distinct indices 0..255";
    c->nlayers = 0;
    if (!v || json_is_null(v))
        return 0;
    json_t *one = NULL;
    if (json_is_integer(v)) {
        one = json_array();
        if (!one || json_array_append(one, v) != 0) {
            json_decref(one);
            return sl_err_set(err, SL_ENOMEM, "%s: out of memory", what);
        }
        v = one;
    }
    int rc = 0;
    if (!json_is_array(v) || json_array_size(v) == 0 ||
        json_array_size(v) > SL_PEFT_MAX_LAYERS) {
        rc = bad(err, what, "layers_to_transform", v, expect);
        goto out;
    }
    uint8_t seen[SL_PEFT_MAX_LAYERS] = {0};
    size_t i;
    json_t *a;
    json_array_foreach(v, i, a)
    {
        if (!json_is_integer(a) || json_integer_value(a) < 0 ||
            json_integer_value(a) >= SL_PEFT_MAX_LAYERS || seen[json_integer_value(a)]++) {
            rc = bad(err, what, "layers_to_transform", v, expect);
            goto out;
        }
        c->layers[c->nlayers++] = (int)json_integer_value(a);
    }
    qsort(c->layers, (size_t)c->nlayers, sizeof c->layers[0], int_cmp);
    /* PEFT finds the layer index through layers_pattern; GPT-2's blocks
     * live under "h". */
    json_t *p = json_object_get(root, "layers_pattern");
    if (p && !json_is_null(p) &&
        !(json_is_string(p) && strcmp(json_string_value(p), "h") == 0) &&
        !(json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)) &&
          strcmp(json_string_value(json_array_get(p, 0)), "h") == 0))
        rc = bad(err, what, "layers_pattern", p, "null or \"h\" (GPT-2's block list)");
out:
    json_decref(one);
    return rc;
}

static int get_string(json_t *root, const char *what, const char *key, char *out, size_t cap,
                      sl_err *err)
{
    json_t *v = json_object_get(root, key);
    out[0] = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        char expect[64];
        snprintf(expect, sizeof expect, "a string of at most %zu bytes", cap - 1);
        return bad(err, what, key, v, expect);
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int sl_peft_config_parse(sl_peft_config *out, const char *text, size_t len, const char *what,
                         sl_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return sl_err_set(err, SL_EFORMAT, "%s: not valid JSON: %s (line %d, column %d)", what,
                          jerr.text, jerr.line, jerr.column);
    sl_peft_config *c = malloc(sizeof *c); /* ~2 KiB: keep it off small stacks */
    int rc = 0;
    if (!c) {
        rc = sl_err_set(err, SL_ENOMEM, "%s: out of memory", what);
        goto out;
    }
    sl_peft_config_default(c);
    if (!json_is_object(root)) {
        rc = sl_err_set(err, SL_EFORMAT, "%s: not a JSON object", what);
        goto out;
    }
    json_t *v = json_object_get(root, "peft_type");
    if (!json_is_string(v) || strcmp(json_string_value(v), "LORA") != 0) {
        rc = bad(err, what, "peft_type", v, "\"LORA\"");
        goto out;
    }
    if ((rc = want_value(root, what, "task_type", json_string("CAUSAL_LM"), "\"CAUSAL_LM\"",
                         err)) ||
        (rc = want_value(root, what, "bias", json_string("none"),
                         "\"none\" (bias training is not supported)", err)) ||
        (rc = want_value(root, what, "use_dora", json_false(), "false (DoRA is not supported)",
                         err)) ||
        (rc = want_value(root, what, "use_rslora", json_false(),
                         "false (rsLoRA's alpha/sqrt(r) scale is not supported)", err)) ||
        (rc = want_value(root, what, "use_qalora", json_false(), "false", err)) ||
        (rc = want_value(root, what, "lora_bias", json_false(), "false", err)) ||
        (rc = want_empty(root, what, "rank_pattern", err)) ||
        (rc = want_empty(root, what, "alpha_pattern", err)) ||
        (rc = want_empty(root, what, "modules_to_save", err)) ||
        (rc = want_empty(root, what, "layer_replication", err)) ||
        (rc = want_empty(root, what, "exclude_modules", err)) ||
        (rc = want_empty(root, what, "target_parameters", err)) ||
        (rc = want_empty(root, what, "trainable_token_indices", err)))
        goto out;
    v = json_object_get(root, "r");
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > SL_PEFT_MAX_RANK) {
        rc = bad(err, what, "r", v, "an integer rank 1..4096");
        goto out;
    }
    c->r = (int)json_integer_value(v);
    v = json_object_get(root, "lora_alpha");
    if (v) { /* PEFT's default is 8 */
        if (!json_is_number(v) || !(json_number_value(v) > 0) ||
            !isfinite((float)json_number_value(v))) {
            rc = bad(err, what, "lora_alpha", v, "a positive number");
            goto out;
        }
        c->lora_alpha = (float)json_number_value(v);
    } else {
        c->lora_alpha = 8.0f;
    }
    v = json_object_get(root, "lora_dropout");
    if (v) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) < 1) ||
            !((float)json_number_value(v) < 1.0f)) {
            rc = bad(err, what, "lora_dropout", v, "a number in [0, 1)");
            goto out;
        }
        c->lora_dropout = (float)json_number_value(v);
    }
    v = json_object_get(root, "fan_in_fan_out");
    if (!json_is_true(v)) {
        rc = bad(err, what, "fan_in_fan_out", v,
                 "true (GPT-2's Conv1D weights are stored [in, out])");
        goto out;
    }
    if ((rc = parse_targets(json_object_get(root, "target_modules"), what, &c->target_mask,
                            err)) ||
        (rc = parse_layers(root, what, c, err)) ||
        (rc = get_string(root, what, "base_model_name_or_path", c->base_model,
                         sizeof c->base_model, err)) ||
        (rc = get_string(root, what, DIGEST_KEY, c->base_digest, sizeof c->base_digest, err)))
        goto out;
    if (c->base_digest[0] && !is_hex64(c->base_digest)) {
        rc = bad(err, what, DIGEST_KEY, json_object_get(root, DIGEST_KEY),
                 "64 lowercase hex digits (SHA-256)");
        goto out;
    }
    rc = sl_peft_config_validate(c, err);
    if (rc) {
        sl_err_prefix(err, "%s", what);
        goto out;
    }
    *out = *c;
out:
    free(c);
    json_decref(root);
    return rc;
}

int sl_peft_config_load(sl_peft_config *c, const char *path, sl_err *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sl_fs_read_all(path, SL_PEFT_MAX_BYTES, &buf, &len, err);
    if (rc)
        return rc;
    rc = sl_peft_config_parse(c, (const char *)buf, len, path, err);
    free(buf);
    return rc;
}

/* ---- saving ------------------------------------------------------------- */

#define SET(k, val)                                                                      \
    do {                                                                                 \
        if (json_object_set_new(root, k, val) != 0)                                      \
            goto nomem;                                                                  \
    } while (0)

int sl_peft_config_save(const sl_peft_config *c, const char *path, sl_err *err)
{
    int rc = sl_peft_config_validate(c, err);
    if (rc)
        return sl_err_prefix(err, "%s", path);
    char *text = NULL;
    json_t *root = json_object(), *targets = json_array(), *layers = NULL;
    if (!root || !targets) {
        json_decref(targets);
        goto nomem;
    }
    for (int i = 0; i < SL_PEFT_NMODULES; i++)
        if ((c->target_mask & (1u << i)) &&
            json_array_append_new(targets, json_string(g_modules[i])) != 0) {
            json_decref(targets);
            goto nomem;
        }
    SET("target_modules", targets);
    if (c->nlayers) {
        int sorted[SL_PEFT_MAX_LAYERS];
        memcpy(sorted, c->layers, (size_t)c->nlayers * sizeof sorted[0]);
        qsort(sorted, (size_t)c->nlayers, sizeof sorted[0], int_cmp);
        layers = json_array();
        if (!layers)
            goto nomem;
        SET("layers_to_transform", layers);
        for (int i = 0; i < c->nlayers; i++)
            if (json_array_append_new(layers, json_integer(sorted[i])) != 0)
                goto nomem;
        SET("layers_pattern", json_string("h"));
    } else {
        SET("layers_to_transform", json_null());
        SET("layers_pattern", json_null());
    }
    SET("alpha_pattern", json_object());
    SET("auto_mapping", json_null());
    /* base_model came from the caller: json_string refuses invalid UTF-8. */
    json_t *bm = c->base_model[0] ? json_string(c->base_model) : json_null();
    if (!bm) {
        rc = sl_err_set(err, SL_EINVAL, "%s: base_model \"%.64s\" is not valid UTF-8", path,
                        c->base_model);
        goto out;
    }
    SET("base_model_name_or_path", bm);
    SET("bias", json_string("none"));
    SET("fan_in_fan_out", json_true());
    SET("inference_mode", json_true());
    SET("init_lora_weights", json_true());
    SET("layer_replication", json_null());
    SET("loftq_config", json_object());
    /* PEFT users mostly give alpha as an int, and json.dumps writes it so. */
    float a = c->lora_alpha;
    SET("lora_alpha", a == floorf(a) && a < 16777216.0f ? json_integer((json_int_t)a)
                                                        : json_real(sl_hfconfig_shortest(a)));
    SET("lora_dropout", json_real(sl_hfconfig_shortest(c->lora_dropout)));
    SET("megatron_config", json_null());
    SET("megatron_core", json_string("megatron.core"));
    SET("modules_to_save", json_null());
    SET("peft_type", json_string("LORA"));
    SET("r", json_integer(c->r));
    SET("rank_pattern", json_object());
    SET("revision", json_null());
    SET("task_type", json_string("CAUSAL_LM"));
    SET("use_dora", json_false());
    SET("use_rslora", json_false());
    if (c->base_digest[0])
        SET(DIGEST_KEY, json_string(c->base_digest));
    text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    if (!text)
        goto nomem;
    rc = sl_fs_write_atomic(path, text, strlen(text), 0644, err);
    goto out;
nomem:
    rc = sl_err_set(err, SL_ENOMEM, "%s: cannot build the adapter configuration", path);
out:
    free(text);
    json_decref(root);
    return rc;
}
